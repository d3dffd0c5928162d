"""LabNode: one VM (hub or spoke) with its disk, cloud-init payload and domain."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from components.storage import BootVolumes
from lablib import names, report
from lablib.cmdline import kernel_cmdlines
from lablib.config import LabSpec
from lablib.payload import NodePayload
from lablib.remedies import COMPUTED_MTU


@dataclass
class LabNodeArgs:
    stack: str
    spec: LabSpec
    payload: NodePayload
    user_data: pulumi.Input[str]  # a secret for spokes: it holds the pre-shared key
    pool_name: pulumi.Input[str]
    volumes: BootVolumes  # the site's role's boot volumes
    wan_network_id: pulumi.Input[str]
    mgmt_network_id: pulumi.Input[str]
    cloudinit_after: pulumi.Resource | None = None  # see LabNode


class LabNode(pulumi.ComponentResource):
    """Registers the site's addresses and sizing as props so policies can judge the VM."""

    domain: libvirt.Domain
    cloudinit: libvirt.CloudInitDisk
    ssh_command: str

    def __init__(self, name: str, args: LabNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        seed, config = args.payload, args.spec.config
        site = seed.site
        mtu = args.spec.mtu_of(site)
        boot = config.boot_of(site.is_hub)
        props = {
            "role": "hub" if site.is_hub else "spoke", "site": site.name, "ikeId": site.ike_id,
            "wanAddress": str(site.wan_address), "mgmtAddress": str(site.mgmt_address),
            "overlayAddress": str(site.overlay_address), "bridgeAddress": str(site.bridge_address),
            "behindNat": site.behind_nat, "domainType": config.domain_type,
            "memoryMib": config.memory_mib, "vcpus": config.vcpus, "wanMtu": mtu.wan_mtu,
            "tunnelMtu": mtu.tunnel_mtu, "innerMtu": mtu.inner_mtu, "image": boot.image,
            # Only where they differ from today's lab (lablib/remedies.py): earlier stacks keep their props.
            **({"bridgeMtu": mtu.bridge_mtu} if mtu.bridge_mtu else {}),
            **({"remedy": config.remedy_of(site.number)} if config.remedy_of(site.number) != COMPUTED_MTU else {}),
        }
        super().__init__("lab:index:LabNode", name, props, opts)
        # libvirt names are fixed (names.*): a replacement (`labctl rebuild`) cannot exist beside the old.
        child = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        # The provider reads each ISO back after uploading it, and concurrent uploads came back
        # truncated ("corrupted-image: EOF"): the Lab creates them one after another.
        cloudinit = libvirt.CloudInitDisk(
            f"{name}-cloudinit", name=names.cloudinit_volume_name(args.stack, site.name), pool=args.pool_name,
            user_data=args.user_data, network_config=seed.network_config, meta_data=seed.meta_data,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                depends_on=[args.cloudinit_after] if args.cloudinit_after else [])))
        self.cloudinit = cloudinit
        # A spoke reads its cloud-init (its key or certificate) at first boot only, and cloud-init
        # does not run again on a disk it has booted: a new seed gets a new disk (and so a new domain).
        # Not the hub: its spokes' conns, pushed over SSH, would not follow it.
        made_with_seed = [] if site.is_hub else [cloudinit]
        disk = libvirt.Volume(f"{name}-disk", name=names.disk_volume_name(args.stack, site.name), pool=args.pool_name,
                              base_volume_id=args.volumes.base_volume_id, format="qcow2",
                              opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                                  replace_with=made_with_seed)))
        direct_boot = {}
        if boot.direct:
            direct_boot = {"kernel": args.volumes.kernel_path, "cmdlines": kernel_cmdlines(boot.kernel_cmdline)}
            if args.volumes.initrd_path is not None:
                direct_boot["initrd"] = args.volumes.initrd_path
        self.domain = libvirt.Domain(
            f"{name}-domain",
            name=names.domain_name(args.stack, site.name),
            type=config.domain_type,
            memory=config.memory_mib,
            vcpu=config.vcpus,
            cloudinit=cloudinit.id,
            disks=[libvirt.DomainDiskArgs(volume_id=disk.id)],
            network_interfaces=[
                libvirt.DomainNetworkInterfaceArgs(network_id=args.wan_network_id, mac=seed.wan_mac),
                libvirt.DomainNetworkInterfaceArgs(network_id=args.mgmt_network_id, mac=seed.mgmt_mac,
                                                   addresses=[str(site.mgmt_address)], hostname=site.name),
            ],
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
            xml=libvirt.DomainXmlArgs(xslt=seed.console_xslt),
            running=True,
            **direct_boot,
            # libvirt does not apply NIC or boot changes to a defined domain: replace it. A spoke's
            # domain is made anew with its seed and disk: the provider would update it in place (the
            # new disk has the old one's path, so its id), and the running VM keeps the deleted disk
            # open. The provider reads addresses back from DHCP leases only: that field never matches.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                replace_on_changes=["networkInterfaces", "kernel", "initrd", "cmdlines"],
                replace_with=made_with_seed,
                ignore_changes=["networkInterfaces[1].addresses"])),
        )
        self.ssh_command = report.ssh_command(site)
        self.register_outputs({"domainId": self.domain.id, "sshCommand": self.ssh_command})
