"""Stack config: parse and validate every key before any resource is declared.

Values arrive as Pulumi delivers them, strings (arrays as JSON). Defaults
live in Pulumi.yaml's config block only; the engine fills them in, and the
tests do the same from that file.
"""
from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from dataclasses import dataclass
from typing import Mapping

from lablib import inputs, names
from lablib.addressing import AddressPlan, AddressSettings, Site, build_plan
from lablib.auth import AUTH_KEYS, parse_auth
from lablib.boot import HUB_KEYS, KEYS, BootFiles, check_seed_reader, parse_boot
from lablib.crypto import Proposal, ProposalError, parse_proposals, proposal_line
from lablib.errors import ConfigError
from lablib.hosts import HOSTS, SPOKE_HOSTS, HostPlan, plan_hosts
from lablib.mtu import MtuPlan, plan_site_mtus
from lablib.netcheck import check_special
from lablib.remedies import COMPUTED_MTU, REMEDY_KEYS, TCP, check_tcp_kernels, parse_remedies
from lablib.sshkeys import check_key_pair
from lablib.wan import WanImpairment

__all__ = ["ConfigError", "LabConfig", "LabSpec", "PLAIN_KEYS", "SECRET_KEYS", "parse_config"]

MAX_SPOKES = 250
INTERFACE_MODES = ("vti", "xfrm")
# Per-spoke exceptions to interfaceMode: vtiSpokes, xfrmSpokes (spoke numbers, like routedSpokes).
MODE_SPOKE_KEYS = {mode: f"{mode}Spokes" for mode in INTERFACE_MODES}
DOMAIN_TYPES = ("kvm", "qemu")
SECRET_KEYS = ("masterSecret", "sshPrivateKey")
PLAIN_KEYS = (
    "spokes", "routedSpokes", "hubSubnet", "spokeSubnetPool", "siteSubnetPrefix", "overlayPool",
    "bridgeSubnet", "mgmtSubnet", "wanMtu", "interfaceMode", *MODE_SPOKE_KEYS.values(), "tunnelMark", "ike", "esp",
    "greKey", *REMEDY_KEYS,
    "dpdDelay", "retransmitTimeout", *AUTH_KEYS, "image", "kernel", "initrd", "kernelCmdline", *HUB_KEYS,
    "domainType", "memoryMib", "vcpus", "installPackages", "poolPath", "sshPublicKey", HOSTS, SPOKE_HOSTS,
)
MIN_MASTER_SECRET = 16
# libreswan's own retransmit-timeout (4.x and 5.x): a conn that keeps it does not say it.
LIBRESWAN_RETRANSMIT_TIMEOUT = 60


@dataclass(frozen=True)
class LabConfig:
    """Validated, typed stack config (secrets excluded: they stay Outputs)."""

    addresses: AddressSettings  # the keys the address plan is computed from
    wan_mtu: int
    interface_mode: str  # the hub's, and every spoke's not in spoke_modes
    tunnel_mark: int
    ike: str
    esp: str
    gre_key: bool
    dpd_delay: int
    boot: BootFiles  # the spokes' (and the hub's, unless hub_boot differs)
    hub_boot: BootFiles
    domain_type: str
    memory_mib: int
    vcpus: int
    install_packages: bool
    pool_path: str
    ssh_public_key: str
    spoke_modes: tuple[tuple[int, str], ...] = ()  # (spoke number, mode) where it is not interface_mode
    retransmit_timeout: int = LIBRESWAN_RETRANSMIT_TIMEOUT  # seconds (lab:retransmitTimeout)
    # Authentication (lablib/auth.py): the hub's and every spoke's not in spoke_auths; "psk" or "cert".
    auth: str = "psk"
    spoke_auths: tuple[tuple[int, str], ...] = ()  # (spoke number, auth) where it is not auth
    cert_key: str = "ecdsa-p256"  # a name of lablib.crypto.CERT_KEYS: the CA's and every site's key type
    ca_valid_until: datetime.date = datetime.date(2036, 12, 31)  # notAfter of the CA and every certificate
    revoked_spokes: frozenset[int] = frozenset()  # cert spokes whose certificate the hub refuses
    # Remedies (lablib/remedies.py): (spoke number, remedy) where it is not computed-mtu, and
    # (spoke number, WAN MTU) where it is not wan_mtu.
    spoke_remedies: tuple[tuple[int, str], ...] = ()
    spoke_wan_mtus: tuple[tuple[int, int], ...] = ()
    # (spoke number, the impairment its WAN starts with) where lab:spokeWans declares one.
    spoke_wan_impairments: tuple[tuple[int, WanImpairment], ...] = ()

    @property
    def tunnel_interface(self) -> str:
        """The default mode's device: every spoke of that mode, and the hub, have it."""
        return names.tunnel_interface(self.interface_mode, self.tunnel_mark)

    def mode_of(self, spoke: int) -> str:
        """The route-based interface of spoke number `spoke`'s own end (the hub's end of every
        tunnel is interface_mode: lablib.tunnel.spoke_tunnel says why)."""
        return dict(self.spoke_modes).get(spoke, self.interface_mode)

    def interface_of(self, spoke: int) -> str:
        return names.tunnel_interface(self.mode_of(spoke), self.tunnel_mark)

    def boot_of(self, is_hub: bool) -> BootFiles:
        return self.hub_boot if is_hub else self.boot

    def auth_of(self, spoke: int) -> str:
        """How spoke number `spoke` authenticates, "psk" or "cert" (its hub-side conn alike)."""
        return dict(self.spoke_auths).get(spoke, self.auth)

    def remedy_of(self, spoke: int) -> str:
        """What keeps spoke number `spoke`'s ESP from fragmenting (lablib.remedies.REMEDIES)."""
        return dict(self.spoke_remedies).get(spoke, COMPUTED_MTU)

    def wan_impairment_of(self, spoke: int) -> WanImpairment:
        """The impairment spoke number `spoke`'s WAN starts with (lab:spokeWans; none by default)."""
        return dict(self.spoke_wan_impairments).get(spoke, WanImpairment())

    @property
    def uses_certs(self) -> bool:
        """Any site authenticates with a certificate: then the lab has a CA and the hub a certificate too."""
        return self.auth == "cert" or any(auth == "cert" for _spoke, auth in self.spoke_auths)


