"""LabStorage: the stack's storage pool, the base image and the boot files."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from lablib import names
from lablib.boot import BootFiles


@dataclass
class LabStorageArgs:
    stack: str  # libvirt object names derive from it (lablib.names)
    pool_path: str
    boot: BootFiles  # every site's, or the spokes' when the hub has its own
    hub_boot: BootFiles


@dataclass
class BootVolumes:
    """The pool volumes a domain boots from (kernel/initrd None without direct kernel boot)."""

    base_volume_id: pulumi.Output[str]
    kernel_path: pulumi.Output[str] | None = None
    initrd_path: pulumi.Output[str] | None = None


class LabStorage(pulumi.ComponentResource):
    """One dir pool per stack so `pulumi destroy` leaves no volume behind; the boot files
    are uploaded into it (qemu reads kernel and initrd too), once per distinct boot set."""

    pool_name: pulumi.Output[str]
    volumes: BootVolumes
    hub_volumes: BootVolumes

    def __init__(self, name: str, args: LabStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"image": args.boot.image, "hubImage": args.hub_boot.image, "poolPath": args.pool_path}
        super().__init__("lab:index:LabStorage", name, props, opts)
        pool = libvirt.Pool(f"{name}-pool", name=names.stack_prefix(args.stack), type="dir",
                            target=libvirt.PoolTargetArgs(path=names.pool_dir(args.pool_path, args.stack)),
                            opts=pulumi.ResourceOptions(parent=self))
        self.pool_name = pool.name
        self.volumes = self._upload(name, args.stack, args.boot, "")
        own = args.hub_boot != args.boot
        self.hub_volumes = self._upload(f"{name}-hub", args.stack, args.hub_boot, "hub") if own else self.volumes
        self.register_outputs({"poolName": self.pool_name, "baseVolumeId": self.volumes.base_volume_id,
                               "hubBaseVolumeId": self.hub_volumes.base_volume_id})

    def _upload(self, name: str, stack: str, boot: BootFiles, own: str) -> BootVolumes:
        child = pulumi.ResourceOptions(parent=self)
        base = libvirt.Volume(f"{name}-base", name=names.base_volume_name(stack, own), pool=self.pool_name,
                              source=boot.image, format="qcow2", opts=child)
        if not boot.direct:
            return BootVolumes(base.id)
        kernel = libvirt.Volume(f"{name}-kernel", name=names.kernel_volume_name(stack, own), pool=self.pool_name,
                                source=boot.kernel, format="raw", opts=child)
        initrd = libvirt.Volume(f"{name}-initrd", name=names.initrd_volume_name(stack, own), pool=self.pool_name,
                                source=boot.initrd, format="raw", opts=child)
        return BootVolumes(base.id, kernel.id, initrd.id)
