"""Lab: the whole hub-and-spoke lab of one stack."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.networks import LabNetworks, LabNetworksArgs
from components.node import LabNode, LabNodeArgs
from components.storage import LabStorage, LabStorageArgs
from components.tunnel import Tunnel, TunnelArgs
from lablib import names, render, report
from lablib.addressing import AddressPlan, Site
from lablib.config import LabConfig
from lablib.keys import derive_psk


@dataclass
class LabArgs:
    stack: str
    config: LabConfig
    plan: AddressPlan
    master_secret: pulumi.Output[str]  # secret
    ssh_private_key: pulumi.Output[str]  # secret


class Lab(pulumi.ComponentResource):
    """Storage, networks, one LabNode per site and one Tunnel per spoke."""

    nodes: dict[str, dict[str, object]]
    inventory: str
    topology: str

    def __init__(self, name: str, args: LabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        config, plan = args.config, args.plan
        props = {"spokes": config.spokes, "hubId": plan.hub.ike_id, "overlayPool": str(plan.overlay_pool),
                 "wanMtu": config.wan_mtu, "ike": config.ike, "esp": config.esp,
                 "interfaceMode": config.interface_mode}
        super().__init__("lab:index:Lab", name, props, opts)
        child = pulumi.ResourceOptions(parent=self)
        storage = LabStorage(f"{name}-storage", LabStorageArgs(
            stack=args.stack, pool_path=config.pool_path, image=config.image,
            kernel=config.kernel, initrd=config.initrd), opts=child)
        networks = LabNetworks(f"{name}-networks", LabNetworksArgs(
            stack=args.stack, plan=plan, wan_mtu=config.wan_mtu), opts=child)

        def node(site: Site, user_data: pulumi.Input[str], after: LabNode | None) -> LabNode:
            wan_mac = names.mac_address(args.stack, site.site_index, names.WAN_NIC)
            mgmt_mac = names.mac_address(args.stack, site.site_index, names.MGMT_NIC)
            return LabNode(f"{name}-{site.name}", LabNodeArgs(
                stack=args.stack, site=site, config=config, user_data=user_data,
                network_config=render.render_network_config(config, site, wan_mac, mgmt_mac),
                meta_data=render.render_meta_data(args.stack, site), wan_mac=wan_mac, mgmt_mac=mgmt_mac,
                pool_name=storage.pool_name, base_volume_id=storage.base_volume_id,
                wan_network_id=networks.wan_network_ids[site.name], mgmt_network_id=networks.mgmt_network_id,
                kernel_path=storage.kernel_path, initrd_path=storage.initrd_path,
                cloudinit_after=after.cloudinit if after else None), opts=child)

        hub = node(plan.hub, render.render_user_data(config, plan, plan.hub, psk=None), after=None)
        previous = hub
        for spoke in plan.spokes:
            psk = args.master_secret.apply(
                lambda master, spoke=spoke: derive_psk(master, plan.hub.ike_id, spoke.ike_id))
            previous = node(spoke, psk.apply(lambda key, spoke=spoke: render.render_user_data(config, plan, spoke, key)),
                            after=previous)
            Tunnel(f"{name}-{spoke.name}-tunnel", TunnelArgs(
                config=config, plan=plan, spoke=spoke, psk=psk, hub_host=str(plan.hub.mgmt_address),
                ssh_user=names.SSH_USER, ssh_private_key=args.ssh_private_key, hub=hub.domain), opts=child)

        self.nodes = report.nodes(config, plan)
        self.inventory = report.inventory_yaml(config, plan)
        self.topology = report.mermaid(config, plan)
        self.register_outputs({"nodes": self.nodes, "inventory": self.inventory, "topology": self.topology})
