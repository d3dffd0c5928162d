"""Tunnel: one spoke's IPsec + GRE wiring to the hub, both ends described."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from lablib import render
from lablib.addressing import AddressPlan, Site
from lablib.config import LabConfig
from providers.remote_config import RemoteConfig


@dataclass
class TunnelArgs:
    config: LabConfig
    plan: AddressPlan
    spoke: Site
    psk: pulumi.Output[str]  # secret
    hub_host: str
    ssh_user: str
    ssh_private_key: pulumi.Output[str]  # secret
    hub: pulumi.Resource  # the hub's domain: its side is pushed once it runs


class Tunnel(pulumi.ComponentResource):
    """Registers both conn ends as props (policies check they agree) and pushes the hub end.

    The spoke end travels in the spoke's own cloud-init; the hub end (conn,
    secrets, GRE port) is applied over SSH so the hub is never rebooted.
    """

    def __init__(self, name: str, args: TunnelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        config, plan, spoke = args.config, args.plan, args.spoke
        hub_end = render.hub_end(config, plan, spoke)
        spoke_end = render.spoke_end(config, plan, spoke)
        hub_port = render.gre_port(config, plan.hub, spoke, spoke)
        spoke_port = render.gre_port(config, spoke, plan.hub, spoke)
        props = {
            "spoke": spoke.name, "hubEnd": hub_end.as_props(), "spokeEnd": spoke_end.as_props(),
            "psk": args.psk, "behindNat": spoke.behind_nat, "natT": config.mtu.nat_t,
            "wanMtu": config.mtu.wan_mtu, "tunnelMtu": config.mtu.tunnel_mtu, "innerMtu": config.mtu.inner_mtu,
            "overlayPool": str(plan.overlay_pool), "greKey": config.gre_key,
            "hubPort": hub_port.as_props(), "spokePort": spoke_port.as_props(),
        }
        super().__init__("lab:index:Tunnel", name, props, opts)
        files = args.psk.apply(lambda psk: [vars(f) for f in render.tunnel_files(hub_end, psk)])
        RemoteConfig(
            f"{name}-hub-side",
            host=args.hub_host,
            user=args.ssh_user,
            private_key=args.ssh_private_key,
            files=files,
            up_script=render.render_hub_tunnel_up(config, plan, spoke),
            down_script=render.render_hub_tunnel_down(config, plan, spoke),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.hub]),
        )
        self.register_outputs({"spoke": spoke.name})
