"""CrossGuard policies that judge the planned GRE-over-IPsec lab (pulumi-policy 1.21).

The pack is deliberately independent of the program: it imports nothing from
lablib and keeps its own small tables (ciphers, ESP sizes, weak algorithms), so
it double-checks what the program computed instead of repeating it.

What the policies read: the lab's components register their decisive
parameters as props (lab:index:Lab, LabNetworks, LabNode, Tunnel), which the
engine sends to resource policies as inputs; the libvirt resources are judged
on their own inputs.

Two things pulumi-policy 1.21 does not give a policy, and how this module copes:

* Secrets: Analyze and AnalyzeStack deserialize properties with
  proxy_secrets=False, which silently unwraps secrets, so a policy cannot tell
  a secret pre-shared key from a plain one. keep_secret_markers() (called by
  the pack's __main__.py) makes the analyzer use deserialize_inputs(), which
  keeps every secret as a pulumi_policy.Secret.
* Component props in stack policies: AnalyzeStack sends each resource's
  OUTPUTS, and a component's outputs are what it passed to register_outputs,
  not its props. Every resource policy therefore first records the inputs it
  was shown (the engine analyzes every resource before the stack), and the
  stack policies read those recorded inputs (plan()).

The stack name is not in the validation args either: it is taken from the
resource URN (urn:pulumi:STACK::project::type::name).
"""
from __future__ import annotations

import ipaddress
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import deserialize as _wire
from pulumi_policy import policy as _analyzer
from pulumi_policy import proxy as _proxy
from pulumi_policy import secret as _secret

LAB = "lab:index:Lab"
NETWORKS = "lab:index:LabNetworks"
NODE = "lab:index:LabNode"
TUNNEL = "lab:index:Tunnel"
DOMAIN = "libvirt:index/domain:Domain"
NETWORK = "libvirt:index/network:Network"
DYNAMIC = "pulumi-python:dynamic:Resource"

Report = Callable[..., None]

# --------------------------------------------------------------------------
# Wire format: keep secrets visible, undo the analyzer's proxies.

_STOCK_DESERIALIZE = _wire.deserialize_properties
_UNKNOWNS = frozenset(value for name, value in vars(_proxy).items()
                      if name.startswith("UNKNOWN_") and name.endswith("_VALUE"))


def deserialize_inputs(props: Mapping[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
    """pulumi_policy's deserialize_properties, except that a secret becomes Secret(value).

    proxy_secrets=True is the Remediate path: left to the library.
    """
    if proxy_secrets:
        return _STOCK_DESERIALIZE(dict(props), True)
    return {key: _keep_secrets(value) for key, value in props.items()}


def _keep_secrets(value: Any) -> Any:
    if isinstance(value, list):
        return [_keep_secrets(item) for item in value]
    if isinstance(value, dict):
        signature = value.get(_wire.SPECIAL_SIG_KEY)
        if signature == _wire.SPECIAL_SECRET_SIG:
            return Secret(_keep_secrets(value.get("value")))
        if signature is not None:  # assets and archives
            return _wire._deserialize_property(value)  # pylint: disable=protected-access
        return {key: _keep_secrets(item) for key, item in value.items()}
    return value


def keep_secret_markers() -> None:
    """Make the analyzer hand policies Secret(...) for secret inputs (call before PolicyPack)."""
    _analyzer.deserialize_properties = deserialize_inputs


def raw(value: Any) -> Any:
    """A plain copy of policy props: proxies undone; Secret markers and unknowns kept."""
    if isinstance(value, (_proxy._DictProxy, _proxy._ListProxy,  # pylint: disable=protected-access
                          _secret._DictSecretsProxy, _secret._ListSecretsProxy)):  # pylint: disable=protected-access
        value = value["__target"]
    if isinstance(value, Secret):
        return Secret(raw(value.value))
    if isinstance(value, Mapping):
        return {key: raw(value[key]) for key in value}
    if isinstance(value, (list, tuple)):
        return [raw(item) for item in value]
    return value


def reveal(value: Any) -> Any:
    """value with every Secret replaced by what it holds."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def is_unknown(value: Any) -> bool:
    """True for a value that is only known after `pulumi up` (an output during preview)."""
    return isinstance(value, str) and value in _UNKNOWNS


def stack_of(urn: str) -> str:
    """The stack name in urn:pulumi:STACK::project::type::name."""
    head = urn.split("::", 1)[0]
    return head[len("urn:pulumi:"):] if head.startswith("urn:pulumi:") else ""


# --------------------------------------------------------------------------
# The resources policies look at.

@dataclass
class Res:
    """One planned resource: type, name, URN and inputs (Secret markers kept)."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """An input with secrets revealed."""
        return reveal(self.props.get(key, default))

    def has(self, key: str) -> bool:
        return key in self.props

    @classmethod
    def of(cls, args: ResourceValidationArgs) -> Res:
        return cls(args.resource_type, args.name, args.urn, raw(args.props))


_RECORDED: dict[str, dict[str, Any]] = {}
_RECORDED_LOCK = threading.Lock()


def _record(args: ResourceValidationArgs, _report: Report) -> None:
    props = raw(args.props)
    with _RECORDED_LOCK:
        _RECORDED[args.urn] = props


def forget_recorded_inputs() -> None:
    """Start a new deployment (tests; the engine starts a new pack process)."""
    with _RECORDED_LOCK:
        _RECORDED.clear()


def plan(args: StackValidationArgs) -> list[Res]:
    """Every resource with its inputs: recorded by the resource policies, else what the stack sent."""
    with _RECORDED_LOCK:
        recorded = dict(_RECORDED)
    resources = sorted(args.resources, key=lambda r: r.urn)  # the engine sends them in map order
    return [Res(r.resource_type, r.name, r.urn, recorded.get(r.urn) or raw(r.props)) for r in resources]


def of_type(resources: Iterable[Res], typ: str) -> list[Res]:
    return [r for r in resources if r.type == typ]


def _components(args: StackValidationArgs, resources: list[Res], typ: str, key: str) -> list[Res]:
    """The components of typ, which must carry their props (key), else the policy cannot judge."""
    found = of_type(resources, typ)
    if any(not r.has(key) for r in found):
        args.not_applicable(f"{typ} props are not available (their inputs were not recorded: "
                            "keep at least one of the pack's resource policies enabled)")
    return found


def setting(args: ResourceValidationArgs | StackValidationArgs, schema: PolicyConfigSchema, key: str) -> Any:
    """A pack config value, or the schema's default (numbers arrive as floats)."""
    value = (args.get_config() or {}).get(key, schema.properties[key].get("default"))
    return int(value) if schema.properties[key].get("type") == "integer" else value


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=False) if text and not is_unknown(text) else None
    except ValueError:
        return None


def _address(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text)) if text and not is_unknown(text) else None
    except ValueError:
        return None


