"""Crypto: every IKE and ESP proposal the lab declares uses strong suites only."""
from __future__ import annotations

from typing import Any, Iterator

from pulumi_policy import ResourceValidationArgs

from .ipsec import STRONG_EXAMPLE, parse_proposals
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
