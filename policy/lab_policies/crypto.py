"""Crypto: every IKE and ESP proposal the lab declares uses strong suites only; every certificate
key type is one ipsec.yaml allows."""
from __future__ import annotations

from typing import Any, Iterator

from pulumi_policy import ResourceValidationArgs

from .ipsec import CERT_KEYS, STRONG_EXAMPLE, cert_key_problem, parse_proposals
from .plumbing import Report, Res, is_unknown, resource_policy
from .resources import LAB, TUNNEL, label_of


def _proposal_fields(r: Res) -> Iterator[tuple[str, str, Any]]:
    """(field, kind, line) of every proposal the resource declares."""
    if r.type == LAB:
        yield "ike", "ike", r.get("ike")
        yield "esp", "esp", r.get("esp")
    elif r.type == TUNNEL:
        for end in ("hubEnd", "spokeEnd"):
            values = r.get(end) or {}
            yield f"{end}.ike", "ike", values.get("ike")
            yield f"{end}.esp", "esp", values.get("esp")


def check_crypto(r: Res, _args: ResourceValidationArgs, report: Report) -> None:
    for field, kind, line in _proposal_fields(r):
        if is_unknown(line):
            continue
        for proposal in parse_proposals(line, kind):
            for problem in proposal.problems:
                report(f"{label_of(r)}: {field} proposal {proposal.text!r}: {problem}. "
                       f"Set lab:{kind} to strong suites only, e.g. {STRONG_EXAMPLE}.")


crypto_allowlist = resource_policy(
    "ipsec-crypto-allowlist",
    "IKE and ESP proposals use strong suites only: AES or ChaCha20-Poly1305, SHA-2, DH of 2048+ bits.",
    (LAB, TUNNEL), check_crypto)


AUTHS = ("psk", "cert")


def check_cert_keys(r: Res, _args: ResourceValidationArgs, report: Report) -> None:
    """The Lab (auth, certKey only when a site uses certificates) and each Tunnel (auth cert and its
    certKey only on certificate spokes): an absent auth is a PSK plan, as before certificates."""
    auth, key = r.get("auth"), r.get("certKey")
    if is_unknown(auth) or is_unknown(key):
        return
    fix = f"set lab:certKey to one of {', '.join(CERT_KEYS)}"
    if auth is not None and auth not in AUTHS:
        report(f"{label_of(r)}: auth {auth!r} is neither psk nor cert: set lab:auth (and pskSpokes / certSpokes) "
               "to psk or cert.")
    if key is None:
        if auth == "cert" or (r.type == LAB and auth is not None):
            what = "authenticates with a certificate" if auth == "cert" else "plans certificates (auth is set)"
            report(f"{label_of(r)}: {what} but has no certKey: {fix}.")
        return
    problem = cert_key_problem(key)
    if problem is not None:
        report(f"{label_of(r)}: certKey {problem}: {fix}.")


cert_keys_allowed = resource_policy(
    "ipsec-cert-keys-allowed",
    "Certificate key types are ones ipsec.yaml allows (ECDSA P-256/P-384, RSA of 2048+ bits); "
    "a certificate tunnel names its key type.",
    (LAB, TUNNEL), check_cert_keys)
