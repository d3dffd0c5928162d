"""guest/lab-seed, the lab image's seed reader in place of cloud-init: every payload the program
renders is one it applies whole, and anything else is refused by name. Fast, pure Python; the
real first boot is the end-to-end lab's (tests/e2e/test_lab.py boots with cloud-init=disabled)."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import stat
from pathlib import Path

import pytest
import yaml

from harness import ROOT, boot_files, parse_lab
from lablib import names, payload
from lablib.errors import ConfigError
from lablib.tunnel import spoke_tunnel

PSK = "k" * 43
CREDENTIALS = payload.SiteCredentials(bundle="QlVORExF", ca_pem="-----BEGIN CERTIFICATE-----\nCA\n")


def _load_seed():
    loader = importlib.machinery.SourceFileLoader("lab_seed", str(ROOT / "guest" / "lab-seed"))
    spec = importlib.util.spec_from_loader("lab_seed", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


SEED = _load_seed()


def seeds(overrides: dict[str, object]) -> list[tuple[payload.NodePayload, str]]:
    """Every site's payload and its user-data, as the program renders them for overrides."""
    spec = parse_lab(installPackages=False, **overrides)  # the lab image's payload
    out = [(payload.node_payload(spec, "test", spec.plan.hub, None), None)]
    out += [(payload.node_payload(spec, "test", spoke, spoke_tunnel(spec, spoke)), spoke) for spoke in spec.plan.spokes]
    rendered = []
    for node, spoke in out:
        cert = spoke is not None and node.conn is not None and node.conn.uses_cert
        rendered.append((node, node.user_data(None if cert or spoke is None else PSK,
                                              CREDENTIALS if cert else None)))
    return rendered


@pytest.mark.parametrize("overrides", [{}, {"interfaceMode": "vti"}, {"auth": "cert", "pskSpokes": [1]}])
def test_every_rendered_payload_is_applied_whole(overrides: dict[str, object]) -> None:
    for node, user_data in seeds(overrides):
        seed = SEED.plan(user_data, node.meta_data, node.network_config)
        config = yaml.safe_load(user_data)
        assert seed["hostname"] == node.site.name
        assert [f["path"] for f in seed["files"]] == [f["path"] for f in config["write_files"]]
        assert all(f["mode"] == int(c["permissions"], 8) for f, c in zip(seed["files"], config["write_files"]))
        assert seed["runcmd"] == [[str(word) for word in command] for command in config["runcmd"]]
        assert seed["users"] == [{"name": names.SSH_USER, "groups": ["sudo"], "sudo": "ALL=(ALL) NOPASSWD:ALL",
                                  "shell": "/bin/bash", "keys": [node.ssh_public_key]}]
        assert seed["network"]["renames"] == {node.wan_mac.lower(): names.WAN_INTERFACE,
                                              node.mgmt_mac.lower(): names.MGMT_INTERFACE}
        assert seed["network"]["netplan"]["network"] == yaml.safe_load(node.network_config)
        assert seed["instance_id"] == yaml.safe_load(node.meta_data)["instance-id"]


@pytest.mark.parametrize(("edit", "named"), [
    (lambda c: c.update(packages=["libreswan"]), "user-data packages"),
    (lambda c: c.update(ssh_pwauth=True), "user-data ssh_pwauth"),
    (lambda c: c["write_files"][0].update(encoding="b64"), "write_files[] encoding"),
    (lambda c: c["write_files"][0].update(path="etc/x"), "write_files[] path"),
    (lambda c: c["users"][0].update(lock_passwd=False), "users[]"),
    (lambda c: c["runcmd"].append({"not": "a command"}), "runcmd"),
])
def test_a_payload_outside_what_it_reads_is_refused_by_name(edit, named: str) -> None:
    node, user_data = seeds({})[1]
    config = yaml.safe_load(user_data)
    edit(config)
    with pytest.raises(SEED.SeedError, match=named.replace("[", r"\[").replace("]", r"\]")):
        SEED.plan("#cloud-config\n" + yaml.safe_dump(config), node.meta_data, node.network_config)


def test_network_config_it_cannot_apply_is_refused() -> None:
    node, user_data = seeds({})[1]
    network = yaml.safe_load(node.network_config)
    network["bonds"] = {}
    with pytest.raises(SEED.SeedError, match="network-config bonds"):
        SEED.plan(user_data, node.meta_data, yaml.safe_dump(network))
    with pytest.raises(SEED.SeedError, match="not #cloud-config"):
        SEED.plan("#!/bin/sh\necho hi\n", node.meta_data, node.network_config)


def test_a_file_is_never_readable_beyond_its_mode_while_written(tmp_path: Path) -> None:
    target = tmp_path / "d" / "secret"
    os.umask(0o022)
    SEED._write(target, "key", 0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "key"
    assert [p.name for p in target.parent.iterdir()] == ["secret"]


def test_the_seed_is_applied_once_per_instance_and_systemd_hears_ready(tmp_path: Path, monkeypatch) -> None:
    node, user_data = seeds({})[1]
    monkeypatch.setenv("LAB_SEED_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(SEED, "read_seed", lambda: (user_data, node.meta_data, node.network_config))
    events: list[str] = []
    monkeypatch.setattr(SEED, "local_part", lambda seed: events.append("local"))
    monkeypatch.setattr(SEED, "final_part", lambda seed: events.append("final"))
    monkeypatch.setattr(SEED, "_ready", lambda: events.append("READY"))
    assert SEED.main() == 0
    assert (tmp_path / "state" / "status").read_text() == "status: done\n"
    assert events == ["local", "READY", "final"]  # the boot goes on while the final part runs
    assert SEED.main() == 0 and events[3:] == ["READY"]  # a reboot applies nothing again

    (tmp_path / "state" / "status").unlink()
    events.clear()

    def fail(seed: dict) -> None:
        raise SEED.SeedError("network-config: broken")
    monkeypatch.setattr(SEED, "local_part", fail)
    assert SEED.main() == 1 and SEED.main() == 1  # the second boot does not try again
    assert (tmp_path / "state" / "status").read_text() == "status: error\nlocal: network-config: broken\n"
    assert events == ["READY", "READY"]


def test_ready_reaches_the_notify_socket(tmp_path: Path, monkeypatch) -> None:
    """What systemd's Type=notify waits for: READY=1 as a datagram on $NOTIFY_SOCKET."""
    import socket
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        SEED._ready()
        assert server.recv(64) == b"READY=1"


def test_the_seed_reader_with_install_packages_is_refused() -> None:
    line = "root=/dev/vda rw console=ttyS0 " + names.CLOUD_INIT_OFF
    boot = {"kernel": str(boot_files() / "vmlinuz"), "initrd": str(boot_files() / "initrd.img"), "kernelCmdline": line}
    with pytest.raises(ConfigError, match="lab:kernelCmdline .*installs no packages"):
        parse_lab(installPackages=True, **boot)
    assert parse_lab(installPackages=False, **boot).config.boot.kernel_cmdline == line
