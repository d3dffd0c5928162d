"""Tunnel: one spoke's IPsec + GRE wiring to the hub, both ends described."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from lablib import payload
from lablib.config import LabSpec
from lablib.remedies import COMPUTED_MTU
from lablib.tunnel import SpokeTunnel
from providers.remote_config import RemoteConfig


@dataclass
class TunnelArgs:
    spec: LabSpec
    tunnel: SpokeTunnel
    psk: pulumi.Output[str] | None  # secret; None for a certificate's tunnel
    hub_host: str
    ssh_user: str
    ssh_private_key: pulumi.Output[str]  # secret
    hub: pulumi.Resource  # the hub's domain (its PKI push for a certificate): its side is pushed after it
    hub_instance: pulumi.Input[str]  # the hub domain's ID: a new hub VM gets its side pushed again
    ready_timeout: int  # seconds the push waits for the hub's SSH and cloud-init (lablib.waits)
    jump_uri: str = ""  # the hub's host's qemu+ssh URI: its management network is reached through it
    # A tcp spoke's domain: its hub side is removed while the spoke still runs. libreswan 5.2's pluto
    # aborts (ASSERTION FAILED: refcnt_delref_where() ... delete_state()) when it deletes an ESP-in-TCP
    # IKE SA whose stream died first, as it did when `pulumi destroy` stopped the spoke before the
    # hub side's down script ran; every other tunnel then fell with it.
    spoke: pulumi.Resource | None = None


class Tunnel(pulumi.ComponentResource):
    """Registers both conn ends as props (policies check they agree) and pushes the hub end.

    The spoke end travels in the spoke's own cloud-init; the hub end (conn,
    secrets, GRE port) is applied over SSH so the hub is never rebooted.
    """

    def __init__(self, name: str, args: TunnelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec, tunnel = args.spec, args.tunnel
        props = {
            "spoke": tunnel.spoke.name, "hubEnd": tunnel.hub_end.as_props(), "spokeEnd": tunnel.spoke_end.as_props(),
            "behindNat": tunnel.spoke.behind_nat, "natT": spec.mtu.nat_t,
            "wanMtu": tunnel.mtu.wan_mtu, "tunnelMtu": tunnel.mtu.tunnel_mtu, "innerMtu": tunnel.mtu.inner_mtu,
            **({"remedy": tunnel.remedy} if tunnel.remedy != COMPUTED_MTU else {}),
            "overlayPool": str(spec.plan.overlay_pool), "greKey": spec.config.gre_key,
            "hubPort": tunnel.hub_port.as_props(), "spokePort": tunnel.spoke_port.as_props(),
            # A pre-shared key's tunnel carries its key (secret); a certificate's its key type.
            **({"psk": args.psk} if args.psk is not None else {"auth": "cert", "certKey": spec.config.cert_key}),
        }
        super().__init__("lab:index:Tunnel", name, props, opts)
        hub_side = payload.hub_side(spec, tunnel)
        RemoteConfig(
            f"{name}-hub-side",
            host=args.hub_host,
            user=args.ssh_user,
            private_key=args.ssh_private_key,
            files=args.psk.apply(hub_side.files) if args.psk is not None else hub_side.files(None),
            up_script=hub_side.up_script,
            down_script=hub_side.down_script,
            check_script=hub_side.check_script,
            jump_uri=args.jump_uri,
            ready_timeout=args.ready_timeout,
            instance=args.hub_instance,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.hub, *([args.spoke] if args.spoke else [])]),
        )
        self.register_outputs({"spoke": tunnel.spoke.name})
