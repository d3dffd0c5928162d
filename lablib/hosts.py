"""Several libvirt hosts: parse lab:hosts and lab:spokeHosts, and place every site on a host.

One host is today's lab: with lab:hosts unset the plan holds no host and the
program talks to the default libvirt URI as before. The URI rules are those of
terraform-provider-libvirt 0.8.1 (inside pulumi-libvirt 0.5.4), read in its
libvirt/uri/ssh.go: a port in a qemu+ssh URI is joined twice (host:port:port)
and never dials, `User` from ~/.ssh/config is ignored, and of libvirt's query
parameters only keyfile, knownhosts, known_hosts_verify=ignore, no_verify,
sshauth and socket are read; anything else would be silently ignored, so it is
refused here instead.
"""
from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping

from lablib.addressing import AddressPlan
from lablib.errors import ConfigError
from lablib.netcheck import SPECIAL, Subnet

HOSTS, SPOKE_HOSTS = "hosts", "spokeHosts"
MAX_HOSTS = 64
LOCAL_URI = "qemu:///system"
HOST_FIELDS = ("name", "uri", "uplink")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# Query parameters the provider reads in a qemu+ssh URI, and what each must hold.
SSH_PARAMS = {
    "keyfile": "an absolute path to the private key on the machine running Pulumi",
    "knownhosts": "an absolute path to a known_hosts file on the machine running Pulumi",
    "known_hosts_verify": "normal or ignore (the provider does not add keys: no auto)",
    "no_verify": "1",
    "sshauth": "a comma list of agent and privkey",
    "socket": "an absolute path to libvirtd's socket on the host",
}
IGNORED_PARAMS = {  # libvirt's own parameters that the provider 0.8.1 never reads
    "known_hosts": "the provider reads knownhosts=PATH (no underscore)",
    "command": "the provider speaks SSH itself", "netcat": "the provider speaks SSH itself",
    "no_tty": "the provider speaks SSH itself", "name": "the lab always talks to /system",
    "mode": "the provider dials the socket itself", "proxy": "the provider dials the socket itself",
}


@dataclass(frozen=True)
class Host:
    """One hypervisor: its name in the lab, how Pulumi reaches libvirt there, how other hosts reach it."""

    name: str
    uri: str
    uplink: ipaddress.IPv4Address


@dataclass(frozen=True)
class HostPlan:
    """The hosts and which one each site runs on (site name -> host name); empty: today's one host."""

    hosts: tuple[Host, ...] = ()
    placement: tuple[tuple[str, str], ...] = ()

    @property
    def several(self) -> bool:
        return len(self.hosts) > 1

    def host_of(self, site: str) -> Host | None:
        """The site's host; None for the one implicit host of a lab without lab:hosts."""
        by_name = {host.name: host for host in self.hosts}
        return by_name.get(dict(self.placement).get(site, ""))


_PASSWORD = re.compile(r"(://[^/@:?#]*):[^/@?#]*@")


def masked(text: str) -> str:
    """text with the password of any URI in it replaced: errors quote values, never a password."""
    return _PASSWORD.sub(r"\1:[password]@", text)


def _json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ConfigError(key, masked(text), "must be YAML/JSON as Pulumi hands it over "
                                             "(docs/several-hosts.md)") from None


def _check_params(text: str, query: str) -> None:
    """text: the URI as errors quote it (masked)."""
    try:
        params = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(HOSTS, text, f"has a malformed query string {query!r}") from None
    for param, values in params.items():
        if param in IGNORED_PARAMS:
            raise ConfigError(HOSTS, text, f"sets {param}=, which terraform-provider-libvirt 0.8.1 ignores: "
                                           f"{IGNORED_PARAMS[param]}")
        if param not in SSH_PARAMS:
            raise ConfigError(HOSTS, text, f"sets unknown parameter {param}=; the provider reads only "
                                           f"{', '.join(SSH_PARAMS)}")
        value = values[-1]
        if len(values) > 1:
            raise ConfigError(HOSTS, text, f"sets {param}= twice")
        good = {"known_hosts_verify": value in ("normal", "ignore"), "no_verify": value == "1",
                "sshauth": bool(value) and set(value.split(",")) <= {"agent", "privkey"}}.get(
            param, value.startswith("/") and "\\" not in value)
        if not good:
            raise ConfigError(HOSTS, text, f"sets {param}={value!r}: it must be {SSH_PARAMS[param]}")


