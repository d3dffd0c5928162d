"""End to end: the real Pulumi engine brings the `ci` stack up in a real libvirt
daemon (inside this run's network namespace) and traffic crosses the tunnels.

The tests run in order on one lab, once per interface mode (XFRM, then VTI);
the module fixture destroys it at the end
whatever happened. On failure each check prints the VMs' console tails and
IPsec/OVS state. Needs `make deps` (toolchain, image) and must run inside the
namespace (`make test` does both); it fails loudly otherwise, never skips.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from lablib.keys import derive_psk
from tools.probe import Node, cloud_init_done, diagnostics, established_conns, esp_bytes, virsh, wait_until

ROOT = Path(__file__).resolve().parents[2]
STACK = "ci"
PREFIX = f"lab-{STACK}"
FIGURES = ROOT / ".lab" / "e2e-figures.json"
TUNNEL_TIMEOUT = 1500
figures: dict[str, object] = {}


def pulumi(*args: str, check: bool = True, echo: bool = True) -> subprocess.CompletedProcess[str]:
    """Run pulumi on the ci stack, copying its output into the test log unless echo is off
    (it must be off for anything that prints a secret)."""
    print(f"$ pulumi {' '.join(args)}", flush=True)
    result = subprocess.run([str(ROOT / "scripts" / "pulumi.sh"), STACK, *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if echo:
        print(result.stdout[-6000:], flush=True)
    if check and result.returncode != 0:
        raise AssertionError(f"pulumi {' '.join(args)} exited {result.returncode}")
    return result


def labctl(*args: str) -> str:
    return subprocess.run([str(ROOT / "venv" / "bin" / "python"), str(ROOT / "tools" / "labctl.py"), *args],
                          check=True, capture_output=True, text=True).stdout


def nodes() -> dict[str, Node]:
    out = json.loads(pulumi("stack", "output", "nodes", "--json").stdout)
    key = ROOT / ".lab" / "ssh" / "id_ed25519"
    return {name: Node(name, info["mgmtAddress"], key) for name, info in out.items()}


def outputs() -> dict[str, object]:
    return json.loads(pulumi("stack", "output", "--json").stdout)


def explain(lab_nodes: dict[str, Node]) -> str:
    return "\n".join(diagnostics(node, f"{PREFIX}-{node.name}") for node in lab_nodes.values())


@dataclass
class Lab:
    mode: str  # the route-based interface: "xfrm" or "vti"
    nodes: dict[str, Node]
    figures: dict[str, object]


def configure(mode: str, spokes: int) -> None:
    labctl("stack-config", STACK, "--set", f"domainType={domain_type()}", "--set", f"spokes={spokes}",
           "--set", f"interfaceMode={mode}")


def domain_type() -> str:
    return subprocess.run([str(ROOT / "scripts" / "detect-domain-type.sh")], check=True,
                          capture_output=True, text=True).stdout.strip()


def wait_for_tunnels(lab_nodes: dict[str, Node]) -> float:
    start = time.monotonic()
    spokes = [n for name, n in lab_nodes.items() if name != "hub"]

    def up() -> bool:
        return all(n.reachable() and cloud_init_done(n) and f"{n.name}-hub" in established_conns(n)
                   for n in spokes)

    try:
        wait_until("all spoke tunnels", up, TUNNEL_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"tunnels not up after {TUNNEL_TIMEOUT} s\n{explain(lab_nodes)}")
    return time.monotonic() - start


def boot_to_final_seconds(node: Node) -> float:
    """Seconds from kernel start to cloud-init's final stage finishing, read in the guest."""
    out = node.run("python3 -c \"import json,time;"
                   "s=json.load(open('/var/lib/cloud/data/status.json'))['v1'];"
                   "up=float(open('/proc/uptime').read().split()[0]);"
                   "print(s['modules-final']['finished']-(time.time()-up))\"")
    return float(out.strip())


