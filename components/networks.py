"""LabNetworks: management, hub WAN and one WAN per spoke site."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from lablib import names
from lablib.addressing import AddressPlan, Site


@dataclass
class LabNetworksArgs:
    stack: str
    plan: AddressPlan
    wan_mtu: int


class LabNetworks(pulumi.ComponentResource):
    """The management network is isolated (no forwarding) and never carries lab traffic.

    The hub's WAN is routed; a spoke's WAN is NAT (as the ADSL sites were), so
    the hub sees it from the masquerade address and NAT-T is really used.
    """

    mgmt_network_id: pulumi.Output[str]
    wan_network_ids: dict[str, pulumi.Output[str]]  # by site name

    def __init__(self, name: str, args: LabNetworksArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        plan = args.plan
        subnets = {"mgmt": str(plan.mgmt_subnet), **{f"wan-{s.name}": str(s.wan_subnet) for s in plan.sites}}
        props = {"subnets": subnets, "mgmtMode": "none", "wanMtu": args.wan_mtu,
                 "natSites": [s.name for s in plan.sites if s.behind_nat]}
        super().__init__("lab:index:LabNetworks", name, props, opts)
        # libvirt ignores an MTU change on an existing network: replace it instead.
        child = pulumi.ResourceOptions(parent=self, replace_on_changes=["mtu"])
        mgmt = libvirt.Network(
            f"{name}-mgmt", name=names.mgmt_network_name(args.stack), mode="none", addresses=[str(plan.mgmt_subnet)],
            dhcp=libvirt.NetworkDhcpArgs(enabled=True), autostart=True, opts=child)
        self.mgmt_network_id = mgmt.id
        self.wan_network_ids = {site.name: self._wan(name, args, site, child).id for site in plan.sites}
        self.register_outputs({"mgmtNetworkId": self.mgmt_network_id, "wanNetworkIds": self.wan_network_ids})

    @staticmethod
    def _wan(name: str, args: LabNetworksArgs, site: Site, child: pulumi.ResourceOptions) -> libvirt.Network:
        return libvirt.Network(
            f"{name}-wan-{site.name}", name=names.wan_network_name(args.stack, site.name),
            mode="nat" if site.behind_nat else "route", addresses=[str(site.wan_subnet)],
            mtu=args.wan_mtu, dhcp=libvirt.NetworkDhcpArgs(enabled=False),
            dns=libvirt.NetworkDnsArgs(enabled=False), autostart=True, opts=child)