@dataclass(frozen=True)
class LabSpec:
    """What the program builds, decided once from the stack config: the config, the address
    plan and the MTUs (both computed while validating, so a bad plan is a ConfigError too)."""

    config: LabConfig
    plan: AddressPlan
    mtu: MtuPlan  # the hub's, and every spoke's not in spoke_mtus (bridge_mtu aside: the hub's only)
    hosts: HostPlan = HostPlan()  # which libvirt host each site runs on; empty: the one default host
    spoke_mtus: tuple[tuple[int, MtuPlan], ...] = ()  # (spoke number, plan) where its WAN or remedy differs

    def mtu_of(self, site: Site) -> MtuPlan:
        """The MTUs site's own devices get (lablib.mtu.plan_site_mtus)."""
        if site.is_hub:
            return self.mtu
        return dict(self.spoke_mtus).get(site.number, dataclasses.replace(self.mtu, bridge_mtu=0))


_required = inputs.required


def _integer(raw: Mapping[str, str | None], key: str, low: int, high: int) -> int:
    return inputs.integer_text(key, _required(raw, key), low, high)


def _boolean(raw: Mapping[str, str | None], key: str) -> bool:
    text = str(_required(raw, key)).strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(key, text, "must be true or false")
    return text == "true"


def _choice(raw: Mapping[str, str | None], key: str, allowed: tuple[str, ...]) -> str:
    text = _required(raw, key)
    if text not in allowed:
        raise ConfigError(key, text, f"must be one of {', '.join(allowed)}")
    return text


def _network(raw: Mapping[str, str | None], key: str) -> ipaddress.IPv4Network:
    text = _required(raw, key)
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as error:
        raise ConfigError(key, text, f"must be an IPv4 network in CIDR form ({error})") from None
    check_special(key, network)
    return network


_spoke_numbers = inputs.spoke_numbers


def _proposals(raw: Mapping[str, str | None], key: str) -> tuple[str, list[Proposal]]:
    """The proposal line as libreswan gets it (as parsed: no blanks, lowercase) and parsed
    (the MTU depends on it)."""
    text = _required(raw, key)
    try:
        proposals = parse_proposals(text, key)
    except ProposalError as error:
        raise ConfigError(key, text, f"{error}; allowed: AES-CBC/CTR/GCM or ChaCha20-Poly1305 "
                                     "with SHA-2 and DH groups of 2048 bits or more") from None
    return proposal_line(proposals), proposals


