"""libreswan proposals as the pack reads them: the allowlist and the ESP sizes; and the
certificate key types (ipsec.yaml's `certificates` section).

The tables come from ipsec.yaml at the top of the checkout, the file the
program's lablib/crypto.py reads too; the grammar is written down there. The
parser is the pack's own (it imports nothing from lablib), so it double-checks
the program; tests/test_crypto_truth.py proves both give the same verdicts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml


IPSEC_FILE = Path(__file__).resolve().parents[2] / "ipsec.yaml"


@dataclass(frozen=True)
class Cipher:
    iv_bytes: int
    block_bytes: int  # payload + 2-byte trailer are padded to this
    aead_icv_bytes: int = 0  # AEAD ciphers carry their own ICV; integrity must be null in ESP


_TABLE: dict[str, Any] = yaml.safe_load(IPSEC_FILE.read_text())
CIPHERS: dict[str, Cipher] = {
    name: Cipher(family["iv_bytes"], family["block_bytes"], family.get("aead_icv_bytes", 0))
    for family in _TABLE["ciphers"] for name in family["names"]}
INTEGRITY_ICV_BYTES: dict[str, int] = dict(_TABLE["integrity_icv_bytes"])
NO_INTEGRITY_ICV_BYTES: int = _TABLE["unspecified_integrity_icv_bytes"]
DH_GROUPS = frozenset(_TABLE["dh_groups"])
WEAK: dict[str, str] = dict(_TABLE["weak"])  # algorithm -> why it is refused
OVERHEAD: dict[str, int] = dict(_TABLE["overhead_bytes"])
STRONG_EXAMPLE = "ike=aes256-sha2;modp2048 (or aes_gcm256-sha2_512;ecp384) and esp=aes_gcm128-null"
# Certificate key types (lab:certKey): name -> {family, bits or curve, authby, hash}, and the refused ones.
CERT_KEYS: dict[str, dict[str, Any]] = {name: dict(entry) for name, entry in _TABLE["certificates"]["keys"].items()}
WEAK_CERT_KEYS: dict[str, str] = dict(_TABLE["certificates"]["weak_keys"])  # key type -> why it is refused


@dataclass(frozen=True)
class Proposal:
    text: str
    cipher: Cipher | None  # None: not on the allowlist (the problems say why)
    integrity: tuple[str, ...]
    problems: tuple[str, ...]


def parse_proposals(line: Any, kind: str) -> list[Proposal]:
    """The comma-separated proposals of an ike= (kind "ike") or esp= line, each with its problems."""
    if not isinstance(line, str) or not line.strip():
        return [Proposal(str(line), None, (), ("is empty",))]
    return [_proposal(part.strip().lower(), kind) for part in line.split(",")]


def _parts(text: str) -> tuple[list[str], list[str], list[str], str] | None:
    """(ciphers, integrity, dh) of cipher[-integrity][(-|;)dh], alternatives joined by +, and the
    separator before dh; None if not that shape."""
    groups, separators = re.split(r"[-;]", text), re.findall(r"[-;]", text)
    tokens = [group.split("+") for group in groups]
    if not all(re.fullmatch(r"[a-z0-9_]+", token) for group in tokens for token in group):
        return None
    if separators[:1] == [";"]:  # cipher;dh: nothing may follow
        return (tokens[0], [], tokens[1], ";") if len(tokens) == 2 else None
    if len(tokens) > 3:
        return None
    return (tokens[0], tokens[1] if len(tokens) > 1 else [], tokens[2] if len(tokens) > 2 else [],
            separators[-1] if len(tokens) > 2 else "")


def _proposal(text: str, kind: str) -> Proposal:
    parts = _parts(text)
    if parts is None:
        return Proposal(text, None, (), ("is malformed (expected cipher-integrity;dhgroup)",))
    ciphers, integrity_part, dh_part, dh_separator = parts
    tokens = [*ciphers, *integrity_part, *dh_part]
    name, rest = ciphers[0], tokens[1:]
    problems = [f"{token}: {WEAK[token]}" for token in tokens if token in WEAK]
    cipher = CIPHERS.get(name)
    if len(ciphers) > 1:
        problems.append("one cipher per proposal (write alternatives as proposals separated by commas)")
    if name == "null":
        problems.append("null: no encryption")
    elif cipher is None and name not in WEAK:
        problems.append(f"cipher {name} is not on the allowlist (AES-CBC/CTR/GCM, ChaCha20-Poly1305)")
    integrity = tuple(token for token in integrity_part if token in INTEGRITY_ICV_BYTES)
    nulls = [token for token in integrity_part if token == "null"]
    dh = [token for token in dh_part if token in DH_GROUPS or token == "none"]
    unknown = [token for token in rest if token not in INTEGRITY_ICV_BYTES and token not in DH_GROUPS
               and token not in ("null", "none") and token not in WEAK]
    if unknown:
        problems.append(f"{', '.join(unknown)} not on the allowlist (SHA-2 integrity, DH groups of 2048+ bits)")
    out_of_place = [token for token in integrity_part if token in DH_GROUPS or token == "none"] + [
        token for token in dh_part if token in INTEGRITY_ICV_BYTES or token == "null"]
    if out_of_place:
        problems.append(f"{', '.join(out_of_place)} out of place (libreswan reads cipher-integrity-dhgroup)")
    if kind == "ike" and nulls and dh_part and dh_separator == "-":
        problems.append("after null libreswan reads a PRF, not a DH group: write cipher-null;dhgroup")
    if cipher is not None:
        if nulls and not cipher.aead_icv_bytes:  # ike=aes_gcm-null: libreswan picks SHA-2 PRFs
            problems.append("null integrity is only allowed with an AEAD cipher")
        if len(nulls) > 1:
            problems.append("null is given more than once")
        if kind == "esp" and cipher.aead_icv_bytes and integrity:
            problems.append(f"AEAD cipher {name} needs integrity null in esp=")
        if kind == "ike" and not cipher.aead_icv_bytes and not integrity and not set(rest) & WEAK.keys():
            problems.append("ike= needs an explicit SHA-2 integrity/PRF")
    if kind == "ike" and "none" in dh:
        problems.append("ike= needs a DH group, not none (no key exchange weakens IKE)")
    if kind == "esp" and dh:
        problems.append(f"esp= takes no DH group ({', '.join(dh)}): PFS follows the IKE SA; put groups in ike=")
    return Proposal(text, cipher, integrity, tuple(problems))


def largest_inner_packet(wan_mtu: int, proposal: Proposal, nat_t: bool) -> int | None:
    """Largest IPv4 packet ESP tunnel mode carries in one wan_mtu packet (None: unknown cipher)."""
    cipher = proposal.cipher
    if cipher is None:
        return None
    if cipher.aead_icv_bytes:
        icv = cipher.aead_icv_bytes
    elif proposal.integrity:
        icv = max(INTEGRITY_ICV_BYTES[name] for name in proposal.integrity)
    else:
        icv = NO_INTEGRITY_ICV_BYTES
    fixed = OVERHEAD["ipv4_header"] + (OVERHEAD["nat_t_udp_header"] if nat_t else 0) + OVERHEAD["esp_header"]
    room = wan_mtu - fixed - cipher.iv_bytes - icv
    return room - room % cipher.block_bytes - OVERHEAD["esp_trailer"]  # padding, then pad length + next header


def gre_overhead(key: bool) -> int:
    """Outer IPv4 + GRE (+ key) + the Ethernet header OVS carries."""
    return (OVERHEAD["ipv4_header"] + OVERHEAD["gre_header"] + (OVERHEAD["gre_key"] if key else 0)
            + OVERHEAD["ethernet_header"])


def tunnel_mtu_limit(wan_mtu: int, esp_lines: Iterable[Any], nat_t: bool) -> int | None:
    """The largest tunnel MTU for which every sizable ESP proposal fits wan_mtu."""
    sizes = [largest_inner_packet(wan_mtu, p, nat_t) for line in esp_lines for p in parse_proposals(line, "esp")]
    known = [size for size in sizes if size is not None]
    return min(known) if known else None


def cert_key_problem(name: Any) -> str | None:
    """Why a certificate key type is refused (weak: the table's reason; otherwise not allowed), or None."""
    allowed = f"allowed: {', '.join(CERT_KEYS)}"
    if isinstance(name, str) and name in WEAK_CERT_KEYS:
        return f"{name}: {WEAK_CERT_KEYS[name]} ({allowed})"
    if not isinstance(name, str) or name not in CERT_KEYS:
        return f"{name!r} is not an allowed key type ({allowed})"
    return None
