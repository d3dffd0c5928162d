"""The address plan: which subnet, address, ID and port name every site gets.

Everything is computed with ipaddress from the configured networks; the
checks here are what turns a bad plan into a ConfigError before any
resource exists.
"""
from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass

from lablib import names
from lablib.errors import ConfigError
from lablib.netcheck import Subnet, check_no_overlap

WAN_HOST_NUMBER = 10  # sites keep the original deployment's .10 WAN address


@dataclass(frozen=True)
class AddressSettings:
    """The validated config keys the plan is computed from (lablib.config parses them)."""

    spokes: int
    routed_spokes: frozenset[int]
    hub_subnet: ipaddress.IPv4Network
    spoke_subnet_pool: ipaddress.IPv4Network
    site_subnet_prefix: int
    overlay_pool: ipaddress.IPv4Network
    bridge_subnet: ipaddress.IPv4Network
    mgmt_subnet: ipaddress.IPv4Network
    id_domain: str = ""  # lab:idDomain: IKE IDs @site.<id_domain>; "": @site


@dataclass(frozen=True)
class Site:
    """One VM's place in the lab."""

    name: str  # "hub", "spoke1", ...
    number: int  # 0 for the hub, N for spoke N
    wan_subnet: ipaddress.IPv4Network
    wan_address: ipaddress.IPv4Address
    wan_gateway: ipaddress.IPv4Address  # libvirt's bridge address on that network
    behind_nat: bool
    overlay_address: ipaddress.IPv4Address
    bridge_address: ipaddress.IPv4Interface
    mgmt_address: ipaddress.IPv4Address
    ike_id: str
    gre_port: str  # OVS port name on the other end's bridge pointing at this site

    @property
    def is_hub(self) -> bool:
        return self.number == 0

    @property
    def site_index(self) -> int:
        """Hub 1, spoke N N+1: the original deployment's site numbering."""
        return self.number + 1


@dataclass(frozen=True)
class AddressPlan:
    hub: Site
    spokes: tuple[Site, ...]
    mgmt_gateway: ipaddress.IPv4Address
    overlay_pool: ipaddress.IPv4Network
    bridge_subnet: ipaddress.IPv4Network
    mgmt_subnet: ipaddress.IPv4Network

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.hub, *self.spokes)


def _host(network: ipaddress.IPv4Network, number: int, key: str, need: str) -> ipaddress.IPv4Address:
    """The number-th address of network, which must be a usable host address."""
    if number >= network.num_addresses - 1:
        raise ConfigError(key, str(network), f"is too small: {need}")
    return network.network_address + number


def _spoke_subnets(config: AddressSettings) -> list[ipaddress.IPv4Network]:
    """Spoke N gets subnet number N+1 of the pool (192.168.2.0/24 for spoke 1 by default)."""
    prefix = config.site_subnet_prefix
    pool = config.spoke_subnet_pool
    if prefix < pool.prefixlen:
        raise ConfigError("siteSubnetPrefix", prefix, f"must be at least spokeSubnetPool's /{pool.prefixlen}")
    subnets = list(itertools.islice(pool.subnets(new_prefix=prefix), 2, config.spokes + 2))
    if len(subnets) < config.spokes:
        raise ConfigError("spokeSubnetPool", str(pool),
                          f"is too small: {config.spokes} spokes need {config.spokes + 2} /{prefix} subnets")
    return subnets


def build_plan(config: AddressSettings) -> AddressPlan:
    """Compute every address of the lab; raise ConfigError when the subnets cannot hold it."""
    spoke_subnets = _spoke_subnets(config)
    vms = config.spokes + 1
    named = [Subnet(key, str(net), net) for key, net in (
        ("hubSubnet", config.hub_subnet), ("overlayPool", config.overlay_pool),
        ("bridgeSubnet", config.bridge_subnet), ("mgmtSubnet", config.mgmt_subnet))]
    pool = str(config.spoke_subnet_pool)
    named += [Subnet("spokeSubnetPool", pool, net, names.spoke_name(n)) for n, net in enumerate(spoke_subnets, start=1)]
    check_no_overlap(named)

    wan_need = f"sites need host .{WAN_HOST_NUMBER}"
    overlay_need = f"{config.spokes} spokes need {vms} overlay addresses after the network address"
    bridge_need = f"{vms} sites need {vms} bridge addresses"
    mgmt_need = f"{vms} VMs need {vms} addresses after the host's"
    _host(config.hub_subnet, WAN_HOST_NUMBER, "hubSubnet", wan_need)
    if config.site_subnet_prefix > 28:
        raise ConfigError("siteSubnetPrefix", config.site_subnet_prefix, f"must be at most 28: {wan_need}")
    _host(config.overlay_pool, vms, "overlayPool", overlay_need)
    _host(config.bridge_subnet, vms, "bridgeSubnet", bridge_need)
    _host(config.mgmt_subnet, vms + 1, "mgmtSubnet", mgmt_need)

    def site(number: int, wan_subnet: ipaddress.IPv4Network, behind_nat: bool) -> Site:
        name = names.HUB if number == 0 else names.spoke_name(number)
        index = number + 1
        return Site(
            name=name,
            number=number,
            wan_subnet=wan_subnet,
            wan_address=wan_subnet.network_address + WAN_HOST_NUMBER,
            wan_gateway=wan_subnet.network_address + 1,
            behind_nat=behind_nat,
            overlay_address=config.overlay_pool.network_address + index,
            bridge_address=ipaddress.IPv4Interface(
                (config.bridge_subnet.network_address + index, config.bridge_subnet.prefixlen)),
            mgmt_address=config.mgmt_subnet.network_address + 1 + index,
            ike_id=names.ike_id(name, config.id_domain),
            gre_port=names.gre_port(name),
        )

    hub = site(0, config.hub_subnet, behind_nat=False)
    spokes = tuple(site(n, subnet, behind_nat=n not in config.routed_spokes)
                   for n, subnet in enumerate(spoke_subnets, start=1))
    return AddressPlan(
        hub=hub,
        spokes=spokes,
        mgmt_gateway=config.mgmt_subnet.network_address + 1,
        overlay_pool=config.overlay_pool,
        bridge_subnet=config.bridge_subnet,
        mgmt_subnet=config.mgmt_subnet,
    )
