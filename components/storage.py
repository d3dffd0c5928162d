"""LabStorage: the stack's storage pool, the base image and the boot files."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from lablib import names


@dataclass
class LabStorageArgs:
    stack: str  # libvirt object names derive from it (lablib.names)
    pool_path: str
    image: str
    kernel: str = ""
    initrd: str = ""


class LabStorage(pulumi.ComponentResource):
    """One dir pool per stack so `pulumi destroy` leaves no volume behind."""

    pool_name: pulumi.Output[str]
    base_volume_id: pulumi.Output[str]
    kernel_path: pulumi.Output[str] | None
    initrd_path: pulumi.Output[str] | None

    def __init__(self, name: str, args: LabStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lab:index:LabStorage", name, {"image": args.image, "poolPath": args.pool_path}, opts)
        child = pulumi.ResourceOptions(parent=self)
        pool = libvirt.Pool(f"{name}-pool", name=names.stack_prefix(args.stack), type="dir",
                            target=libvirt.PoolTargetArgs(path=names.pool_dir(args.pool_path, args.stack)), opts=child)
        self.pool_name = pool.name
        base = libvirt.Volume(f"{name}-base", name=names.base_volume_name(args.stack), pool=pool.name,
                              source=args.image, format="qcow2", opts=child)
        self.base_volume_id = base.id
        # Direct kernel boot: qemu reads kernel and initrd, so they live in the pool too.
        self.kernel_path = self.initrd_path = None
        if args.kernel:
            kernel = libvirt.Volume(f"{name}-kernel", name=names.kernel_volume_name(args.stack), pool=pool.name,
                                    source=args.kernel, format="raw", opts=child)
            initrd = libvirt.Volume(f"{name}-initrd", name=names.initrd_volume_name(args.stack), pool=pool.name,
                                    source=args.initrd, format="raw", opts=child)
            self.kernel_path, self.initrd_path = kernel.id, initrd.id
        self.register_outputs({"poolName": self.pool_name, "baseVolumeId": self.base_volume_id})