def check_uri(uri: str) -> str:
    """qemu:///system, or qemu+ssh://user@host/system with only parameters the provider reads."""
    forms = "must be qemu:///system or qemu+ssh://USER@HOST/system[?keyfile=...&knownhosts=...]"
    if uri == LOCAL_URI:
        return uri
    text = masked(uri)
    try:
        url = urllib.parse.urlsplit(uri)
        port = url.port
    except ValueError:
        raise ConfigError(HOSTS, text, f"{forms}: it does not parse as a URI") from None
    if url.password is not None:
        raise ConfigError(HOSTS, text, "must not carry a password: it would be kept in plain text in the "
                                       "Pulumi state; use a key")
    if url.scheme != "qemu+ssh":
        raise ConfigError(HOSTS, text, f"{forms} (scheme {url.scheme!r} is not supported)")
    if port is not None or url.netloc.endswith(":"):
        raise ConfigError(HOSTS, text, "must not give a port: terraform-provider-libvirt 0.8.1 mishandles it "
                                       "(host:port:port); run sshd on port 22")
    if not url.username or not _USER.fullmatch(url.username):
        raise ConfigError(HOSTS, text, "must name the SSH user (qemu+ssh://USER@HOST/system): the provider "
                                       "ignores User from ~/.ssh/config")
    if not url.hostname or not _HOSTNAME.fullmatch(url.hostname):
        raise ConfigError(HOSTS, text, f"{forms}: the host {url.hostname!r} is not a DNS name or IPv4 address")
    if url.path != "/system" or url.fragment:
        raise ConfigError(HOSTS, text, f"{forms}: the lab needs the system daemon, path /system")
    _check_params(text, url.query)
    return uri


def _uplink(text: object, lab_subnets: list[Subnet]) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(text if isinstance(text, str) else "")
    except ValueError:
        raise ConfigError(HOSTS, text, "uplink must be the IPv4 address other hosts reach this host at") from None
    for special, why in SPECIAL:
        if address in special:
            raise ConfigError(HOSTS, str(address), f"uplink {why}")
    for subnet in lab_subnets:
        if address in subnet.network:
            raise ConfigError(HOSTS, str(address), f"uplink lies in {subnet.describe()}: the hosts' own "
                                                   "network must not overlap the lab's subnets")
    return address


