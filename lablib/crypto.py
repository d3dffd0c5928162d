"""libreswan proposal strings: parse, reject weak suites, and size ESP overhead; and the
certificate key types lab:certKey may name (CERT_KEYS, check_cert_key).

The allowed algorithms, their ESP sizes and the weak list come from ipsec.yaml
at the top of the checkout, which the policy pack reads too (one crypto truth;
the grammar is written down there). The ESP overhead of each proposal feeds
the MTU arithmetic, so the cipher table is also the table of IV, ICV and
padding sizes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import yaml

from lablib.names import PROJECT_DIR

IPSEC_FILE = PROJECT_DIR / "ipsec.yaml"


class ProposalError(ValueError):
    """A proposal string that is malformed, unknown or weak."""


@dataclass(frozen=True)
class Cipher:
    """Sizes that ESP adds for one encryption algorithm."""

    iv_bytes: int
    block_bytes: int  # payload + trailer are padded to this boundary
    aead_icv_bytes: int = 0  # > 0: AEAD, integrity must be null

    @property
    def aead(self) -> bool:
        return self.aead_icv_bytes > 0


IPSEC: dict[str, Any] = yaml.safe_load(IPSEC_FILE.read_text())  # read-only: the parsed ipsec.yaml

CIPHERS: dict[str, Cipher] = {
    name: Cipher(family["iv_bytes"], family["block_bytes"], family.get("aead_icv_bytes", 0))
    for family in IPSEC["ciphers"] for name in family["names"]}
# Truncated ICV length of each integrity algorithm in ESP.
INTEGRITY_ICV_BYTES: dict[str, int] = dict(IPSEC["integrity_icv_bytes"])
# libreswan's default ESP integrity list when none is given: size for the worst.
DEFAULT_INTEGRITY_ICV_BYTES: int = IPSEC["unspecified_integrity_icv_bytes"]
DH_GROUPS = frozenset(IPSEC["dh_groups"])
WEAK = frozenset(IPSEC["weak"])
OVERHEAD_BYTES: dict[str, int] = dict(IPSEC["overhead_bytes"])  # header sizes of the MTU arithmetic

_TOKEN = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class Proposal:
    """One proposal of an ike= or esp= line, e.g. aes256-sha2;modp2048."""

    text: str
    cipher_name: str
    cipher: Cipher
    integrity: tuple[str, ...]
    dh_groups: tuple[str, ...]

    def esp_icv_bytes(self) -> int:
        """ICV bytes this proposal appends to every ESP packet."""
        if self.cipher.aead:
            return self.cipher.aead_icv_bytes
        if not self.integrity:
            return DEFAULT_INTEGRITY_ICV_BYTES
        return max(INTEGRITY_ICV_BYTES[name] for name in self.integrity)


def parse_proposals(line: str, kind: str) -> list[Proposal]:
    """Parse a comma-separated ike= or esp= value; raise ProposalError naming the bad part.

    kind is "ike" or "esp": ESP proposals carry no DH group here (PFS follows IKE).
    """
    if kind not in ("ike", "esp"):
        raise ValueError(f"kind must be 'ike' or 'esp', not {kind!r}")
    if not isinstance(line, str) or not line.strip():
        raise ProposalError("is empty")
    return [_parse_one(part.strip().lower(), kind) for part in line.split(",")]


def proposal_line(proposals: Sequence[Proposal]) -> str:
    """The ike= or esp= value to write: the proposals as parsed, joined by bare commas.

    People write lists as `aes256-sha2, aes128-sha2`; libreswan's file parser ends a value
    at the blank and refuses the file (4.10 and 5.2), so the line is never written as typed.
    """
    return ",".join(proposal.text for proposal in proposals)


def _parts(text: str) -> tuple[list[str], list[str], list[str], str] | None:
    """(ciphers, integrity, dh) tokens of cipher[-integrity][(-|;)dh] and the separator before dh;
    None if not that shape."""
    parts = re.split(r"([-;])", text)
    groups, separators = [part.split("+") for part in parts[0::2]], parts[1::2]
    roles = ["integrity", "dh"] if separators[:1] == ["-"] else ["dh"]
    if len(groups) - 1 > len(roles) or any(not _TOKEN.fullmatch(t) for group in groups for t in group):
        return None
    by_role = dict(zip(roles, groups[1:]))
    return groups[0], by_role.get("integrity", []), by_role.get("dh", []), separators[-1] if separators else ""


def _parse_one(text: str, kind: str) -> Proposal:
    parts = _parts(text)
    if parts is None:
        raise ProposalError(f"proposal {text!r} is malformed (expected cipher-integrity-dhgroup or "
                            "cipher-integrity;dhgroup, alternatives joined by +)")
    ciphers, integrity_part, dh_part, dh_separator = parts
    tokens = [*ciphers, *integrity_part, *dh_part]
    weak = [token for token in tokens if token in WEAK]
    if weak:
        raise ProposalError(f"proposal {text!r} uses weak algorithm(s) {', '.join(weak)}")
    if len(ciphers) > 1:
        raise ProposalError(f"proposal {text!r} names more than one cipher: write one proposal per cipher, "
                            "separated by commas")
    cipher_name, rest = ciphers[0], tokens[1:]
    if cipher_name == "null":
        raise ProposalError(f"proposal {text!r} uses weak algorithm(s) null: no encryption")
    if cipher_name not in CIPHERS:
        raise ProposalError(f"proposal {text!r} has unknown cipher {cipher_name!r}")
    cipher = CIPHERS[cipher_name]
    unknown = [t for t in rest if t not in INTEGRITY_ICV_BYTES and t not in DH_GROUPS and t not in ("null", "none")]
    if unknown:
        raise ProposalError(f"proposal {text!r} has unknown algorithm(s) {', '.join(unknown)}")
    misplaced = [t for t in integrity_part if t not in INTEGRITY_ICV_BYTES and t != "null"] + [
        t for t in dh_part if t not in DH_GROUPS and t != "none"]
    if misplaced:
        raise ProposalError(f"proposal {text!r} has {', '.join(misplaced)} out of place: libreswan reads "
                            "cipher-integrity-dhgroup in that order")
    dh_groups = tuple(dh_part)
    nulls = [t for t in integrity_part if t == "null"]
    integrity = tuple(t for t in integrity_part if t != "null")
    if kind == "ike" and nulls and dh_part and dh_separator == "-":
        raise ProposalError(f"proposal {text!r}: after null libreswan reads a PRF, not a DH group: "
                            f"write {cipher_name}-null;{'+'.join(dh_groups)}")
    if nulls and not cipher.aead:
        raise ProposalError(f"proposal {text!r}: null integrity is only allowed with an AEAD cipher")
    if len(nulls) > 1:
        raise ProposalError(f"proposal {text!r} gives null more than once")
    if cipher.aead and integrity and kind == "esp":
        raise ProposalError(f"proposal {text!r}: AEAD cipher {cipher_name} needs integrity 'null' in ESP")
    if kind == "ike" and not cipher.aead and not integrity:
        raise ProposalError(f"proposal {text!r}: IKE needs an integrity/PRF algorithm")
    if kind == "ike" and "none" in dh_groups:
        raise ProposalError(f"proposal {text!r}: IKE needs a DH group, not none (no key exchange weakens IKE)")
    if kind == "esp" and dh_groups:
        raise ProposalError(f"proposal {text!r}: put DH groups in ike=, not esp=")
    return Proposal(text, cipher_name, cipher, integrity, dh_groups)


# --- certificate keys (lab:certKey): the `certificates` section of ipsec.yaml ---

class CertKeyError(ValueError):
    """A certificate key type that is weak or unknown."""


@dataclass(frozen=True)
class CertKey:
    """One allowed key type of the lab CA and the sites' certificates."""

    name: str  # as lab:certKey names it, e.g. "ecdsa-p256"
    family: str  # "rsa" or "ecdsa"
    bits: int | None  # RSA modulus size; None for ECDSA
    curve: str | None  # SEC 2 name of an ECDSA curve (secp256r1, secp384r1); None for RSA
    authby: str  # libreswan's authby= for it: rsa-sha2 (RSA-PSS, RFC 7427) or ecdsa
    hash: str  # the SHA-2 of certificate and IKE_AUTH signatures: sha256, sha384 or sha512


CERT_KEYS: dict[str, CertKey] = {
    name: CertKey(name, entry["family"], entry.get("bits"), entry.get("curve"), entry["authby"], entry["hash"])
    for name, entry in IPSEC["certificates"]["keys"].items()}
WEAK_CERT_KEYS: dict[str, str] = dict(IPSEC["certificates"]["weak_keys"])  # name -> why it is refused


def check_cert_key(text: str) -> CertKey:
    """The allowed key type named text; CertKeyError saying why not (weak: the reason; else unknown),
    listing the allowed ones."""
    allowed = f"allowed: {', '.join(CERT_KEYS)}"
    if text in WEAK_CERT_KEYS:
        raise CertKeyError(f"key type {text!r} is weak: {WEAK_CERT_KEYS[text]}; {allowed}")
    if text not in CERT_KEYS:
        raise CertKeyError(f"key type {text!r} is unknown; {allowed}")
    return CERT_KEYS[text]