def check_secrets(secrets: Mapping[str, str | None]) -> None:
    """Reject missing or weak secrets; the error never shows a secret's value."""
    for key in SECRET_KEYS:
        if not secrets.get(key):
            raise ConfigError(key, None, f"is missing: set it with `pulumi config set --secret {key} ...`")
        inputs.check_secret_text(key, secrets[key] or "")
    if len(secrets["masterSecret"] or "") < MIN_MASTER_SECRET:
        raise ConfigError("masterSecret", "[secret]", f"must be at least {MIN_MASTER_SECRET} characters")


def parse_config(raw: Mapping[str, str | None], secrets: Mapping[str, str | None]) -> LabSpec:
    """Validate all keys and return the LabSpec; raise ConfigError on the first bad one.

    secrets are only checked: they stay out of LabConfig and are wrapped as Pulumi secrets.
    """
    inputs.check_texts(raw)
    check_secrets(secrets)
    spokes = _integer(raw, "spokes", 1, MAX_SPOKES)
    routed = _spoke_numbers(raw, "routedSpokes", spokes)
    interface_mode = _choice(raw, "interfaceMode", INTERFACE_MODES)
    site_prefix = _integer(raw, "siteSubnetPrefix", 16, 28)
    ike, _ = _proposals(raw, "ike")
    esp, esp_proposals = _proposals(raw, "esp")
    wan_mtu = _integer(raw, "wanMtu", 1280, 9000)
    gre_key = _boolean(raw, "greKey")
    boot, hub_boot = parse_boot(raw)
    install_packages = _boolean(raw, "installPackages")
    check_seed_reader(boot, hub_boot, install_packages)
    ssh_key = _required(raw, "sshPublicKey").strip()
    check_key_pair(secrets["sshPrivateKey"] or "", ssh_key)
    pool_path = inputs.directory_path("poolPath", _required(raw, "poolPath").strip())
    auth = parse_auth(raw, spokes)
    remedies = parse_remedies(raw, spokes, wan_mtu)
    check_tcp_kernels([n for n, remedy in remedies.spoke_remedies if remedy == TCP],
                      {KEYS[1]: boot.kernel, **({HUB_KEYS[1]: hub_boot.kernel} if hub_boot != boot else {})})

    addresses = AddressSettings(
        spokes=spokes,
        routed_spokes=routed,
        hub_subnet=_network(raw, "hubSubnet"),
        spoke_subnet_pool=_network(raw, "spokeSubnetPool"),
        site_subnet_prefix=site_prefix,
        overlay_pool=_network(raw, "overlayPool"),
        bridge_subnet=_network(raw, "bridgeSubnet"),
        mgmt_subnet=_network(raw, "mgmtSubnet"),
        id_domain=auth.id_domain,
    )
    config = LabConfig(
        addresses=addresses,
        wan_mtu=wan_mtu,
        interface_mode=interface_mode,
        tunnel_mark=_integer(raw, "tunnelMark", 1, 65535),
        ike=ike,
        esp=esp,
        gre_key=gre_key,
        dpd_delay=_integer(raw, "dpdDelay", 1, 300),
        retransmit_timeout=_integer(raw, "retransmitTimeout", 10, 600),
        boot=boot,
        hub_boot=hub_boot,
        domain_type=_choice(raw, "domainType", DOMAIN_TYPES),
        memory_mib=_integer(raw, "memoryMib", 256, 65536),
        vcpus=_integer(raw, "vcpus", 1, 16),
        install_packages=install_packages,
        pool_path=pool_path,
        ssh_public_key=ssh_key,
        spoke_modes=inputs.spoke_exceptions(raw, MODE_SPOKE_KEYS, spokes, interface_mode, "interface mode"),
        auth=auth.auth,
        spoke_auths=auth.spoke_auths,
        cert_key=auth.cert_key,
        ca_valid_until=auth.ca_valid_until,
        revoked_spokes=auth.revoked_spokes,
        spoke_remedies=remedies.spoke_remedies,
        spoke_wan_mtus=remedies.spoke_wan_mtus,
        spoke_wan_impairments=remedies.spoke_wan_impairments,
    )
    plan = build_plan(addresses)  # raises ConfigError on overlapping or too small subnets
    hosts = plan_hosts(_required(raw, HOSTS), _required(raw, SPOKE_HOSTS), plan)
    # NAT-T is always forced (encapsulation=yes), so its 8 bytes always count.
    hub_mtu, spoke_mtus = plan_site_mtus(wan_mtu, dict(config.spoke_wan_mtus), dict(config.spoke_remedies),
                                         esp_proposals, nat_t=True, gre_key=gre_key)
    return LabSpec(config=config, plan=plan, hosts=hosts, mtu=hub_mtu, spoke_mtus=tuple(sorted(spoke_mtus.items())))