def _label(r: Res) -> str:
    kind = "dynamic resource" if r.type == DYNAMIC else r.type.rsplit(":", 1)[-1]
    return f"{kind} {r.name}"


def _show(value: Any) -> str:
    """A value for a message: numbers arrive as floats."""
    return repr(int(value) if isinstance(value, float) and value.is_integer() else value)


# --------------------------------------------------------------------------
# libreswan proposals: the allowlist and the ESP sizes (our own table).

@dataclass(frozen=True)
class Cipher:
    iv_bytes: int
    block_bytes: int  # payload + 2-byte trailer are padded to this
    aead_icv_bytes: int = 0  # AEAD ciphers carry their own ICV; integrity must be null in ESP


_AES_CBC = Cipher(16, 16)
_AES_CTR = Cipher(8, 4)
_AEAD = Cipher(8, 4, 16)
CIPHERS: dict[str, Cipher] = {
    **dict.fromkeys(("aes", "aes128", "aes192", "aes256",
                     "aes_cbc", "aes_cbc128", "aes_cbc192", "aes_cbc256"), _AES_CBC),
    **dict.fromkeys(("aes_ctr", "aes_ctr128", "aes_ctr192", "aes_ctr256"), _AES_CTR),
    **dict.fromkeys(("aes_gcm", "aes_gcm128", "aes_gcm192", "aes_gcm256",
                     "aes_gcm_16", "aes_gcm_16_128", "aes_gcm_16_192", "aes_gcm_16_256",
                     "aes_gcm_c", "aes_gcm_c_128", "aes_gcm_c_192", "aes_gcm_c_256",
                     "chacha20_poly1305"), _AEAD),
}
INTEGRITY_ICV_BYTES = {"sha2": 16, "sha2_256": 16, "sha256": 16, "sha2_384": 24, "sha384": 24,
                       "sha2_512": 32, "sha512": 32}
NO_INTEGRITY_ICV_BYTES = 32  # none given: libreswan may pick sha2_512, size for the worst
DH_GROUPS = frozenset({"modp2048", "modp3072", "modp4096", "modp6144", "modp8192",
                       "dh14", "dh15", "dh16", "dh17", "dh18", "dh19", "dh20", "dh21", "dh31",
                       "ecp256", "ecp384", "ecp521", "ecp_256", "ecp_384", "ecp_521", "curve25519"})
WEAK = {
    **dict.fromkeys(("3des", "3des_cbc"), "3DES has a 64-bit block (Sweet32)"),
    **dict.fromkeys(("des", "des_cbc"), "single DES is broken"),
    **dict.fromkeys(("null_auth_aes_gmac", "aes_gmac"), "it authenticates without encrypting"),
    "md5": "MD5 is broken",
    **dict.fromkeys(("sha1", "sha"), "SHA-1 is deprecated for IPsec (RFC 8247)"),
    **dict.fromkeys(("modp768", "dh1", "modp1024", "dh2", "modp1536", "dh5"),
                    "DH groups below 2048 bits are breakable"),
    **dict.fromkeys(("dh22", "dh23", "dh24"), "DH groups 22-24 are deprecated (RFC 8247)"),
}
STRONG_EXAMPLE = "ike=aes256-sha2;modp2048 (or aes_gcm256-sha2_512;ecp384) and esp=aes_gcm128-null"


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