@pytest.fixture(scope="module", params=["xfrm", "vti"])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The ci lab, once per route-based interface mode (XFRM interface, then shared VTI)."""
    mode: str = request.param
    assert os.geteuid() == 0, "the end-to-end test needs root (libvirt, network namespace)"
    assert subprocess.run(["virsh", "version"], capture_output=True).returncode == 0, \
        "no libvirt daemon: run inside `scripts/labns.sh exec` (make test does)"
    configure(mode, spokes=2)
    lab_figures: dict[str, object] = figures.setdefault(mode, {})
    start = time.monotonic()
    try:
        pulumi("up", "--yes", "--skip-preview")
        lab_figures["pulumi_up_seconds"] = round(time.monotonic() - start)
        lab_nodes = nodes()
        lab_figures["tunnels_up_after_up_seconds"] = round(wait_for_tunnels(lab_nodes))
        lab_figures["up_to_all_tunnels_seconds"] = round(time.monotonic() - start)
        yield Lab(mode, lab_nodes, lab_figures)
    finally:
        pulumi("destroy", "--yes", "--skip-preview", check=False)
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(figures, indent=2))
        print("figures:", json.dumps(figures), flush=True)


def test_every_vm_ran_cloud_init(lab: Lab) -> None:
    for node in lab.nodes.values():
        status = node.run("cloud-init status --long", check=False)
        assert "status: done" in status, f"{node.name}: {status}\n{explain(lab.nodes)}"
    lab.figures["boot_to_cloud_init_final_seconds"] = {n.name: round(boot_to_final_seconds(n)) for n in lab.nodes.values()}


def test_ike_and_child_sas_up_over_nat_t(lab: Lab) -> None:
    wan = {name: info["wanAddress"] for name, info in outputs()["nodes"].items()}
    behind_nat = {name: info["behindNat"] for name, info in outputs()["nodes"].items()}
    for name in ("spoke1", "spoke2"):
        spoke = lab.nodes[name]
        assert f"{name}-hub" in established_conns(spoke), explain(lab.nodes)
        assert "established IKE SA" in spoke.run("ipsec status") or "IKE SA established" in spoke.run(
            "ipsec status"), explain(lab.nodes)
        xfrm = spoke.run("ip xfrm state")
        assert "encap type espinudp sport 4500 dport 4500" in xfrm, f"{name}: no NAT-T\n{xfrm}"
        # The hub sees a NATed spoke from the masquerade address, a routed one from its own.
        hub_states = lab.nodes["hub"].run("ip xfrm state")
        assert (wan[name] in hub_states) != behind_nat[name], f"{name} behindNat={behind_nat[name]}:\n{hub_states}"


def test_tunnel_interface_mtu_and_gre_ports(lab: Lab) -> None:
    out = outputs()
    device = out["nodes"]["hub"]["tunnelInterface"]
    for node in lab.nodes.values():
        link = node.run(f"ip -o link show {device}")
        assert f" mtu {out['tunnelMtu']} " in link, f"{node.name}: {link}"
        br0 = node.run("ip -o link show br0")
        assert f" mtu {out['innerMtu']} " in br0, f"{node.name}: {br0}"
        ports = set(node.run("ovs-vsctl list-ports br0").split())
        expected = {"gre-spoke1", "gre-spoke2"} if node.name == "hub" else {"gre-hub"}
        assert ports == expected, f"{node.name}: {ports}"


def ping(node: Node, address: str, size: int | None = None, count: int = 3) -> bool:
    options = f"-M do -s {size - 28}" if size else ""
    out = node.run(f"ping -c {count} -W 2 {options} {address}", check=False)
    return f"{count} received" in out or f" {count} packets received" in out


def test_overlay_pings_hub_to_spoke_and_spoke_to_spoke(lab: Lab) -> None:
    bridge = {name: info["bridgeAddress"].split("/")[0] for name, info in outputs()["nodes"].items()}
    before = esp_bytes(lab.nodes["spoke1"], "spoke1-hub")
    assert ping(lab.nodes["hub"], bridge["spoke1"]), explain(lab.nodes)
    assert ping(lab.nodes["hub"], bridge["spoke2"]), explain(lab.nodes)
    assert ping(lab.nodes["spoke1"], bridge["spoke2"]), explain(lab.nodes)  # through the hub's bridge
    assert ping(lab.nodes["spoke2"], bridge["spoke1"]), explain(lab.nodes)
    after = esp_bytes(lab.nodes["spoke1"], "spoke1-hub")
    assert after[0] > before[0] and after[1] > before[1], f"ESP counters did not rise: {before} -> {after}"


def test_dont_fragment_ping_of_exactly_the_inner_mtu(lab: Lab) -> None:
    inner = outputs()["innerMtu"]
    hub_bridge = outputs()["nodes"]["hub"]["bridgeAddress"].split("/")[0]
    for name in ("spoke1", "spoke2"):
        assert ping(lab.nodes[name], hub_bridge, size=inner), f"{name}: DF ping of {inner} bytes failed\n{explain(lab.nodes)}"
        assert not ping(lab.nodes[name], hub_bridge, size=inner + 1, count=1), f"{name}: {inner + 1} bytes passed"


def test_no_key_in_plain_text_in_state_or_outputs(lab: Lab) -> None:
    master = pulumi("config", "get", "lab:masterSecret", echo=False).stdout.strip()
    keys = [derive_psk(master, "@hub", f"@{name}") for name in lab.nodes if name != "hub"]
    private_key_line = (ROOT / ".lab" / "ssh" / "id_ed25519").read_text().splitlines()[1]
    exposed = pulumi("stack", "export", echo=False).stdout + pulumi("stack", "output", "--json", echo=False).stdout
    exposed += "".join(p.read_text(errors="replace") for p in (ROOT / ".lab" / "state").rglob("*.json"))
    leaked = [i for i, secret in enumerate((*keys, master, private_key_line)) if secret in exposed]
    assert not leaked, f"secrets number {leaked} appear in plain text"  # never print a secret itself


def test_second_preview_shows_no_changes(lab: Lab) -> None:
    result = pulumi("preview", "--expect-no-changes", check=False)
    assert result.returncode == 0, "second preview shows changes"


def boot_ids(lab_nodes: dict[str, Node]) -> dict[str, str]:
    return {name: node.run("cat /proc/sys/kernel/random/boot_id").strip() for name, node in lab_nodes.items()}


def domain_uuids() -> dict[str, str]:
    names = [n for n in virsh("list", "--all", "--name").split() if n.startswith(PREFIX)]
    return {name: virsh("domuuid", name).strip() for name in names}


def test_adding_a_spoke_touches_nothing_else_and_removing_it_cleans_the_hub(lab: Lab) -> None:
    before_boot, before_uuid = boot_ids(lab.nodes), domain_uuids()
    configure(lab.mode, spokes=3)
    start = time.monotonic()
    result = pulumi("up", "--yes", "--skip-preview")
    assert "replace" not in result.stdout.split("Resources:")[-1], result.stdout[-3000:]
    grown = nodes()
    lab.figures["add_spoke_to_tunnel_seconds"] = round(wait_for_tunnels(grown) + time.monotonic() - start)
    assert boot_ids({k: grown[k] for k in before_boot}) == before_boot, "an existing VM rebooted"
    assert {k: v for k, v in domain_uuids().items() if k in before_uuid} == before_uuid, "a domain was replaced"
    assert {"gre-spoke1", "gre-spoke2", "gre-spoke3"} == set(grown["hub"].run("ovs-vsctl list-ports br0").split())
    for name in ("spoke1", "spoke2", "spoke3"):
        assert f"{name}-hub" in established_conns(grown[name]), explain(grown)
    lab.figures["disk_mib"] = disk_usage()

    configure(lab.mode, spokes=2)
    pulumi("up", "--yes", "--skip-preview")
    hub = grown["hub"]
    assert "gre-spoke3" not in hub.run("ovs-vsctl list-ports br0")
    assert hub.run("ls /etc/ipsec.d/").count("hub-spoke3") == 0
    assert "hub-spoke3" not in hub.run("ipsec status", check=False)
    assert f"{PREFIX}-spoke3" not in virsh("list", "--all", "--name")
    assert boot_ids(lab.nodes) == before_boot
    for name in ("spoke1", "spoke2"):
        assert f"{name}-hub" in established_conns(lab.nodes[name]), explain(lab.nodes)


def disk_usage() -> dict[str, float]:
    """MiB actually used by the base image and each VM's linked clone."""
    pool = Path(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["poolPath"]["default"]) / PREFIX
    usage = {}
    for path in sorted(pool.glob("*.qcow2")):
        kib = subprocess.run(["du", "-k", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
        usage[path.name] = round(int(kib) / 1024, 1)
    return usage


def test_destroy_leaves_nothing_in_libvirt(lab: Lab) -> None:
    pulumi("destroy", "--yes", "--skip-preview")
    leftovers = [line for command in (("list", "--all", "--name"), ("net-list", "--all", "--name"),
                                      ("pool-list", "--all", "--name"))
                 for line in virsh(*command).split() if line.startswith(PREFIX)]
    assert not leftovers
    volumes = list((Path("/var/lib/libvirt/lab") / PREFIX).glob("*"))
    assert not volumes, volumes
