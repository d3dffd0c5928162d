"""The tcp remedy (ESP in TCP, lablib/remedies.py): the kernel check that refuses it where it cannot
work, what its spoke and hub get, and that Debian's own libreswan takes the result."""
from __future__ import annotations

import gzip
import re
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import ROOT, parse_lab
from lablib import kconfig, names, payload, render
from lablib.config import ConfigError
from lablib.tunnel import spoke_tunnel

IN_ROOT = ROOT / "scripts" / "in-root.sh"
CMDLINE = "root=/dev/vda rw console=ttyS0"


def bzimage(config: str | None, compress=gzip.compress) -> bytes:
    """A minimal bzImage: the boot header's fields kconfig reads, then the compressed 'kernel'
    holding config (None: a kernel built without CONFIG_IKCONFIG)."""
    inner = b"\x00kernel code\x00"
    if config is not None:
        inner += b"IKCFG_ST" + gzip.compress(config.encode()) + b"IKCFG_ED"
    payload_bytes = compress(inner + b"\x00more code")
    setup_sects = 1
    header = bytearray((setup_sects + 1) * 512)
    header[0x1F1] = setup_sects
    header[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", header, 0x248, 0, len(payload_bytes))
    return bytes(header) + payload_bytes


def kernel_file(tmp_path: Path, config: str | None, name: str = "bzImage") -> str:
    path = tmp_path / name
    path.write_bytes(bzimage(config))
    return str(path)


WITH_TCP = "CONFIG_XFRM=y\nCONFIG_INET_ESPINTCP=y\n# CONFIG_FOO is not set\n"
WITHOUT_TCP = "CONFIG_XFRM=y\n# CONFIG_INET_ESPINTCP is not set\n"


def test_kconfig_reads_a_kernels_own_options(tmp_path: Path) -> None:
    options = kconfig.kernel_options(kernel_file(tmp_path, WITH_TCP))
    assert options == {"CONFIG_XFRM": "y", "CONFIG_INET_ESPINTCP": "y"}
    assert "CONFIG_INET_ESPINTCP" not in kconfig.kernel_options(kernel_file(tmp_path, WITHOUT_TCP, "other"))


@pytest.mark.parametrize(("content", "why"), [
    (b"not a kernel" * 100, "not a bzImage"),
    (bzimage(None), "without CONFIG_IKCONFIG"),
    (bzimage(WITH_TCP, compress=lambda data: b"\x28\xb5\x2f\xfd" + data), "neither gzip nor xz"),
])
def test_kconfig_says_why_it_cannot_read_a_kernel(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "kernel"
    path.write_bytes(content)
    with pytest.raises(kconfig.NoConfig, match=why):
        kconfig.kernel_options(str(path))


def test_the_lab_kernel_has_esp_in_tcp() -> None:
    """scripts/build-kernel.sh (make deps) built it: the config check reads the real file."""
    assert names.LAB_KERNEL.is_file(), f"no {names.LAB_KERNEL}: run `make kernel` (make deps builds it)"
    options = kconfig.kernel_options(str(names.LAB_KERNEL))
    assert options["CONFIG_INET_ESPINTCP"] == "y" and options["CONFIG_IKCONFIG"] == "y"
    assert options["CONFIG_VIRTIO_BLK"] == options["CONFIG_EXT4_FS"] == "y"  # boots with no initramfs


def test_the_lab_kernel_asks_no_usermode_modprobe() -> None:
    """Every driver and algorithm is built in, so the kernel's own module requests (two per crypto
    name at a VM's first SA) would only run /sbin/modprobe for nothing (docs/performance.md, "The
    kernel's module requests"): the real kernel file has no modprobe path."""
    options = kconfig.kernel_options(str(names.LAB_KERNEL))
    assert options["CONFIG_MODPROBE_PATH"] == '""', options.get("CONFIG_MODPROBE_PATH")


@pytest.mark.parametrize(("kernel", "why"), [
    (None, "lab:kernel is not set, and no Debian kernel"),
    (WITHOUT_TCP, "is built without it"),
    ("debian", "cannot be checked"),
])
def test_a_tcp_spoke_on_a_kernel_without_esp_in_tcp_is_refused(tmp_path: Path, kernel: str | None,
                                                                why: str) -> None:
    boot = {}
    if kernel == "debian":
        debian = names.suite_dir("image", names.DEFAULT_SUITE) / "vmlinuz"
        assert debian.is_file(), f"no {debian}: run `make deps`"
        boot = {"kernel": str(debian), "kernelCmdline": CMDLINE}
    elif kernel is not None:
        boot = {"kernel": kernel_file(tmp_path, kernel), "kernelCmdline": CMDLINE}
    with pytest.raises(ConfigError, match=why) as caught:
        parse_lab(tcpSpokes=[1], **boot)
    assert caught.value.key == "tcpSpokes" and "make kernel" in str(caught.value)


def test_the_hubs_own_kernel_is_checked_too(tmp_path: Path) -> None:
    image = tmp_path / "hub.qcow2"
    image.write_bytes(b"")
    with pytest.raises(ConfigError, match="lab:hubKernel .* is built without it") as caught:
        parse_lab(tcpSpokes=[2], kernel=kernel_file(tmp_path, WITH_TCP), kernelCmdline=CMDLINE,
                  hubImage=str(image), hubKernel=kernel_file(tmp_path, WITHOUT_TCP, "hub"), hubKernelCmdline=CMDLINE)
    assert caught.value.key == "tcpSpokes"


def tcp_lab(tmp_path: Path, **overrides: object):
    return parse_lab(spokes=2, tcpSpokes=[2], kernel=kernel_file(tmp_path, WITH_TCP), kernelCmdline=CMDLINE,
                     **overrides)


def test_a_tcp_spoke_keeps_the_mtus_as_deployed_and_dials_tcp(tmp_path: Path) -> None:
    spec = tcp_lab(tmp_path)
    deployed = parse_lab(spokes=2, asDeployedSpokes=[2])
    assert spec.spoke_mtus == deployed.spoke_mtus and spec.mtu == deployed.mtu
    tunnel = spoke_tunnel(spec, spec.plan.spokes[1])
    assert tunnel.tcp and tunnel.as_deployed and tunnel.route_lock and not tunnel.spoke_port.df
    conn = render.render_conn(tunnel.spoke_end)
    assert "\tenable-tcp=yes\n" in conn and f"\ttcp-remoteport={names.ESP_IN_TCP_PORT}\n" in conn
    assert "enable-tcp" not in render.render_conn(tunnel.hub_end)  # the hub answers what it listens on
    other = spoke_tunnel(spec, spec.plan.spokes[0])
    assert not other.tcp and "enable-tcp" not in render.render_conn(other.spoke_end)


def test_the_tcp_spoke_and_its_hub_listen_on_tcp_with_gro_off(tmp_path: Path) -> None:
    spec = tcp_lab(tmp_path)
    hub, spoke1, spoke2 = spec.plan.sites
    scripts = {site.name: payload.lab_network_script(spec, site, None if site.is_hub else spoke_tunnel(spec, site))
               for site in (hub, spoke1, spoke2)}
    for name in ("hub", "spoke2"):
        assert "listen-tcp=yes" in scripts[name] and f"ethtool -K {names.WAN_INTERFACE} gro off" in scripts[name]
    assert "listen-tcp" not in scripts["spoke1"] and "ethtool" not in scripts["spoke1"]
    up = payload.hub_side(spec, spoke_tunnel(spec, spoke2)).up_script
    assert "listen-tcp=yes" in up and "ipsec restart" in up  # a hub that runs already starts to listen
    assert "listen-tcp" not in payload.hub_side(spec, spoke_tunnel(spec, spoke1)).up_script


GUARD_START = "for rule in "


def stream_guard(script: str) -> str:
    """The hub's ESP-in-TCP stream guard out of a script (cloud-init/esp-in-tcp.j2)."""
    return script[script.index(GUARD_START):].split("\ndone\n")[0] + "\ndone\n"


def test_the_hubs_wan_keeps_its_tcp_streams_from_icmp_errors_and_resets(tmp_path: Path) -> None:
    """libreswan 5.2's pluto aborts on deleting an IKE SA whose TCP stream failed a read first (an
    outage's ICMP host-unreachable, a reset): the hub's boot and its push of a tcp spoke drop those,
    not the frag-needed that PMTU discovery needs. iptables-legacy (the images') takes the rules, in
    a network namespace of their own, and a second run adds none."""
    spec = tcp_lab(tmp_path)
    hub, spoke1, spoke2 = spec.plan.sites
    boot = payload.lab_network_script(spec, hub, None)
    push = payload.hub_side(spec, spoke_tunnel(spec, spoke2)).up_script
    assert stream_guard(boot) == stream_guard(push)
    assert GUARD_START not in payload.lab_network_script(spec, spoke2, spoke_tunnel(spec, spoke2))
    assert GUARD_START not in payload.hub_side(spec, spoke_tunnel(spec, spoke1)).up_script
    assert GUARD_START not in payload.lab_network_script(parse_lab(spokes=2), hub, None)
    run = subprocess.run(["unshare", "--net", "sh", "-euc", stream_guard(boot) + stream_guard(push)
                          + "iptables-legacy -w -S INPUT"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    wan, port = names.WAN_INTERFACE, names.ESP_IN_TCP_PORT
    assert run.stdout.splitlines()[1:] == [
        f"-A INPUT -i {wan} -p icmp -m icmp --icmp-type 3/4 -j ACCEPT",
        f"-A INPUT -i {wan} -p icmp -m icmp --icmp-type 3 -m conntrack --ctstate RELATED --ctproto 6 "
        f"--ctorigdstport {port} -j DROP",
        f"-A INPUT -i {wan} -p tcp -m tcp --dport {port} --tcp-flags RST RST -j DROP"], run.stdout


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_debians_libreswan_takes_the_tcp_conn_and_the_listening_setup(suite: str, tmp_path: Path) -> None:
    """lab-network's own lines turn the tree's ipsec.conf into one that listens on TCP (twice: the
    second boot changes nothing); the tcp spoke's conn beside it passes addconn --checkconfig."""
    spec = tcp_lab(tmp_path)
    script = payload.lab_network_script(spec, spec.plan.spokes[1], spoke_tunnel(spec, spec.plan.spokes[1]))
    lines = script[script.index("if ! grep -q '^[[:space:]]*listen-tcp"):].split("\nfi\n")[0] + "\nfi\n"
    conf = tmp_path / "ipsec.conf"
    conf.write_text((names.suite_dir("rootfs", suite) / "etc" / "ipsec.conf").read_text())
    for _ in range(2):
        subprocess.run(["sh", "-euc", lines.replace(names.IPSEC_CONF, str(conf))], check=True)
    text = conf.read_text()
    assert len(re.findall(r"^\s*listen-tcp=yes$", text, re.MULTILINE)) == 1
    assert "config setup\n\tlisten-tcp=yes\n" in text
    conn, compat = tmp_path / "spoke2-hub.conf", tmp_path / "compat"
    conn.write_text(render.render_conn(spoke_tunnel(spec, spec.plan.spokes[1]).spoke_end))
    compat.write_text(render.render_ipsec_compat())  # as on the VM: fits the conn to this libreswan
    conf.write_text(text.replace("include /etc/ipsec.d/*.conf", f"include {conn}"))
    for command in (["sh", str(compat), str(conn)], ["ipsec", "addconn", "--config", str(conf), "--checkconfig"]):
        result = subprocess.run([str(IN_ROOT), "--suite", suite, *command], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert (result.returncode, result.stderr) == (0, ""), f"{suite} {command}: {result.stderr}"


def test_the_mtu_policy_passes_a_tcp_spoke_in_production_but_not_one_that_does_not_dial_tcp(tmp_path: Path) -> None:
    """Its MTUs are as deployed, but ESP in TCP never becomes an IP fragment; a tunnel that says tcp
    while its spoke end dials UDP is held to the MTU rule like any other."""
    from policy_harness import evaluate, planned

    def mtu_violations(resources: list) -> list[str]:
        return [v.message for v in evaluate(resources, "prod-eu") if v.policy == "mtu-esp-never-fragments"]
    resources = planned("prod-eu", "dev", tcpSpokes=[1], kernel=kernel_file(tmp_path, WITH_TCP),
                        kernelCmdline=CMDLINE)
    assert mtu_violations(resources) == []
    tunnel = next(r for r in resources if r.typ == "lab:index:Tunnel" and r.name.endswith("spoke1-tunnel"))
    del tunnel.inputs["spokeEnd"]["enableTcp"]
    found = mtu_violations(resources)
    assert found and all("spoke1-tunnel" in message for message in found)
    assert any("ESP would fragment" in message for message in found)


def test_only_a_tcp_spoke_boots_with_the_redial_guard(tmp_path: Path) -> None:
    """lab-tcp-redial (libreswan leaves a failed TCP stream's conn down): written, enabled and started
    on the tcp spoke only, a script sh can parse, and user-data Debian's cloud-init accepts."""
    spec = tcp_lab(tmp_path)
    spoke1, spoke2 = (payload.node_payload(spec, "test", site, spoke_tunnel(spec, site)).user_data("k" * 44)
                      for site in spec.plan.spokes)
    assert names.LAB_TCP_REDIAL_SERVICE not in spoke1 and names.LAB_TCP_REDIAL_SCRIPT not in spoke1
    assert f"  - [ln, -sf, {names.LAB_TCP_REDIAL_UNIT}, {names.MULTI_USER_WANTS}/]" in spoke2
    assert f"ipsec.service, {names.LAB_TCP_REDIAL_SERVICE}]" in spoke2
    script = render.tcp_redial_files("spoke2-hub", "192.168.1.10")[0].content
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    assert "--name spoke2-hub --initiate" in script and "--name spoke2-hub --terminate" in script
    assert f"dst 192.168.1.10 dport = :{names.ESP_IN_TCP_PORT}" in script
    assert not re.search(r"ipsec whack[^\n]*\| *grep -q", script), "whack's output is read to its end"
    written = next(f for f in yaml.safe_load(spoke2)["write_files"] if f["path"] == names.LAB_TCP_REDIAL_SCRIPT)
    hub = spec.plan.hub.wan_address
    assert f"dst {hub} dport" in written["content"], "the guard watches the stream to the address its conn dials"
    user_data = tmp_path / "spoke2.yaml"
    user_data.write_text(spoke2)
    result = subprocess.run([str(IN_ROOT), "cloud-init", "schema", "--config-file", str(user_data)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Valid cloud-config" in result.stdout, result.stdout + result.stderr
