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


def _end_auths(r: Res) -> dict[str, Any]:
    """auth of each Tunnel end that states one (a certificate end does; a PSK end has none)."""
    if r.type != TUNNEL:
        return {}
    return {end: (r.get(end) or {}).get("auth") for end in ("hubEnd", "spokeEnd")
            if "auth" in (r.get(end) or {})}


def check_cert_keys(r: Res, _args: ResourceValidationArgs, report: Report) -> None:
    """The Lab (auth, certKey only when a site uses certificates) and each Tunnel (auth cert and its
    certKey only on certificate spokes): an absent auth is a PSK plan, as before certificates. A
    Tunnel end with auth cert makes the Tunnel a certificate tunnel too, and its authby= is the one
    ipsec.yaml gives the key type."""
    auth, key, ends = r.get("auth"), r.get("certKey"), _end_auths(r)
    if any(is_unknown(value) for value in (auth, key, *ends.values())):
        return
    fix = f"set lab:certKey to one of {', '.join(CERT_KEYS)}"
    for field, value in (("auth", auth), *((f"{end}.auth", value) for end, value in ends.items())):
        if value is not None and value not in AUTHS:
            report(f"{label_of(r)}: {field} {value!r} is neither psk nor cert: set lab:auth (and pskSpokes / "
                   "certSpokes) to psk or cert.")
    cert = auth == "cert" or "cert" in ends.values()
    if key is None:
        if cert or (r.type == LAB and auth is not None):
            what = "authenticates with a certificate" if cert else "plans certificates (auth is set)"
            report(f"{label_of(r)}: {what} but has no certKey: {fix}.")
        return
    problem = cert_key_problem(key)
    if problem is not None:
        report(f"{label_of(r)}: certKey {problem}: {fix}.")
        return
    for end, value in ends.items():
        authby = (r.get(end) or {}).get("authby")
        if value == "cert" and authby is not None and not is_unknown(authby) and authby != CERT_KEYS[key]["authby"]:
            report(f"{label_of(r)}: {end}.authby {authby!r} does not sign with certKey {key}: ipsec.yaml gives "
                   f"it authby={CERT_KEYS[key]['authby']}.")


cert_keys_allowed = resource_policy(
    "ipsec-cert-keys-allowed",
    "Certificate key types are ones ipsec.yaml allows (ECDSA P-256/P-384, RSA of 2048+ bits); "
    "a certificate tunnel names its key type.",
    (LAB, TUNNEL), check_cert_keys)