def _host(entry: object, lab_subnets: list[Subnet]) -> Host:
    if not isinstance(entry, dict) or set(entry) != set(HOST_FIELDS):
        raise ConfigError(HOSTS, masked(json.dumps(entry)), f"each host must be a map of exactly "
                                                            f"{', '.join(HOST_FIELDS)}")
    name, uri = entry["name"], entry["uri"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(HOSTS, name, "host name must be 1-32 of a-z, 0-9 and -, starting with a letter")
    if not isinstance(uri, str):
        raise ConfigError(HOSTS, uri, "uri must be a string")
    return Host(name, check_uri(uri), _uplink(entry["uplink"], lab_subnets))


def parse_hosts(text: str) -> tuple[object, ...]:
    """The entries of the list as given (each is checked by _host)."""
    hosts = _json(HOSTS, text)
    if not isinstance(hosts, list) or len(hosts) > MAX_HOSTS:
        raise ConfigError(HOSTS, masked(text), f"must be a list of at most {MAX_HOSTS} hosts")
    return tuple(hosts)


def _distinct(hosts: list[Host]) -> None:
    for field in ("name", "uri", "uplink"):
        seen: set[object] = set()
        for host in hosts:
            value = getattr(host, field)
            if value in seen:
                raise ConfigError(HOSTS, str(value), f"is the {field} of two hosts: every host needs its own")
            seen.add(value)


def _pins(text: str, spokes: int, names: list[str]) -> dict[int, str]:
    pins = _json(SPOKE_HOSTS, text)
    if not isinstance(pins, dict):
        raise ConfigError(SPOKE_HOSTS, text, "must be a map of spoke number to host name")
    if pins and not names:
        raise ConfigError(SPOKE_HOSTS, text, "pins spokes but lab:hosts names no host")
    result: dict[int, str] = {}
    for number, host in pins.items():
        if not re.fullmatch(r"[1-9][0-9]{0,2}", number) or int(number) > spokes:
            raise ConfigError(SPOKE_HOSTS, number, f"is not a spoke number from 1 to {spokes}")
        if host not in names:
            raise ConfigError(SPOKE_HOSTS, f"{number}: {host}",
                              f"names unknown host {host!r}; lab:hosts names {', '.join(names)}")
        result[int(number)] = host
    return result


def place(spokes: int, hosts: list[str], pins: Mapping[int, str]) -> dict[int, str]:
    """Site number -> host: the hub on the first host, pinned spokes where pinned, every other
    spoke on the host with fewest sites so far (first such host). Each spoke depends only on the
    sites numbered below it, so adding spokes never moves an existing one."""
    placed = {0: hosts[0]}
    load = {host: 0 for host in hosts}
    load[hosts[0]] = 1
    for number in range(1, spokes + 1):
        host = pins.get(number) or min(hosts, key=lambda h: (load[h], hosts.index(h)))
        placed[number] = host
        load[host] += 1
    return placed


def lab_subnets(plan: AddressPlan) -> list[Subnet]:
    """Every subnet the lab uses, named by the key it comes from (for the uplink check)."""
    subnets = [Subnet(key, str(net), net) for key, net in (
        ("overlayPool", plan.overlay_pool), ("bridgeSubnet", plan.bridge_subnet), ("mgmtSubnet", plan.mgmt_subnet))]
    subnets.append(Subnet("hubSubnet", str(plan.hub.wan_subnet), plan.hub.wan_subnet))
    subnets += [Subnet("spokeSubnetPool", str(s.wan_subnet), s.wan_subnet, s.name) for s in plan.spokes]
    return subnets


def plan_hosts(raw_hosts: str, raw_pins: str, plan: AddressPlan) -> HostPlan:
    """The validated hosts and every site's host; raise one ConfigError naming the key otherwise."""
    entries = parse_hosts(raw_hosts)
    subnets = lab_subnets(plan)
    hosts = [_host(entry, subnets) for entry in entries]
    _distinct(hosts)
    names = [host.name for host in hosts]
    pins = _pins(raw_pins, len(plan.spokes), names)
    if not hosts:
        return HostPlan()
    numbers = place(len(plan.spokes), names, pins)
    return HostPlan(tuple(hosts), tuple((site.name, numbers[site.number]) for site in plan.sites))


def routes(plan: AddressPlan, hosts: HostPlan) -> dict[str, list[tuple[str, str]]]:
    """What each host's own network must route (docs/several-hosts.md, host checklist): to every routed WAN subnet
    (the hub's, a routed spoke's) on another host, via that host's uplink. A NAT'd spoke needs no
    route: its host masquerades it to its uplink, which the hub's host reaches on their LAN."""
    found: dict[str, list[tuple[str, str]]] = {host.name: [] for host in hosts.hosts}
    for site in plan.sites:
        there = hosts.host_of(site.name)
        if there is None or site.behind_nat:
            continue
        for host in hosts.hosts:
            if host != there:
                found[host.name].append((str(site.wan_subnet), str(there.uplink)))
    return found

