"""Rendered payloads (lablib.payload through lablib.render): content checks (fast, pure Python)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import parse_lab
from lablib import names, payload, render
from lablib.addressing import Site
from lablib.config import LabSpec
from lablib.tunnel import spoke_tunnel

PSK = "k" * 43


def spoke_payload(spec: LabSpec, spoke: Site) -> payload.NodePayload:
    return payload.node_payload(spec, "test", spoke, spoke_tunnel(spec, spoke))


def test_a_spoke_needs_its_tunnel_and_the_hub_none() -> None:
    spec = parse_lab()
    with pytest.raises(ValueError, match="spoke1"):
        payload.node_payload(spec, "test", spec.plan.spokes[0], tunnel=None)
    with pytest.raises(ValueError, match="hub"):
        payload.node_payload(spec, "test", spec.plan.hub, spoke_tunnel(spec, spec.plan.spokes[0]))


def conn_options(text: str) -> dict[str, str]:
    return dict(line.strip().split("=", 1) for line in text.splitlines() if line.startswith("\t"))


@pytest.mark.parametrize("mode", ["vti", "xfrm"])
def test_hub_and_spoke_conns(mode: str) -> None:
    spec = parse_lab(interfaceMode=mode)
    tunnel = spoke_tunnel(spec, spec.plan.spokes[1])
    hub = conn_options(render.render_conn(tunnel.hub_end))
    remote = conn_options(render.render_conn(tunnel.spoke_end))
    assert hub["right"] == "%any" and hub["rightid"] == "@spoke2" and hub["auto"] == "add"
    assert remote["left"] == "%defaultroute" and remote["right"] == "192.168.1.10" and remote["auto"] == "start"
    for conn in (hub, remote):
        assert conn["encapsulation"] == "yes" and conn["ike"] == "aes256-sha2;dh19" and conn["esp"] == "aes_gcm128-null"
        assert "dpddelay" in conn and "ikev2" not in conn and "keyexchange" not in conn
        assert conn["leftupdown"] == names.LAB_UPDOWN
        if mode == "vti":
            assert conn["mark"] == "20/0xffffffff" and conn["vti-interface"] == names.VTI_INTERFACE
        else:
            assert conn["ipsec-interface"] == "20" and "mark" not in conn
    assert hub["leftsubnet"] == remote["rightsubnet"] == "240.0.0.1/32"


def test_user_data_is_cloud_config_with_secrets_0600() -> None:
    spec = parse_lab(installPackages=False)
    text = spoke_payload(spec, spec.plan.spokes[0]).user_data(PSK)
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    files = {f["path"]: f for f in data["write_files"]}
    secrets = files[names.conn_secrets_path("spoke1-hub")]
    assert secrets["permissions"] == "0600" and f'@spoke1 @hub : PSK "{PSK}"' in secrets["content"]
    assert files[names.LAB_NETWORK_SCRIPT]["content"].startswith("#!/bin/sh\n")
    assert files[names.LAB_UPDOWN]["permissions"] == "0755"
    assert files[names.LAB_UPDOWN]["content"] == render.render_updown()
    assert "packages" not in data and data["ssh_pwauth"] is False
    assert data["users"][0]["name"] == names.SSH_USER
    assert data["users"][0]["ssh_authorized_keys"] == [spec.config.ssh_public_key]


def test_hub_user_data_holds_no_spoke_and_no_key() -> None:
    spec = parse_lab()
    text = payload.node_payload(spec, "test", spec.plan.hub, tunnel=None).user_data(psk=None)
    assert "PSK" not in text and "spoke" not in text
    assert yaml.safe_load(text)["packages"] == ["libreswan", "openvswitch-switch"]


@pytest.mark.parametrize("mode", ["vti", "xfrm"])
def test_lab_network_script_sets_the_computed_mtu(mode: str) -> None:
    spec = parse_lab(interfaceMode=mode, wanMtu=1492, greKey=False)
    hub = payload.lab_network_script(spec, spec.plan.hub, tunnel=None)
    first = spec.plan.spokes[0]
    spoke = payload.lab_network_script(spec, first, spoke_tunnel(spec, first))
    device = names.VTI_INTERFACE if mode == "vti" else "ipsec20"
    for script in (hub, spoke):
        assert f"ip link set {device} mtu 1430 up" in script
        assert "mtu_request=1392" in script
        subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "ip route replace 240.0.0.0/24 dev" in hub and "add-port" not in hub
    assert (f"add-port {names.BRIDGE} gre-hub -- set interface gre-hub type=gre options:local_ip=240.0.0.2 "
            "options:remote_ip=240.0.0.1\n") in spoke
    assert spoke.count("ovs-vsctl") == 1  # bridge and port in one transaction: one wait for ovs-vswitchd


def test_hub_push_scripts_add_and_remove_the_same_port_and_conn() -> None:
    spec = parse_lab()
    hub_side = payload.hub_side(spec, spoke_tunnel(spec, spec.plan.spokes[0]))
    up, down = hub_side.up_script, hub_side.down_script
    assert f"add-port {names.BRIDGE} gre-spoke1" in up and "options:key=1" in up
    assert f"ipsec addconn --config {names.IPSEC_CONF} hub-spoke1\n" in up
    assert f"del-port {names.BRIDGE} gre-spoke1" in down and "ipsec whack --delete --name hub-spoke1" in down
    assert names.conn_secrets_path("hub-spoke1") in down
    for script in (up, down):
        subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_network_config_static_wan_and_dhcp_management() -> None:
    spec = parse_lab()
    seed = spoke_payload(spec, spec.plan.spokes[0])
    data = yaml.safe_load(seed.network_config)
    wan, mgmt = data["ethernets"][names.WAN_INTERFACE], data["ethernets"][names.MGMT_INTERFACE]
    assert wan["addresses"] == ["192.168.2.10/24"] and wan["routes"][0]["via"] == "192.168.2.1"
    assert wan["match"]["macaddress"] == seed.wan_mac and wan["mtu"] == 1500
    assert mgmt["match"]["macaddress"] == seed.mgmt_mac
    assert mgmt["dhcp4"] is True and mgmt["dhcp4-overrides"]["use-routes"] is False


def test_macs_are_stable_and_distinct() -> None:
    plan = parse_lab(spokes=250).plan
    nics = (names.WAN_NIC, names.MGMT_NIC)
    macs = [names.mac_address("ci", site.site_index, nic) for site in plan.sites for nic in nics]
    assert len(set(macs)) == len(macs)
    assert names.mac_address("ci", plan.hub.site_index, 0) == names.mac_address("ci", plan.hub.site_index, 0)


def test_a_spoke_of_the_other_mode_keeps_the_hubs_interface_at_the_hub_end() -> None:
    """Hub default XFRM, spoke2 VTI: spoke2's own end and device are VTI; the hub serves it, like
    every spoke, through its XFRM interface (one kind per hub: see lablib.tunnel.spoke_tunnel)."""
    spec = parse_lab(interfaceMode="xfrm", vtiSpokes=[2])
    one, two = (spoke_tunnel(spec, spoke) for spoke in spec.plan.spokes)
    assert (one.spoke_end.interface_name, two.spoke_end.interface_name) == ("ipsec20", names.VTI_INTERFACE)
    assert one.hub_end.interface_name == two.hub_end.interface_name == "ipsec20"
    assert conn_options(render.render_conn(two.spoke_end))["vti-interface"] == names.VTI_INTERFACE
    assert conn_options(render.render_conn(two.hub_end))["ipsec-interface"] == "20"
    hub = payload.lab_network_script(spec, spec.plan.hub, None)
    assert "type xfrm dev wan0 if_id 20" in hub and "vti" not in hub
    spoke = payload.lab_network_script(spec, spec.plan.spokes[1], two)
    assert "mode vti local 192.168.3.10 remote 192.168.1.10" in spoke and "xfrm" not in spoke


def run_check(script: str, tmp_path: Path, ports: dict[str, dict[str, str]], conns: str,
              mtus: dict[str, int]) -> subprocess.CompletedProcess[str]:
    """The check script against stubbed ipsec, ovs-vsctl and MTUs (ports: name -> column -> value)."""
    stubs = {
        "ipsec": f"printf '%s\\n' '{conns}'",
        # port-to-br PORT, or get interface PORT COLUMN
        "ovs-vsctl": "python3 -c \"import json,sys; ports=json.loads(sys.argv[1]); a=sys.argv[2:]\n"
                     "if a[0]=='port-to-br' and a[1] in ports: print('br0')\n"
                     "elif a[0]=='get' and a[3] in ports.get(a[2], {}): print(ports[a[2]][a[3]])\n"
                     f"else: sys.exit(1)\" '{json.dumps(ports)}' \"$@\"",
        "cat": "case $1 in " + " ".join(f"/sys/class/net/{d}/mtu) echo {m};;" for d, m in mtus.items())
               + " *) exit 1;; esac",
    }
    for name, body in stubs.items():
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    return subprocess.run(["sh", "-s"], input=script, text=True, capture_output=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})


def test_the_hub_check_script_passes_on_what_the_up_script_does_and_names_each_difference(tmp_path: Path) -> None:
    spec = parse_lab()
    tunnel = spoke_tunnel(spec, spec.plan.spokes[0])
    side, port, device = payload.hub_side(spec, tunnel), tunnel.hub_port, tunnel.hub_end.interface_name
    subprocess.run(["sh", "-n"], input=side.check_script, text=True, check=True)
    assert f"mtu {spec.mtu.tunnel_mtu}" in side.up_script and f"mtu_request={spec.mtu.inner_mtu}" in side.up_script
    gre = {"type": "gre", "options:local_ip": f'"{port.local_ip}"', "options:remote_ip": f'"{port.remote_ip}"',
           "options:key": f'"{port.key}"'}
    healthy = {"ports": {port.name: gre},
               "conns": f'"hub-spoke1": 192.0.2.1[@hub]...%any[@spoke1]\n"{names.LANDING_CONN}": 192.0.2.1[@hub]...',
               "mtus": {device: spec.mtu.tunnel_mtu, names.BRIDGE: spec.mtu.inner_mtu}}
    ok = run_check(side.check_script, tmp_path, **healthy)
    assert (ok.returncode, ok.stdout) == (0, ""), ok.stderr
    broken = run_check(side.check_script, tmp_path, ports={}, conns='"hub-spoke10": ...',
                       mtus={device: 1500, names.BRIDGE: spec.mtu.inner_mtu})
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        "conn hub-spoke1 not loaded", f"conn {names.LANDING_CONN} not loaded", f"GRE port {port.name} not on {names.BRIDGE}",
        f"{port.name} is not a GRE port", f"{port.name} local_ip is not {port.local_ip}",
        f"{port.name} remote_ip is not {port.remote_ip}", f"{port.name} key is not {port.key}",
        f"{device} MTU is not {spec.mtu.tunnel_mtu}"]


def test_retransmit_timeout_is_written_only_when_not_libreswans_own() -> None:
    """A stack without lab:retransmitTimeout keeps the conns and props it had (libreswan's 60 s)."""
    for timeout, line in ((60, None), (30, "\tretransmit-timeout=30s\n")):
        spec = parse_lab(retransmitTimeout=timeout)
        tunnel = spoke_tunnel(spec, spec.plan.spokes[0])
        for end in (tunnel.hub_end, tunnel.spoke_end):
            conf = render.render_conn(end)
            assert (line in conf) if line else "retransmit-timeout" not in conf
            assert end.as_props().get("retransmitTimeout") == (timeout if line else None)


def test_a_lab_without_certificates_gets_the_landing_conn_and_one_with_them_none() -> None:
    """lablib/tunnel.py: Landing (tests/test_pluto_landing.py proves its part in real plutos)."""
    for spec, landing in ((parse_lab(), True), (parse_lab(auth="cert"), False)):
        side = payload.hub_side(spec, spoke_tunnel(spec, spec.plan.spokes[0]))
        subprocess.run(["sh", "-n"], input=side.up_script, text=True, check=True)
        assert (f"conn {names.LANDING_CONN}\n" in side.up_script) == landing
        assert (f"\trightid={names.LANDING_ID}\n" in side.up_script) == landing
        assert (names.LANDING_CONN in side.check_script) == landing
        assert names.LANDING_CONF_PATH not in [f["path"] for f in side.files(None if not landing else "k")]
