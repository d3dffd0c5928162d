"""libreswan proposal strings: parse, reject weak suites, and size ESP overhead.

The ESP overhead of each proposal feeds the MTU arithmetic, so the table of
ciphers here is also the table of IV, ICV and padding sizes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


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


_AES_CBC = Cipher(iv_bytes=16, block_bytes=16)
_AES_CTR = Cipher(iv_bytes=8, block_bytes=4)
_AEAD_16 = Cipher(iv_bytes=8, block_bytes=4, aead_icv_bytes=16)

CIPHERS: dict[str, Cipher] = {
    **{name: _AES_CBC for name in (
        "aes", "aes128", "aes192", "aes256",
        "aes_cbc", "aes_cbc128", "aes_cbc192", "aes_cbc256")},
    **{name: _AES_CTR for name in ("aes_ctr", "aes_ctr128", "aes_ctr192", "aes_ctr256")},
    **{name: _AEAD_16 for name in (
        "aes_gcm", "aes_gcm128", "aes_gcm192", "aes_gcm256",
        "aes_gcm_16", "aes_gcm_16_128", "aes_gcm_16_256", "chacha20_poly1305")},
}

# Truncated ICV length of each integrity algorithm in ESP (RFC 4868 and friends).
INTEGRITY_ICV_BYTES: dict[str, int] = {
    "sha2": 16, "sha2_256": 16, "sha256": 16,
    "sha2_384": 24, "sha384": 24,
    "sha2_512": 32, "sha512": 32,
}
# libreswan's default ESP integrity list when none is given: size for the worst.
DEFAULT_INTEGRITY_ICV_BYTES = 32

DH_GROUPS = frozenset({
    "modp2048", "modp3072", "modp4096", "modp6144", "modp8192",
    "dh14", "dh15", "dh16", "dh17", "dh18",
    "dh19", "dh20", "dh21", "ecp256", "ecp384", "ecp521",
    "dh31", "curve25519", "none",
})

WEAK = frozenset({
    "3des", "3des_cbc", "des", "des_cbc", "null", "null_auth_aes_gmac",
    "md5", "sha1", "sha",
    "modp768", "modp1024", "modp1536", "dh1", "dh2", "dh5", "dh22", "dh23", "dh24",
})

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
    if not line or not line.strip():
        raise ProposalError("is empty")
    return [_parse_one(part.strip().lower(), kind) for part in line.split(",")]


def _parse_one(text: str, kind: str) -> Proposal:
    tokens = re.split(r"[-;+]", text)
    if not text or any(not _TOKEN.fullmatch(token) for token in tokens):
        raise ProposalError(f"proposal {text!r} is malformed (expected cipher-integrity[-dhgroup])")
    weak = [token for token in tokens if token in WEAK]
    cipher_name, rest = tokens[0], tokens[1:]
    if weak and not (weak == ["null"] and cipher_name != "null"):
        raise ProposalError(f"proposal {text!r} uses weak algorithm(s) {', '.join(weak)}")
    if cipher_name not in CIPHERS:
        raise ProposalError(f"proposal {text!r} has unknown cipher {cipher_name!r}")
    cipher = CIPHERS[cipher_name]
    integrity = tuple(t for t in rest if t in INTEGRITY_ICV_BYTES)
    dh_groups = tuple(t for t in rest if t in DH_GROUPS)
    nulls = tuple(t for t in rest if t == "null")
    unknown = [t for t in rest if t not in INTEGRITY_ICV_BYTES and t not in DH_GROUPS and t != "null"]
    if unknown:
        raise ProposalError(f"proposal {text!r} has unknown algorithm(s) {', '.join(unknown)}")
    if nulls and not cipher.aead:
        raise ProposalError(f"proposal {text!r}: null integrity is only allowed with an AEAD cipher")
    if cipher.aead and integrity and kind == "esp":
        raise ProposalError(f"proposal {text!r}: AEAD cipher {cipher_name} needs integrity 'null' in ESP")
    if kind == "ike" and not cipher.aead and not integrity:
        raise ProposalError(f"proposal {text!r}: IKE needs an integrity/PRF algorithm")
    if kind == "esp" and dh_groups:
        raise ProposalError(f"proposal {text!r}: put DH groups in ike=, not esp=")
    return Proposal(text, cipher_name, cipher, integrity, dh_groups)
