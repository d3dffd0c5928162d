"""LabNetworks: management, hub WAN and one WAN per spoke site, each on its site's host."""
from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_libvirt as libvirt

from lablib import names
from lablib.addressing import AddressPlan, Site


@dataclass
class LabNetworksArgs:
    stack: str
    plan: AddressPlan
    wan_mtu: int
    spoke_wan_mtus: dict[str, int] = field(default_factory=dict)  # by site name, where it is not wan_mtu
    # Several hosts: host name -> its provider, and site name -> host name. Empty: the default host.
    providers: dict[str, libvirt.Provider] = field(default_factory=dict)
    placement: dict[str, str] = field(default_factory=dict)


class LabNetworks(pulumi.ComponentResource):
    """The management network is isolated (no forwarding) and never carries lab traffic.

    The hub's WAN is routed; a spoke's WAN is NAT (as the ADSL sites were), so
    the hub sees it from the masquerade address and NAT-T is really used. With
    several hosts each host has its own management network (same subnet, each
    site's address reserved on its host's) and the WANs of its own sites.
    """

    mgmt_network_ids: dict[str, pulumi.Output[str]]  # by site name
    wan_network_ids: dict[str, pulumi.Output[str]]  # by site name

    def __init__(self, name: str, args: LabNetworksArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        plan = args.plan
        subnets = {"mgmt": str(plan.mgmt_subnet), **{f"wan-{s.name}": str(s.wan_subnet) for s in plan.sites}}
        props = {"subnets": subnets, "mgmtMode": "none", "wanMtu": args.wan_mtu,
                 "natSites": [s.name for s in plan.sites if s.behind_nat]}
        if args.spoke_wan_mtus:  # a lab without spokeWans keeps the props it always had
            props["spokeWanMtus"] = args.spoke_wan_mtus
        super().__init__("lab:index:LabNetworks", name, props, opts)
        mgmt = {host: self._mgmt(f"{name}-mgmt{suffix}", args, provider)
                for host, suffix, provider in self._hosts(args)}
        self.mgmt_network_ids = {s.name: mgmt[args.placement.get(s.name, "")].id for s in plan.sites}
        self.wan_network_ids = {
            site.name: self._wan(name, args, site, args.providers.get(args.placement.get(site.name, ""))).id
            for site in plan.sites}
        self.register_outputs({"mgmtNetworkIds": self.mgmt_network_ids, "wanNetworkIds": self.wan_network_ids})

    @staticmethod
    def _hosts(args: LabNetworksArgs) -> list[tuple[str, str, libvirt.Provider | None]]:
        """(host, resource name suffix, provider) per host with a site; one unnamed default host."""
        if not args.providers:
            return [("", "", None)]
        used = dict.fromkeys(args.placement.values())
        return [(host, f"-{host}", args.providers[host]) for host in used]

    def _options(self, provider: libvirt.Provider | None) -> pulumi.ResourceOptions:
        # libvirt ignores an MTU change on an existing network: replace it instead.
        return pulumi.ResourceOptions(parent=self, provider=provider, replace_on_changes=["mtu"])

    def _mgmt(self, name: str, args: LabNetworksArgs, provider: libvirt.Provider | None) -> libvirt.Network:
        return libvirt.Network(
            name, name=names.mgmt_network_name(args.stack), mode="none", addresses=[str(args.plan.mgmt_subnet)],
            dhcp=libvirt.NetworkDhcpArgs(enabled=True), autostart=True, opts=self._options(provider))

    def _wan(self, name: str, args: LabNetworksArgs, site: Site, provider: libvirt.Provider | None) -> libvirt.Network:
        return libvirt.Network(
            f"{name}-wan-{site.name}", name=names.wan_network_name(args.stack, site.name),
            mode="nat" if site.behind_nat else "route", addresses=[str(site.wan_subnet)],
            mtu=args.spoke_wan_mtus.get(site.name, args.wan_mtu), dhcp=libvirt.NetworkDhcpArgs(enabled=False),
            dns=libvirt.NetworkDnsArgs(enabled=False), autostart=True, opts=self._options(provider))
