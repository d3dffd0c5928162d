"""LabStorage: the stack's storage pool, the base image and the boot files, on each host."""
from __future__ import annotations

from dataclasses import dataclass, field

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
    # Several hosts: host name -> its provider, every host gets its own pool and uploads (nothing
    # assumes a shared file system). Empty: one pool on the default host.
    providers: dict[str, libvirt.Provider] = field(default_factory=dict)


@dataclass
class BootVolumes:
    """The pool volumes a domain boots from (kernel None without direct kernel boot, initrd None
    without direct kernel boot or with a kernel that needs no initrd)."""

    base_volume_id: pulumi.Output[str]
    kernel_path: pulumi.Output[str] | None = None
    initrd_path: pulumi.Output[str] | None = None


class LabStorage(pulumi.ComponentResource):
    """One dir pool per stack (and host) so `pulumi destroy` leaves no volume behind; the boot
    files are uploaded into it (qemu reads kernel and initrd too), once per distinct boot set."""

    pool_names: dict[str, pulumi.Output[str]]  # by host name ("" for the default host)
    volumes: dict[str, BootVolumes]
    hub_volumes: dict[str, BootVolumes]

    def __init__(self, name: str, args: LabStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"image": args.boot.image, "hubImage": args.hub_boot.image, "poolPath": args.pool_path}
        super().__init__("lab:index:LabStorage", name, props, opts)
        self.pool_names, self.volumes, self.hub_volumes = {}, {}, {}
        hosts = {f"-{host}": (host, provider) for host, provider in args.providers.items()} or {"": ("", None)}
        for suffix, (host, provider) in hosts.items():
            child = pulumi.ResourceOptions(parent=self, provider=provider)
            pool = libvirt.Pool(f"{name}-pool{suffix}", name=names.stack_prefix(args.stack), type="dir",
                                target=libvirt.PoolTargetArgs(path=names.pool_dir(args.pool_path, args.stack)),
                                opts=child)
            self.pool_names[host] = pool.name
            self.volumes[host] = self._upload(f"{name}{suffix}", args.stack, args.boot, "", pool.name, child)
            own = args.hub_boot.files() != args.boot.files()
            self.hub_volumes[host] = (self._upload(f"{name}{suffix}-hub", args.stack, args.hub_boot, "hub",
                                                   pool.name, child) if own else self.volumes[host])
        self.register_outputs({"poolNames": self.pool_names,
                               "baseVolumeIds": {h: v.base_volume_id for h, v in self.volumes.items()},
                               "hubBaseVolumeIds": {h: v.base_volume_id for h, v in self.hub_volumes.items()}})

    @staticmethod
    def _upload(name: str, stack: str, boot: BootFiles, own: str, pool: pulumi.Output[str],
                child: pulumi.ResourceOptions) -> BootVolumes:
        base = libvirt.Volume(f"{name}-base", name=names.base_volume_name(stack, own), pool=pool,
                              source=boot.image, format="qcow2", opts=child)
        if not boot.direct:
            return BootVolumes(base.id)
        kernel = libvirt.Volume(f"{name}-kernel", name=names.kernel_volume_name(stack, own), pool=pool,
                                source=boot.kernel, format="raw", opts=child)
        if not boot.initrd:
            return BootVolumes(base.id, kernel.id)
        initrd = libvirt.Volume(f"{name}-initrd", name=names.initrd_volume_name(stack, own), pool=pool,
                                source=boot.initrd, format="raw", opts=child)
        return BootVolumes(base.id, kernel.id, initrd.id)
