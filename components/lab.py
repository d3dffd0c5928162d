"""Lab: the whole hub-and-spoke lab of one stack."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from components.networks import LabNetworks, LabNetworksArgs
from components.node import LabNode, LabNodeArgs
from components.pki import LabPki, LabPkiArgs
from components.storage import LabStorage, LabStorageArgs
from components.tunnel import Tunnel, TunnelArgs
from lablib import names, payload, report, waits
from lablib.config import LabSpec
from lablib.hostssh import is_remote
from lablib.keys import derive_psk
from lablib.tunnel import spoke_tunnel


@dataclass
class LabArgs:
    stack: str
    spec: LabSpec
    master_secret: pulumi.Output[str]  # secret
    ssh_private_key: pulumi.Output[str]  # secret


class Lab(pulumi.ComponentResource):
    """Storage, networks, one LabNode per site and one Tunnel per spoke; with several hosts, one
    libvirt provider per host and every site's resources created through its host's provider."""

    nodes: dict[str, dict[str, object]]
    pki: LabPki | None  # with a certificate site only
    inventory: str
    topology: str
    hosts: list[dict[str, object]]

    def __init__(self, name: str, args: LabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        config, plan = spec.config, spec.plan
        props = {"spokes": config.addresses.spokes, "hubId": plan.hub.ike_id, "overlayPool": str(plan.overlay_pool),
                 "wanMtu": config.wan_mtu, "ike": config.ike, "esp": config.esp,
                 "interfaceMode": config.interface_mode}
        if config.uses_certs:  # a pre-shared key's lab keeps the props it always had
            props |= {"auth": config.auth, "certKey": config.cert_key,
                      "revokedSpokes": sorted(config.revoked_spokes)}
        super().__init__("lab:index:Lab", name, props, opts)
        child = pulumi.ResourceOptions(parent=self)
        providers = {host.name: libvirt.Provider(f"{name}-host-{host.name}", uri=host.uri, opts=child)
                     for host in spec.hosts.hosts}
        placement = dict(spec.hosts.placement)
        storage = LabStorage(f"{name}-storage", LabStorageArgs(
            stack=args.stack, pool_path=config.pool_path, boot=config.boot, hub_boot=config.hub_boot,
            providers={host: providers[host] for host in dict.fromkeys(placement.values())}), opts=child)
        networks = LabNetworks(f"{name}-networks", LabNetworksArgs(
            stack=args.stack, plan=plan, wan_mtu=config.wan_mtu, providers=providers, placement=placement,
            spoke_wan_mtus={names.spoke_name(n): mtu for n, mtu in config.spoke_wan_mtus}),
            opts=child)

        def node(seed: payload.NodePayload, user_data: pulumi.Input[str], after: LabNode | None) -> LabNode:
            site = seed.site
            host = placement.get(site.name, "")
            return LabNode(f"{name}-{site.name}", LabNodeArgs(
                stack=args.stack, spec=spec, payload=seed, user_data=user_data, pool_name=storage.pool_names[host],
                volumes=(storage.hub_volumes if site.is_hub else storage.volumes)[host],
                wan_network_id=networks.wan_network_ids[site.name],
                mgmt_network_id=networks.mgmt_network_ids[site.name],
                cloudinit_after=after.cloudinit if after and serial_isos else None),
                opts=pulumi.ResourceOptions(parent=self, providers=[providers[host]] if host else None))

        # The seed ISOs are uploaded one after another (see LabNode). A preview uploads nothing,
        # and the chain only made its program wait for each ISO's plan before declaring the next.
        serial_isos = not pulumi.runtime.is_dry_run()
        hub_seed = payload.node_payload(spec, args.stack, plan.hub, tunnel=None)
        hub = node(hub_seed, hub_seed.user_data(None), after=None)
        previous = hub
        # The hub's management network is reached from the hub's host when that is a remote one.
        hub_host = spec.hosts.host_of(plan.hub.name)
        jump = hub_host.uri if hub_host is not None and is_remote(hub_host.uri) else ""
        # The hub boots beside every other VM: its push waits as long as they all take to boot. Not a
        # prop the provider's diff compares: a lab grown (or moved to other cores) updates no hub side.
        ready = waits.scaled_wait(waits.HUB_READY_SECONDS, len(plan.sites), config.domain_type, waits.machine_cores())
        self.pki = (LabPki(f"{name}-pki", LabPkiArgs(
            stack=args.stack, spec=spec, hub_host=str(plan.hub.mgmt_address), ssh_private_key=args.ssh_private_key,
            hub=hub.domain, hub_instance=hub.domain.id, ready_timeout=ready, jump_uri=jump), opts=child)
            if config.uses_certs else None)
        for spoke in plan.spokes:
            tunnel = spoke_tunnel(spec, spoke)
            seed = payload.node_payload(spec, args.stack, spoke, tunnel)
            psk: pulumi.Output[str] | None = None
            if tunnel.spoke_end.uses_cert:
                assert self.pki is not None  # uses_certs
                user_data = self.pki.credentials[spoke.name].apply(
                    lambda credentials, seed=seed: seed.user_data(credentials=credentials))
            else:
                psk = args.master_secret.apply(
                    lambda master, spoke=spoke: derive_psk(master, plan.hub.ike_id, spoke.ike_id))
                user_data = psk.apply(seed.user_data)
            # A certificate conn's leftcert= must be in the hub's NSS; and a 4.10 hub's first PKI push
            # restarts pluto (cloud-init/pki-import.sh.j2), which would cut a pre-shared-key spoke
            # already up: so every hub side waits for that push, when the lab has one.
            after_hub: pulumi.Resource = self.pki.hub_push if self.pki is not None else hub.domain
            previous = node(seed, user_data, after=previous)
            Tunnel(f"{name}-{spoke.name}-tunnel", TunnelArgs(
                spec=spec, tunnel=tunnel, psk=psk, hub_host=str(plan.hub.mgmt_address),
                ssh_user=names.SSH_USER, ssh_private_key=args.ssh_private_key, hub=after_hub,
                hub_instance=hub.domain.id, ready_timeout=ready,
                jump_uri=jump, spoke=previous.domain if tunnel.tcp else None),
                opts=child)

        self.nodes = report.nodes(spec)
        self.inventory = report.inventory_yaml(spec)
        self.topology = report.mermaid(spec)
        self.hosts = report.hosts(spec)
        self.register_outputs({**({"certificates": self.pki.certificates} if self.pki else {}), "nodes": self.nodes, "inventory": self.inventory, "topology": self.topology,
                               "hosts": self.hosts})
