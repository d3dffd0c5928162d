"""Rendered payloads checked by Debian 12's own libreswan and cloud-init.

The tools run inside the Debian root tree that scripts/debian-root.sh builds
(through scripts/in-root.sh), so the host stays clean. Missing tools FAIL
these tests: `make test` builds the tree first.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import ROOT, TEST_MASTER_SECRET, parse_lab
from lablib import names, payload, render
from lablib.tunnel import spoke_tunnel
from lablib.keys import derive_psk

IN_ROOT = ROOT / "scripts" / "in-root.sh"


def in_root(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(IN_ROOT), *command], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def debian_tree() -> None:
    probe = subprocess.run([str(IN_ROOT), "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"Debian tools unavailable ({probe.stderr.strip()}): run `make deps` first"


@pytest.mark.parametrize("mode", ["vti", "xfrm"])
def test_conns_pass_addconn_checkconfig_with_nothing_on_stderr(mode: str, tmp_path: Path) -> None:
    spec = parse_lab(interfaceMode=mode, spokes=3)
    conns = [render.render_conn(spoke_tunnel(spec, spoke).hub_end) for spoke in spec.plan.spokes]
    spoke_conn = render.render_conn(spoke_tunnel(spec, spec.plan.spokes[0]).spoke_end)
    for name, texts in {"hub": conns, "spoke": [spoke_conn]}.items():
        conf = tmp_path / f"{name}.conf"
        conf.write_text("config setup\n\n" + "\n".join(texts))
        result = in_root("ipsec", "addconn", "--config", str(conf), "--checkconfig", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, ""), f"{name} {mode}: {result.stderr}"


def test_checkconfig_catches_a_duplicate_key(tmp_path: Path) -> None:
    """The original deployment's mistake (a key twice) exits 0 but prints to stderr: we look at both."""
    spec = parse_lab(interfaceMode="vti")
    text = render.render_conn(spoke_tunnel(spec, spec.plan.spokes[0]).hub_end) + "\tvti-routing=yes\n\tvti-routing=yes\n"
    conf = tmp_path / "dup.conf"
    conf.write_text("config setup\n\n" + text)
    result = in_root("ipsec", "addconn", "--config", str(conf), "--checkconfig", cwd=tmp_path)
    assert result.stderr != ""


@pytest.mark.parametrize("proposal", ["ike=aes256-sha2", "esp=aes_gcm128-null"])
def test_default_algorithms_pass_algparse(proposal: str, tmp_path: Path) -> None:
    result = in_root("ipsec", "algparse", "-v2", proposal, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_algparse_rejects_aead_with_integrity(tmp_path: Path) -> None:
    result = in_root("ipsec", "algparse", "-v2", "esp=aes_gcm128-sha2", cwd=tmp_path)
    assert result.returncode != 0 or "ERROR" in result.stdout + result.stderr


@pytest.mark.parametrize("install_packages", [True, False])
def test_user_data_passes_cloud_init_schema(install_packages: bool, tmp_path: Path) -> None:
    spec = parse_lab(installPackages=install_packages)
    plan = spec.plan
    for site in (plan.hub, plan.spokes[0]):
        psk = None if site.is_hub else derive_psk(TEST_MASTER_SECRET, plan.hub.ike_id, site.ike_id)
        user_data = tmp_path / f"{site.name}.yaml"
        tunnel = None if site.is_hub else spoke_tunnel(spec, site)
        user_data.write_text(payload.node_payload(spec, "test", site, tunnel).user_data(psk))
        result = in_root("cloud-init", "schema", "--config-file", str(user_data), cwd=tmp_path)
        assert result.returncode == 0, f"{site.name}: {result.stdout}{result.stderr}"
        assert "Valid cloud-config" in result.stdout


def test_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 600\n")
    assert in_root("cloud-init", "schema", "--config-file", str(bad), cwd=tmp_path).returncode != 0


def test_network_config_renders_to_netplan(tmp_path: Path) -> None:
    site = parse_lab().plan.spokes[0]
    network = tmp_path / "network-config.yaml"
    network.write_text(render.render_network_config(site, 1500, "52:54:00:00:02:00", "52:54:00:00:02:01"))
    out = tmp_path / "out"
    out.mkdir()
    result = in_root("cloud-init", "devel", "net-convert", "--network-data", str(network), "--kind", "yaml",
                     "--output-kind", "netplan", "--distro", "debian", "-d", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rendered = "".join(p.read_text() for p in out.rglob("*.yaml"))
    assert "192.168.2.10/24" in rendered and f"set-name: {names.WAN_INTERFACE}" in rendered and "via: 192.168.2.1" in rendered
