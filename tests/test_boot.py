"""Boot files per role: the hub of a mixed fleet boots its own image (and kernel), the spokes theirs."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness import boot_files, mock_secrets, run_program, stack_values
from lablib import names
from lablib.boot import HUB_KEYS, with_cloud_init
from lablib.config import ConfigError, parse_config

BOOT = {"kernel": str(boot_files() / "vmlinuz"), "initrd": str(boot_files() / "initrd.img"),
        "kernelCmdline": "root=/dev/vda rw console=ttyS0"}


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second set of boot files (the hub's), distinct from the spokes'."""
    directory = tmp_path_factory.mktemp("hub-boot")
    for name in ("hub.qcow2", "vmlinuz", "initrd.img"):
        shutil.copy(boot_files() / "test.qcow2", directory / name)
    return directory


def hub_boot(files: Path, cmdline: str = "root=/dev/vda rw console=ttyS0 quiet") -> dict[str, str]:
    return dict(zip(HUB_KEYS, (str(files / "hub.qcow2"), str(files / "vmlinuz"), str(files / "initrd.img"), cmdline)))


def parse(**overrides: str):
    return parse_config(stack_values(overrides, secrets=False), mock_secrets())


def test_without_hub_keys_every_site_boots_the_same_files() -> None:
    config = parse(**BOOT).config
    assert config.hub_boot == config.boot and config.boot.direct
    run = run_program(stack_values(BOOT))
    assert [v.inputs["name"] for v in run.of_type("libvirt:index/volume:Volume") if "base" in v.inputs["name"]] == [
        names.base_volume_name("test")]
    assert run.named("lab-hub-domain").inputs["kernel"] == run.named("lab-spoke1-domain").inputs["kernel"]


def test_hub_with_its_own_direct_boot_files(hub_files: Path) -> None:
    run = run_program(stack_values({**BOOT, **hub_boot(hub_files)}))
    volumes = {v.name: v.inputs for v in run.of_type("libvirt:index/volume:Volume")}
    assert volumes["lab-storage-hub-base"]["source"] == str(hub_files / "hub.qcow2")
    assert volumes["lab-storage-hub-base"]["name"] == names.base_volume_name("test", "hub")
    assert volumes["lab-storage-hub-kernel"]["source"] == str(hub_files / "vmlinuz")
    assert volumes["lab-storage-base"]["source"] == str(boot_files() / "test.qcow2")
    hub, spoke = run.named("lab-hub-domain").inputs, run.named("lab-spoke1-domain").inputs
    assert hub["kernel"] != spoke["kernel"] and hub["initrd"] != spoke["initrd"]
    assert "quiet" in str(hub["cmdlines"]) and "quiet" not in str(spoke["cmdlines"])  # hubKernelCmdline
    disks = {d.name: d.inputs for d in run.of_type("libvirt:index/volume:Volume") if d.name.endswith("-disk")}
    assert disks["lab-hub-disk"]["baseVolumeId"] != disks["lab-spoke1-disk"]["baseVolumeId"]
    assert run.named("lab-hub").inputs["image"] == str(hub_files / "hub.qcow2")


def test_a_hub_differing_only_in_its_command_line_shares_the_volumes() -> None:
    """The two-host lab's hub boots the spokes' files with cloud-init: nothing is uploaded twice."""
    same = dict(zip(HUB_KEYS, (str(boot_files() / "test.qcow2"), BOOT["kernel"], BOOT["initrd"],
                               BOOT["kernelCmdline"] + " " + names.CLOUD_INIT_OFF)))
    run = run_program(stack_values({**BOOT, **same, "installPackages": False}))
    assert not [v.name for v in run.of_type("libvirt:index/volume:Volume") if "-hub-" in v.name and "storage" in v.name]
    hub, spoke = run.named("lab-hub-domain").inputs, run.named("lab-spoke1-domain").inputs
    assert hub["kernel"] == spoke["kernel"] and names.CLOUD_INIT_OFF.split("=")[0] in str(hub["cmdlines"])
    assert names.CLOUD_INIT_OFF.split("=")[0] not in str(spoke["cmdlines"])


def test_hub_image_alone_boots_the_hub_from_its_disk(hub_files: Path) -> None:
    """A cloud image for the hub (its own bootloader) beside direct-booted spokes."""
    run = run_program(stack_values({**BOOT, HUB_KEYS[0]: str(hub_files / "hub.qcow2")}))
    assert "kernel" not in run.named("lab-hub-domain").inputs
    assert run.named("lab-spoke1-domain").inputs["kernel"]


@pytest.mark.parametrize(("given", "missing"), [
    ((1,), HUB_KEYS[0]),            # hubKernel alone: the hub's image is what is missing
    ((1, 2, 3), HUB_KEYS[0]),
    ((0, 1), HUB_KEYS[3]),          # hubImage + hubKernel: hubKernelCmdline (hubInitrd is optional)
    ((0, 1, 2), HUB_KEYS[3]),
    ((0, 3), HUB_KEYS[1]),
])
def test_incomplete_hub_boot_set_names_the_key_really_missing(hub_files: Path, given: tuple[int, ...],
                                                               missing: str) -> None:
    full = hub_boot(hub_files)
    with pytest.raises(ConfigError, match=f"lab:{missing}.*is missing") as caught:
        parse(**BOOT, **{HUB_KEYS[i]: full[HUB_KEYS[i]] for i in given})
    assert caught.value.key == missing


@pytest.mark.parametrize(("index", "value", "why"), [
    (0, "/nonexistent/hub.qcow2", "names no existing file"),
    (0, "relative/hub.qcow2", "absolute path"),
    (1, "/boot/no-such-vmlinuz", "names no existing file"),
    (3, "root=/dev/vda -- single", "`--`"),
    (3, "root=/dev/vda console=ttyS0 console=tty0", "repeats console="),
])
def test_bad_hub_boot_value_is_refused_naming_the_hub_key(hub_files: Path, index: int, value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as caught:
        parse(**BOOT, **{**hub_boot(hub_files), HUB_KEYS[index]: value})
    assert caught.value.key == HUB_KEYS[index]


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
@pytest.mark.parametrize("kind", ["rootfs", "image"])
def test_suite_directories_are_where_the_scripts_put_them(kind: str, suite: str) -> None:
    script = f'. "{names.PROJECT_DIR}/scripts/env.sh" && lab_suite_dir {kind} {suite}'
    placed = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert placed == str(names.suite_dir(kind, suite))


def test_with_cloud_init_drops_only_the_seed_reader_word() -> None:
    line = f"root=/dev/vda rw {names.CLOUD_INIT_OFF} console=ttyS0"
    assert with_cloud_init(line) == "root=/dev/vda rw console=ttyS0"
    assert with_cloud_init("root=/dev/vda cloud-init=enabled") == "root=/dev/vda cloud-init=enabled"