def _proposal(text: str, kind: str) -> Proposal:
    tokens = re.split(r"[-;+]", text)
    if not all(re.fullmatch(r"[a-z0-9_]+", token) for token in tokens):
        return Proposal(text, None, (), ("is malformed (expected cipher-integrity;dhgroup)",))
    name, rest = tokens[0], tokens[1:]
    problems = [f"{token}: {WEAK[token]}" for token in tokens if token in WEAK]
    cipher = CIPHERS.get(name)
    if name == "null":
        problems.append("null: no encryption")
    elif cipher is None and name not in WEAK:
        problems.append(f"cipher {name} is not on the allowlist (AES-CBC/CTR/GCM, ChaCha20-Poly1305)")
    integrity = tuple(token for token in rest if token in INTEGRITY_ICV_BYTES)
    nulls = [token for token in rest if token == "null"]
    dh = [token for token in rest if token in DH_GROUPS or token == "none"]
    unknown = [token for token in rest if token not in INTEGRITY_ICV_BYTES and token not in DH_GROUPS
               and token not in ("null", "none") and token not in WEAK]
    if unknown:
        problems.append(f"{', '.join(unknown)} not on the allowlist (SHA-2 integrity, DH groups of 2048+ bits)")
    if cipher is not None:
        if nulls and not cipher.aead_icv_bytes:  # ike=aes_gcm-null: libreswan picks SHA-2 PRFs
            problems.append("null integrity is only allowed with an AEAD cipher")
        if kind == "esp" and cipher.aead_icv_bytes and integrity:
            problems.append(f"AEAD cipher {name} needs integrity null in esp=")
        if kind == "ike" and not cipher.aead_icv_bytes and not integrity and not set(rest) & WEAK.keys():
            problems.append("ike= needs an explicit SHA-2 integrity/PRF")
    if kind == "ike" and "none" in dh:
        problems.append("ike= needs a DH group, not none")
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
    fixed = 20 + (8 if nat_t else 0) + 8  # outer IPv4, NAT-T UDP, ESP header
    room = wan_mtu - fixed - cipher.iv_bytes - icv
    return room - room % cipher.block_bytes - 2  # padding, then pad length + next header


def gre_overhead(key: bool) -> int:
    """Outer IPv4 + GRE (+ key) + the Ethernet header OVS carries."""
    return 20 + 4 + (4 if key else 0) + 14


def tunnel_mtu_limit(wan_mtu: int, esp_lines: Iterable[Any], nat_t: bool) -> int | None:
    """The largest tunnel MTU for which every sizable ESP proposal fits wan_mtu."""
    sizes = [largest_inner_packet(wan_mtu, p, nat_t) for line in esp_lines for p in parse_proposals(line, "esp")]
    known = [size for size in sizes if size is not None]
    return min(known) if known else None


# --------------------------------------------------------------------------
# Policy construction helpers.

CheckResource = Callable[[Res, ResourceValidationArgs, Report], None]


def resource_policy(name: str, description: str, types: tuple[str, ...], check: CheckResource,
                    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
                    schema: PolicyConfigSchema | None = None) -> ResourceValidationPolicy:
    """A resource policy that records the inputs (for the stack policies), then checks types."""
    def validate(args: ResourceValidationArgs, report: Report) -> None:
        if args.resource_type in types:
            check(Res.of(args), args, report)
    return ResourceValidationPolicy(name=name, description=description, validate=[_record, validate],
                                    enforcement_level=enforcement, config_schema=schema)


def stack_policy(name: str, description: str, check: Callable[[StackValidationArgs, Report], None],
                 enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
                 schema: PolicyConfigSchema | None = None) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=check,
                                 enforcement_level=enforcement, config_schema=schema)


# --------------------------------------------------------------------------
# Crypto allowlist.

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
                report(f"{_label(r)}: {field} proposal {proposal.text!r}: {problem}. "
                       f"Set lab:{kind} to strong suites only, e.g. {STRONG_EXAMPLE}.")


crypto_allowlist = resource_policy(
    "ipsec-crypto-allowlist",
    "IKE and ESP proposals use strong suites only: AES or ChaCha20-Poly1305, SHA-2, DH of 2048+ bits.",
    (LAB, TUNNEL), check_crypto)

# --------------------------------------------------------------------------
# Keys.

KEY_SCHEMA = PolicyConfigSchema({"minKeyLength": {
    "type": "integer", "minimum": 16, "default": 32,
    "description": "Minimum length of every tunnel's pre-shared key, in characters."}})


def check_keys(r: Res, args: ResourceValidationArgs, report: Report) -> None:
    if r.type == DYNAMIC:
        if r.has("privateKey") and not isinstance(r.props["privateKey"], Secret):
            report(f"{_label(r)}: input privateKey (the SSH key that pushes the hub side) is not a secret: "
                   "pass it as pulumi.Output.secret(...).")
        return
    psk = r.props.get("psk")
    if psk is None or is_unknown(psk):
        if psk is None:
            report(f"{_label(r)}: has no pre-shared key (psk): derive one per tunnel from lab:masterSecret.")
        return
    if not isinstance(psk, Secret):
        report(f"{_label(r)}: the pre-shared key (psk) is a plain input, so it would be stored and shown "
               "unencrypted: pass it as pulumi.Output.secret(...).")
    minimum = setting(args, KEY_SCHEMA, "minKeyLength")
    value = reveal(psk)
    if not is_unknown(value) and len(str(value)) < minimum:
        report(f"{_label(r)}: the pre-shared key has {len(str(value))} characters, fewer than {minimum}: "
               "use a longer key (or lower minKeyLength in the pack config).")


