"""What the VMs boot from, per role: the spokes' files (image, kernel, initrd,
kernelCmdline) are every site's, unless the hub* keys give the hub its own (a
mixed fleet, e.g. the hub on Debian 13 and libreswan 5.x, the spokes on 12)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from lablib import inputs, names
from lablib.cmdline import kernel_cmdlines
from lablib.errors import ConfigError

# The keys of one boot set, in the order direct_boot names them; the hub's carry a prefix.
KEYS = ("image", "kernel", "initrd", "kernelCmdline")
HUB_KEYS = tuple(f"hub{key[0].upper()}{key[1:]}" for key in KEYS)


@dataclass(frozen=True)
class BootFiles:
    """A disk image and, for direct kernel boot, kernel + command line (+ initrd, unless the kernel
    needs none) ("" when not)."""

    image: str
    kernel: str = ""
    initrd: str = ""
    kernel_cmdline: str = ""

    @property
    def direct(self) -> bool:
        return bool(self.kernel)

    def files(self) -> tuple[str, str, str]:
        """What is uploaded as volumes: two sets that differ only in the command line share them."""
        return self.image, self.kernel, self.initrd


def parse_boot(raw: Mapping[str, str | None]) -> tuple[BootFiles, BootFiles]:
    """(the spokes' boot files, the hub's): the hub's are the spokes' unless hubImage is set."""
    spokes = _boot_set(raw, KEYS)
    hub_given = [key for key in HUB_KEYS if (raw.get(key) or "").strip()]
    if not hub_given:
        return spokes, spokes
    if HUB_KEYS[0] not in hub_given:
        raise ConfigError(HUB_KEYS[0], "", f"is missing: lab:{hub_given[0]} set means the hub boots its own "
                                           f"files, which needs {HUB_KEYS[0]} (and for direct kernel boot "
                                           f"{', '.join(HUB_KEYS[1:])})")
    return spokes, _boot_set(raw, HUB_KEYS)


def _boot_set(raw: Mapping[str, str | None], keys: tuple[str, ...]) -> BootFiles:
    image_key, kernel_key, initrd_key, cmdline_key = keys
    image, kernel, initrd, cmdline = ((raw.get(key) or "").strip() for key in keys)
    if not image:
        raise ConfigError(image_key, image, "must name a cloud image (path or http(s) URL)")
    inputs.direct_boot({kernel_key: kernel, initrd_key: initrd, cmdline_key: cmdline}, optional=initrd_key)
    try:
        kernel_cmdlines(cmdline)  # raises when the provider cannot pass it as written
    except ConfigError as error:
        raise ConfigError(cmdline_key, error.value, error.allowed) from None
    return BootFiles(
        image=inputs.boot_file(image_key, image),
        kernel=inputs.boot_file(kernel_key, kernel) if kernel else "",
        initrd=inputs.boot_file(initrd_key, initrd) if initrd else "",
        kernel_cmdline=cmdline,
    )


def with_cloud_init(cmdline: str) -> str:
    """cmdline without names.CLOUD_INIT_OFF: the same lab image booting cloud-init instead of lab-seed."""
    return " ".join(word for word in cmdline.split() if word != names.CLOUD_INIT_OFF)


def check_seed_reader(boot: BootFiles, hub_boot: BootFiles, install_packages: bool) -> None:
    """cloud-init=disabled on a kernel command line boots the lab image's own seed reader
    (guest/lab-seed), which installs no packages: refuse it beside installPackages."""
    for key, files in ((KEYS[3], boot), (HUB_KEYS[3], hub_boot)):
        if install_packages and names.CLOUD_INIT_OFF in files.kernel_cmdline.split():
            raise ConfigError(key, files.kernel_cmdline,
                              f"has {names.CLOUD_INIT_OFF}, so the lab image's lab-seed applies the seed, and it "
                              "installs no packages: drop it or set lab:installPackages to false")
