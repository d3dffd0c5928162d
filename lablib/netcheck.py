"""Address-plan checks that name what the user wrote: special ranges and overlaps.

A subnet in loopback, link-local, multicast, "this network" or reserved space
cannot carry a libvirt network, DHCP or a routed WAN; the overlay pool is the
exception for reserved space (240.0.0.0/8 is the original deployment's choice,
and Linux routes it as unicast).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lablib.errors import ConfigError

Net = ipaddress.IPv4Network

SPECIAL = (
    (Net("0.0.0.0/8"), "is 'this network' space (0.0.0.0/8, RFC 1122)"),
    (Net("127.0.0.0/8"), "is loopback space (127.0.0.0/8)"),
    (Net("169.254.0.0/16"), "is link-local space (169.254.0.0/16): not routed, taken by zeroconf"),
    (Net("224.0.0.0/4"), "is multicast space (224.0.0.0/4)"),
    (Net("240.0.0.0/4"), "is reserved space (240.0.0.0/4): only lab:overlayPool may use it"),
    (Net("255.255.255.255/32"), "holds the limited broadcast address"),
)
RESERVED = Net("240.0.0.0/4")


def check_special(key: str, network: Net) -> None:
    """Refuse a lab subnet that touches a range a lab network cannot use."""
    for special, why in SPECIAL:
        if key == "overlayPool" and special == RESERVED:
            continue
        if network.overlaps(special):
            raise ConfigError(key, str(network), f"{why}; use private space such as 10.0.0.0/8, "
                                                 "172.16.0.0/12 or 192.168.0.0/16")


@dataclass(frozen=True)
class Subnet:
    """One lab subnet and where it comes from: the key and value the user set."""

    key: str
    value: str
    network: Net
    spoke: str = ""  # "spoke3" for a spoke's WAN subnet taken from the pool

    def describe(self) -> str:
        if self.spoke:
            return f"{self.spoke}'s WAN subnet {self.network} (from lab:{self.key} = {self.value!r})"
        return f"lab:{self.key} = {self.value!r}"


def check_no_overlap(subnets: list[Subnet]) -> None:
    """Every lab subnet distinct; the error names both keys, their values and the spoke."""
    ordered = sorted(subnets, key=lambda s: (s.network.network_address, s.network.prefixlen))
    for first, second in zip(ordered, ordered[1:]):
        if first.network.overlaps(second.network):
            blamed, other = (second, first) if not second.spoke or first.spoke else (first, second)
            raise ConfigError(blamed.key, blamed.value,
                              f"{blamed.describe()} overlaps {other.describe()}: every lab subnet must be distinct")