keys_secret_and_long = resource_policy(
    "ipsec-keys-secret-and-long",
    "Every tunnel's pre-shared key (and the SSH key that pushes the hub side) is a secret; keys are long.",
    (TUNNEL, DYNAMIC), check_keys, schema=KEY_SCHEMA)


def _duplicates(items: Iterable[tuple[Any, Res]]) -> Iterator[tuple[Any, Res, Res]]:
    """(value, first, later) for every later resource that repeats a value."""
    first: dict[Any, Res] = {}
    for value, r in items:
        if value in (None, "") or is_unknown(value):
            continue
        if value in first:
            yield value, first[value], r
        else:
            first[value] = r


def check_unique_keys_and_ids(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    tunnels = _components(args, resources, TUNNEL, "spokeEnd")
    nodes = _components(args, resources, NODE, "role")
    for _value, first, later in _duplicates((r.get("psk"), r) for r in tunnels):
        report(f"{_label(later)} uses the same pre-shared key as {_label(first)}: give every tunnel its own key "
               "(the lab derives one per spoke from lab:masterSecret and the IKE IDs).", later.urn)
    spokes = [r for r in nodes if r.get("role") == "spoke"]
    hub_ids = {r.get("ikeId") for r in nodes if r.get("role") == "hub"}
    for value, first, later in _duplicates((r.get("ikeId"), r) for r in spokes):
        report(f"{_label(later)} has IKE ID {value}, as {_label(first)} does: every spoke needs its own ID "
               "(the hub tells spokes apart by it).", later.urn)
    for value, first, later in _duplicates(((r.get("spokeEnd") or {}).get("localId"), r) for r in tunnels):
        if first.get("spoke") == later.get("spoke"):
            continue  # two tunnels of one spoke: hub-spoke-wiring reports it
        report(f"{_label(later)}'s spoke end has IKE ID {value}, as {_label(first)}'s does: every spoke needs "
               "its own ID.", later.urn)
    for r in spokes:
        if r.get("ikeId") in hub_ids:
            report(f"{_label(r)} uses the hub's IKE ID {r.get('ikeId')}: give the spoke its own ID.", r.urn)


keys_and_ids_unique = stack_policy(
    "ipsec-keys-and-ids-unique",
    "No two tunnels share a pre-shared key and no two spokes share an IKE ID.",
    check_unique_keys_and_ids)

MIN_SEARCHED_KEY = 8  # shorter values could match by chance


def _plain_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string outside a Secret."""
    if isinstance(value, Secret):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _plain_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _plain_strings(item, f"{path}[{index}]")


def check_no_plaintext_keys(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    tunnels = _components(args, resources, TUNNEL, "spokeEnd")
    keys = {str(r.get("psk")): r for r in tunnels
            if r.get("psk") and not is_unknown(r.get("psk")) and len(str(r.get("psk"))) >= MIN_SEARCHED_KEY}
    for r in resources:
        # The Tunnel's own psk input is judged by ipsec-keys-secret-and-long.
        props = {k: v for k, v in r.props.items() if not (r.type == TUNNEL and k == "psk")}
        for path, text in _plain_strings(props, ""):
            for key, tunnel in keys.items():
                if key in text:
                    report(f"{_label(r)}: input {path} holds {_label(tunnel)}'s pre-shared key in plain text: "
                           "build it inside an apply of the secret key (or wrap it in pulumi.Output.secret) "
                           "so it stays encrypted.", r.urn)


keys_never_in_plaintext = stack_policy(
    "ipsec-keys-never-in-plaintext",
    "No pre-shared key appears in a non-secret input (cloud-init user data, files pushed to the hub).",
    check_no_plaintext_keys)

# --------------------------------------------------------------------------
# MTU.

MTU_SCHEMA = PolicyConfigSchema({"wanOverheadAllowance": {
    "type": "integer", "minimum": 0, "default": 0,
    "description": "Bytes the WAN path loses beyond the configured WAN MTU (e.g. 8 for an unplanned PPPoE "
                   "hop); the tunnel MTU must fit the reduced WAN MTU."}})


def _mtu_findings(wan_mtu: Any, tunnel: Any, inner: Any, esp_lines: list[Any], nat_t: bool, gre_key: bool,
                  allowance: int) -> Iterator[str]:
    wan, tunnel_mtu, inner_mtu = _number(wan_mtu), _number(tunnel), _number(inner)
    if wan is None or tunnel_mtu is None or inner_mtu is None:
        return
    limit = tunnel_mtu_limit(wan - allowance, esp_lines, nat_t)
    if limit is None:
        return  # no proposal we can size: ipsec-crypto-allowlist reports it
    esp = "/".join(sorted({str(line) for line in esp_lines}))
    path = f"WAN MTU {wan}" + (f" minus {allowance} allowance" if allowance else "")
    path += f", esp={esp}" + (", NAT-T" if nat_t else "")
    if tunnel_mtu > limit:
        yield (f"tunnel MTU {tunnel_mtu} exceeds {limit}, the largest packet ESP fits into one {path} packet: "
               f"ESP would fragment. Set the tunnel MTU to at most {limit} (the lab computes it from lab:wanMtu "
               "and lab:esp).")
    inner_limit = min(tunnel_mtu, limit) - gre_overhead(gre_key)
    if inner_mtu > inner_limit:
        yield (f"inner (br0) MTU {inner_mtu} exceeds {inner_limit}: GRE{' with key' if gre_key else ''} over "
               f"OVS adds {gre_overhead(gre_key)} bytes to the tunnel MTU. Set the inner MTU to at most "
               f"{inner_limit}.")


def check_mtu(args: StackValidationArgs, report: Report) -> None:
    allowance = setting(args, MTU_SCHEMA, "wanOverheadAllowance")
    resources = plan(args)
    tunnels = _components(args, resources, TUNNEL, "tunnelMtu")
    nodes = _components(args, resources, NODE, "tunnelMtu")
    labs = _components(args, resources, LAB, "esp")
    for t in tunnels:
        ends = [t.get("hubEnd") or {}, t.get("spokeEnd") or {}]
        nat_t = t.get("natT") is not False
        gre_key = bool(t.get("greKey")) or any((t.get(p) or {}).get("key") is not None
                                               for p in ("hubPort", "spokePort"))
        for finding in _mtu_findings(t.get("wanMtu"), t.get("tunnelMtu"), t.get("innerMtu"),
                                     [end.get("esp") for end in ends], nat_t, gre_key, allowance):
            report(f"{_label(t)}: {finding}", t.urn)
    # Nodes carry the MTUs their payload sets; size them for the lab's ESP and the worst NAT-T/GRE key case.
    esp_lines = [lab.get("esp") for lab in labs] or [(t.get("spokeEnd") or {}).get("esp") for t in tunnels]
    nat_t = any(t.get("natT") is not False for t in tunnels) or not tunnels
    gre_key = any(bool(t.get("greKey")) for t in tunnels) or not tunnels
    for n in nodes:
        for finding in _mtu_findings(n.get("wanMtu"), n.get("tunnelMtu"), n.get("innerMtu"), esp_lines,
                                     nat_t, gre_key, allowance):
            report(f"{_label(n)}: {finding}", n.urn)
    # The libvirt network a node's WAN address lives on must carry the WAN MTU the tunnel MTU assumed.
    networks = [(net, [_network(a) for a in net.get("addresses") or []]) for net in of_type(resources, NETWORK)]
    for n in nodes:
        wan_address, wan_mtu = _address(n.get("wanAddress")), _number(n.get("wanMtu"))
        if wan_address is None or wan_mtu is None:
            continue
        for net, subnets in networks:
            net_mtu = _number(net.get("mtu")) or 1500  # libvirt's default
            if any(s is not None and wan_address in s for s in subnets) and net_mtu < wan_mtu:
                report(f"{_label(net)} has MTU {net_mtu}, but {_label(n)}'s tunnel MTU was computed for a WAN "
                       f"MTU of {wan_mtu}: set lab:wanMtu to {net_mtu} (or raise the network's MTU).", net.urn)


mtu_fits = stack_policy(
    "mtu-esp-never-fragments",
    "Tunnel and inner MTUs leave room for ESP, NAT-T and GRE on the WAN MTU, so ESP never fragments.",
    check_mtu, schema=MTU_SCHEMA)

# --------------------------------------------------------------------------
# Wiring.

IFNAMSIZ = 15  # Linux interface names (OVS ports are interfaces) have at most 15 characters


def check_tunnel_ends(r: Res, _args: ResourceValidationArgs, report: Report) -> None:
    hub, spoke = r.get("hubEnd") or {}, r.get("spokeEnd") or {}
    hub_port, spoke_port = r.get("hubPort") or {}, r.get("spokePort") or {}
    pairs = [
        ("hubEnd.localId", hub.get("localId"), "spokeEnd.remoteId", spoke.get("remoteId")),
        ("hubEnd.remoteId", hub.get("remoteId"), "spokeEnd.localId", spoke.get("localId")),
        ("hubEnd.localOverlay", hub.get("localOverlay"), "spokeEnd.remoteOverlay", spoke.get("remoteOverlay")),
        ("hubEnd.remoteOverlay", hub.get("remoteOverlay"), "spokeEnd.localOverlay", spoke.get("localOverlay")),
        ("hubEnd.localAddress", hub.get("localAddress"), "spokeEnd.remoteAddress", spoke.get("remoteAddress")),
        ("hubEnd.ike", hub.get("ike"), "spokeEnd.ike", spoke.get("ike")),
        ("hubEnd.esp", hub.get("esp"), "spokeEnd.esp", spoke.get("esp")),
        ("hubEnd.interfaceMode", hub.get("interfaceMode"), "spokeEnd.interfaceMode", spoke.get("interfaceMode")),
        ("hubEnd.tunnelMark", hub.get("tunnelMark"), "spokeEnd.tunnelMark", spoke.get("tunnelMark")),
        ("hubPort.localIp", hub_port.get("localIp"), "spokePort.remoteIp", spoke_port.get("remoteIp")),
        ("hubPort.remoteIp", hub_port.get("remoteIp"), "spokePort.localIp", spoke_port.get("localIp")),
        ("hubPort.key", hub_port.get("key"), "spokePort.key", spoke_port.get("key")),
        # GRE runs between the overlay addresses the IPsec policy covers.
        ("hubPort.localIp", hub_port.get("localIp"), "hubEnd.localOverlay", hub.get("localOverlay")),
        ("spokePort.localIp", spoke_port.get("localIp"), "spokeEnd.localOverlay", spoke.get("localOverlay")),
    ]
    for left, a, right, b in pairs:
        if a != b and not is_unknown(a) and not is_unknown(b):
            report(f"{_label(r)}: {left} = {_show(a)} but {right} = {_show(b)}: the two ends must mirror each other.")
    if r.has("greKey") and bool(r.get("greKey")) != (hub_port.get("key") is not None):
        report(f"{_label(r)}: greKey is {r.get('greKey')} but hubPort.key is {hub_port.get('key')!r}: "
               "set a GRE key on both ports exactly when greKey is true.")
    for name, end in (("hubEnd", hub), ("spokeEnd", spoke)):
        mark, interface = _number(end.get("tunnelMark")), end.get("interfaceName")
        if end.get("interfaceMode") == "xfrm" and mark is not None and interface != f"ipsec{mark}":
            report(f"{_label(r)}: {name}.interfaceName is {interface!r} but libreswan names the XFRM interface "
                   f"with ID {mark} ipsec{mark}: use ipsec{mark}.")
    names = [("hubPort.name", hub_port.get("name")), ("spokePort.name", spoke_port.get("name")),
             ("hubEnd.interfaceName", hub.get("interfaceName")),
             ("spokeEnd.interfaceName", spoke.get("interfaceName"))]
    for field, value in names:
        if not isinstance(value, str) or is_unknown(value):
            continue
        if not value or len(value) > IFNAMSIZ or re.search(r"[\s/:]", value):
            report(f"{_label(r)}: {field} {value!r} is not a valid Linux interface name (1-{IFNAMSIZ} "
                   "characters, no spaces, '/' or ':'): shorten it.")
    pool = _network(r.get("overlayPool"))
    overlays = [("hubEnd.localOverlay", hub.get("localOverlay")), ("spokeEnd.localOverlay", spoke.get("localOverlay"))]
    for field, value in overlays:
        address = _address(value)
        if pool is not None and address is not None and address not in pool:
            report(f"{_label(r)}: {field} {value} is outside overlayPool {pool}: take overlay addresses from "
                   "lab:overlayPool.")
    if _address(hub.get("localOverlay")) is not None and hub.get("localOverlay") == spoke.get("localOverlay"):
        report(f"{_label(r)}: hub and spoke share overlay address {hub.get('localOverlay')}: give each its own.")


tunnel_ends_agree = resource_policy(
    "tunnel-ends-agree",
    "Both ends of a tunnel mirror each other (IDs, overlays, proposals, interface, GRE ports); names fit Linux.",
    (TUNNEL,), check_tunnel_ends)


def check_wiring(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    nodes = _components(args, resources, NODE, "role")
    tunnels = _components(args, resources, TUNNEL, "spoke")
    hubs = [n for n in nodes if n.get("role") == "hub"]
    spokes = [n for n in nodes if n.get("role") == "spoke"]
    by_site: dict[Any, list[Res]] = {}
    for t in tunnels:
        by_site.setdefault(t.get("spoke"), []).append(t)
    for n in spokes:
        found = by_site.get(n.get("site"), [])
        if len(found) != 1:
            names = ", ".join(t.name for t in found) or "none"
            report(f"{_label(n)} has {len(found)} tunnels to the hub ({names}): every spoke needs exactly one "
                   "Tunnel (one per spoke in lab:spokes).", n.urn)
            continue
        t = found[0]
        spoke_end = t.get("spokeEnd") or {}
        for field, mine in (("localId", "ikeId"), ("localOverlay", "overlayAddress")):
            if spoke_end.get(field) != n.get(mine):
                report(f"{_label(t)}: spokeEnd.{field} is {spoke_end.get(field)!r} but {_label(n)} has "
                       f"{mine} {n.get(mine)!r}: the tunnel must use the spoke's own values.", t.urn)
    known_sites = {n.get("site") for n in spokes}
    for site, found in by_site.items():
        if site not in known_sites:
            for t in found:
                report(f"{_label(t)} leads to {site!r}, which is not a spoke of this lab: remove it or add the "
                       "spoke.", t.urn)
    if len(hubs) == 1:
        hub = hubs[0]
        for t in tunnels:
            hub_end = t.get("hubEnd") or {}
            for field, mine in (("localId", "ikeId"), ("localOverlay", "overlayAddress"),
                                ("localAddress", "wanAddress")):
                if hub_end.get(field) != hub.get(mine):
                    report(f"{_label(t)}: hubEnd.{field} is {hub_end.get(field)!r} but the hub {_label(hub)} has "
                           f"{mine} {hub.get(mine)!r}: the tunnel must use the hub's values.", t.urn)
    for value, first, later in _duplicates((n.get("overlayAddress"), n) for n in nodes):
        report(f"{_label(later)} has overlay address {value}, as {_label(first)} does: overlay addresses must be "
               "unique (hub .1, spoke N .N+1 of lab:overlayPool).", later.urn)
    for value, first, later in _duplicates(((t.get("hubPort") or {}).get("name"), t) for t in tunnels):
        report(f"{_label(later)}'s hub GRE port {value} has the same name as {_label(first)}'s: both live on the "
               "hub's br0, so each needs its own name.", later.urn)
    bridges = [(n, _interface(n.get("bridgeAddress"))) for n in nodes]
    for value, first, later in _duplicates((b.ip if b else None, n) for n, b in bridges):
        report(f"{_label(later)} has bridge address {value}, as {_label(first)} does: every site needs its own "
               "br0 address.", later.urn)
    subnets = {b.network for _n, b in bridges if b is not None}
    if len(subnets) > 1:
        report(f"the sites' br0 addresses are in different subnets ({', '.join(map(str, sorted(subnets)))}): "
               "the shared L2 segment needs one lab:bridgeSubnet.")
    for lab in of_type(resources, LAB):
        planned, hub_id = _number(lab.get("spokes")), lab.get("hubId")
        if planned is not None and planned != len(spokes):
            report(f"{_label(lab)} plans {planned} spokes but {len(spokes)} spoke nodes exist: every spoke in "
                   "lab:spokes needs its node and tunnel.", lab.urn)
        if len(hubs) == 1 and hub_id is not None and hub_id != hubs[0].get("ikeId"):
            report(f"{_label(lab)} has hubId {hub_id!r} but the hub node's ikeId is {hubs[0].get('ikeId')!r}: "
                   "use one hub ID.", lab.urn)


def _interface(text: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    try:
        return ipaddress.ip_interface(str(text)) if text and not is_unknown(text) else None
    except ValueError:
        return None


hub_spoke_wiring = stack_policy(
    "hub-spoke-wiring",
    "Every spoke has exactly one tunnel to the hub, with the nodes' own IDs and addresses; overlay and "
    "bridge addresses and hub GRE ports are unique.",
    check_wiring)

# --------------------------------------------------------------------------
# Networks.


def _overlaps(named: list[tuple[str, Any, Res]]) -> Iterator[tuple[tuple[str, Any, Res], tuple[str, Any, Res]]]:
    """Pairs of (label, network, resource) that overlap, each pair once."""
    ordered = sorted(((label, net, r) for label, net, r in named if net is not None),
                     key=lambda item: (item[1].version, item[1].network_address))
    for index, first in enumerate(ordered):
        for second in ordered[index + 1:]:
            if second[1].version != first[1].version or second[1].network_address > first[1].broadcast_address:
                break  # sorted by start: nothing later overlaps first
            yield first, second


def check_subnets(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    libvirt = [(f"{_label(r)} {a}", _network(a), r) for r in of_type(resources, NETWORK)
               for a in r.get("addresses") or []]
    for (label_a, _a, ra), (label_b, _b, rb) in _overlaps(libvirt):
        if ra is not rb:
            report(f"{label_b} overlaps {label_a}: every lab network needs its own subnet (check "
                   "lab:hubSubnet, lab:spokeSubnetPool, lab:siteSubnetPrefix, lab:mgmtSubnet).", rb.urn)
    planned = [(f"{_label(r)} subnets.{key} {value}", _network(value), r)
               for r in _components(args, resources, NETWORKS, "subnets")
               for key, value in (r.get("subnets") or {}).items()]
    for (label_a, _a, _ra), (label_b, _b, rb) in _overlaps(planned):
        report(f"{label_b} overlaps {label_a}: every lab subnet must be distinct.", rb.urn)
    # The overlay pool and the br0 subnet must not collide with the underlay or the management network.
    extra = [(f"{_label(r)} overlayPool {r.get('overlayPool')}", _network(r.get("overlayPool")), r)
             for r in of_type(resources, LAB)]
    bridge = {}
    for n in of_type(resources, NODE):
        interface = _interface(n.get("bridgeAddress"))
        if interface is not None:
            bridge.setdefault(interface.network, n)
    extra += [(f"bridge subnet {net} ({_label(n)})", net, n) for net, n in bridge.items()]
    underlay = planned or libvirt
    for index, (label, net, r) in enumerate(extra):
        for other_label, other, _other in underlay + extra[index + 1:]:
            if net is not None and other is not None and net.overlaps(other):
                report(f"{label} overlaps {other_label}: the overlay pool (lab:overlayPool), the br0 subnet "
                       "(lab:bridgeSubnet) and the lab networks must all be distinct.", r.urn)


lab_subnets_distinct = stack_policy(
    "lab-subnets-distinct",
    "No two lab subnets overlap: libvirt networks, the planned site and management subnets, the overlay "
    "pool and the br0 subnet.",
    check_subnets)

ISOLATED_MODES = ("none", "isolated")


def check_mgmt(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    planned = _components(args, resources, NETWORKS, "subnets")
    nodes = _components(args, resources, NODE, "role")
    for r in planned:
        mode = r.get("mgmtMode")
        if mode not in ISOLATED_MODES and not is_unknown(mode):
            report(f"{_label(r)}: mgmtMode is {mode!r}: the management network must not forward or NAT "
                   f"(use {' or '.join(ISOLATED_MODES)}).", r.urn)
    mgmt_subnets = [_network((r.get("subnets") or {}).get("mgmt")) for r in planned]
    mgmt_subnets = [s for s in mgmt_subnets if s is not None]
    for net in of_type(resources, NETWORK):
        subnets = [_network(a) for a in net.get("addresses") or []]
        if not any(s is not None and s.overlaps(m) for s in subnets for m in mgmt_subnets):
            continue
        mode = net.get("mode", "nat")  # the provider's default mode is nat
        if mode not in ISOLATED_MODES and not is_unknown(mode):
            report(f"{_label(net)} carries the management subnet but has mode {mode!r}: set mode none so the "
                   "management network never routes into the underlay.", net.urn)
    for n in nodes:
        wan, mgmt = _address(n.get("wanAddress")), _address(n.get("mgmtAddress"))
        for subnet in mgmt_subnets:
            if wan is not None and wan in subnet:
                report(f"{_label(n)}: WAN address {wan} is inside the management subnet {subnet}: the underlay "
                       "must not use the management network.", n.urn)
            if mgmt is not None and mgmt not in subnet:
                report(f"{_label(n)}: management address {mgmt} is outside the management subnet {subnet}: "
                       "management traffic must stay on the management network.", n.urn)


mgmt_network_separate = stack_policy(
    "mgmt-network-separate",
    "The management network is isolated (mode none) and separate from the underlay: no WAN address in it, "
    "every management address inside it.",
    check_mgmt)

# --------------------------------------------------------------------------
# Capacity and domains.

CAPACITY_SCHEMA = PolicyConfigSchema({
    "maxMemoryMib": {"type": "integer", "minimum": 256, "default": 16384,
                     "description": "Memory budget for all lab VMs together, in MiB."},
    "maxVcpus": {"type": "integer", "minimum": 1, "default": 16,
                 "description": "vCPU budget for all lab VMs together."},
})


def check_capacity(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    domains = of_type(resources, DOMAIN)
    anchor = next((r.urn for r in of_type(resources, LAB)), None)
    memory = sum(_number(d.get("memory", 512)) or 0 for d in domains)  # provider defaults: 512 MiB, 1 vCPU
    vcpus = sum(_number(d.get("vcpu", 1)) or 0 for d in domains)
    for total, unit, key, change in ((memory, "MiB of memory", "maxMemoryMib", "lab:memoryMib"),
                                     (vcpus, "vCPUs", "maxVcpus", "lab:vcpus")):
        budget = setting(args, CAPACITY_SCHEMA, key)
        if total > budget:
            report(f"the stack's {len(domains)} VMs need {total} {unit}, over the budget of {budget}: lower "
                   f"lab:spokes or {change}, or raise {key} in the pack config.", anchor)


capacity_budget = stack_policy(
    "capacity-budget",
    "All lab VMs together stay within the memory and vCPU budget of the host.",
    check_capacity, enforcement=EnforcementLevel.ADVISORY, schema=CAPACITY_SCHEMA)

KVM_SCHEMA = PolicyConfigSchema({"productionStackPattern": {
    "type": "string", "default": r"(^|[^a-z])prod(uction)?([^a-z]|$)",
    "description": "Case-insensitive regular expression: stacks whose name matches must use KVM."}})


def is_production(stack: str, pattern: str) -> bool:
    return re.search(pattern, stack, re.IGNORECASE) is not None


def check_kvm(r: Res, args: ResourceValidationArgs, report: Report) -> None:
    stack = stack_of(r.urn)
    domain_type = r.get("type", "kvm")  # the provider's default
    if is_production(stack, setting(args, KVM_SCHEMA, "productionStackPattern")) and \
            domain_type != "kvm" and not is_unknown(domain_type):
        report(f"{_label(r)}: stack {stack!r} is a production stack but the domain type is {domain_type!r} "
               "(software emulation): set lab:domainType to kvm.")


production_needs_kvm = resource_policy(
    "production-needs-kvm",
    "Domains of a stack whose name says production use hardware virtualization (type kvm).",
    (DOMAIN,), check_kvm, schema=KVM_SCHEMA)


def check_cloudinit(args: StackValidationArgs, report: Report) -> None:
    for d in of_type(plan(args), DOMAIN):
        if d.get("cloudinit") in (None, ""):
            report(f"{_label(d)} has no cloudinit disk: without it the VM never gets its network, keys and "
                   "tunnel config; attach the node's CloudInitDisk.", d.urn)


domains_have_cloudinit = stack_policy(
    "domains-have-cloudinit",
    "Every libvirt domain boots with a cloud-init disk.",
    check_cloudinit)


def check_single_hub(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    hubs = [n for n in _components(args, resources, NODE, "role") if n.get("role") == "hub"]
    if not hubs:
        report("the lab has no hub node (LabNode with role hub): every spoke's tunnel ends on the hub.",
               next((r.urn for r in of_type(resources, LAB)), None))
    for extra in hubs[1:]:
        report(f"{_label(extra)} is a second hub (after {_label(hubs[0])}): the lab has exactly one hub.",
               extra.urn)


single_hub = stack_policy(
    "single-hub",
    "The lab has exactly one hub.",
    check_single_hub)

POLICIES = [
    crypto_allowlist,
    keys_secret_and_long,
    keys_and_ids_unique,
    keys_never_in_plaintext,
    mtu_fits,
    tunnel_ends_agree,
    hub_spoke_wiring,
    lab_subnets_distinct,
    mgmt_network_separate,
    capacity_budget,
    production_needs_kvm,
    domains_have_cloudinit,
    single_hub,
]
