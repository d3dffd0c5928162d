"""The lab on two simulated hypervisors (scripts/hosts.sh), from stacks/two-hosts.example.yaml.

Hub and spoke2 (routed) on host a, spoke1 (behind NAT) on host b; Pulumi and the
lab's commands run in the controller's namespace and reach both hosts over
qemu+ssh and SSH only (the hosts see nothing of the controller's cache). Made a
certificate lab here (the example's sites with `auth: cert`, spoke1 keeping a
pre-shared key): its hub is the libreswan 4.10 one with certificates, which the
one-host lab (5.x hub) does not prove. Its hub boots with cloud-init (Debian 12's 22.4), its
spokes with the image's lab-seed: the stock path, which any image without lab-seed takes, stays
proven end to end (the hub push waits for cloud-init's final stage). The lab is proven with `labctl verify`,
grown to spoke3 on b with nothing replaced, spoke3 rebuilt (`labctl rebuild`),
spoke4 added through killed runs and removed (`labctl drill interrupt`, whose
last run gives this run's T1), spoke3 removed with its certificate revoked, and
destroyed with nothing left on either host. It runs beside the one-host lab
(make test). Needs root; nothing is skipped.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from lablib import names
from lablib.boot import with_cloud_init
from lablib.config import parse_config
from lablib.hosts import routes
from labctl import stack as stacks
from tests.e2e.figures import record
from tests.e2e.simhosts import hosts, running_hosts
from tools.bench_guest import domain_started
from tools.mockrun import mock_secrets, stack_values

ROOT = names.PROJECT_DIR
PYTHON = str(ROOT / "venv" / "bin" / "python")
STACK = "twohosts"
EXAMPLE = ROOT / "stacks" / "two-hosts.example.yaml"
LABCTL_TIMEOUT = 1200
DRILL_TIMEOUT = 2400  # drill interrupt: four `labctl up` runs, spoke4's boot, verify, its removal
pytestmark = pytest.mark.timeout(1800)
Lab = tuple[dict[str, str], dict[str, object], Path]


def labctl(env: dict[str, str], *args: str, timeout: int = LABCTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """The lab's command-line program, run where Pulumi runs: the controller's namespace."""
    print(f"$ labctl {' '.join(args)}", flush=True)
    result = subprocess.run(["ip", "netns", "exec", env["HOSTS_CONTROLLER_NS"], PYTHON, "-m", "labctl", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    print(result.stdout[-5000:], result.stderr[-3000:], sep="\n", flush=True)
    return result


def on_node(env: dict[str, str], site: str, command: str) -> str:
    """A command on a lab node over the lab's own SSH, from the controller's namespace (the only one that
    reaches the hosts' management networks)."""
    code = f"from labctl import stack; print(stack.load({STACK!r}).node({site!r}).run({command!r}), end='')"
    result = subprocess.run(["ip", "netns", "exec", env["HOSTS_CONTROLLER_NS"], PYTHON, "-c", code], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{site}: {command}: {result.stderr[-2000:]}"
    return result.stdout


def stack_file(env: dict[str, str], directory: Path) -> tuple[Path, dict[str, object]]:
    """The example stack (domainType qemu: it runs anywhere) with the simulated hosts' URIs (their keys
    and known_hosts in .lab/hosts), made a certificate lab (ECDSA P-256, the default key) whose spoke1
    keeps a pre-shared key: a mixed-auth lab on libreswan 4.10. The hub boots the same files with
    cloud-init (its command line without names.CLOUD_INIT_OFF)."""
    document = yaml.safe_load(EXAMPLE.read_text())
    config = document["config"]
    config.update({"lab:auth": "cert", "lab:pskSpokes": [1]})
    config.update({"lab:hubImage": config["lab:image"], "lab:hubKernel": config["lab:kernel"],
                   "lab:hubInitrd": config["lab:initrd"],
                   "lab:hubKernelCmdline": with_cloud_init(config["lab:kernelCmdline"])})
    for host in config["lab:hosts"]:
        host["uri"] = env[f"HOST_{host['name'].upper()}_URI"]
        assert host["uplink"] == env[f"HOST_{host['name'].upper()}_UPLINK"]
    path = directory / "Pulumi.twohosts.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path, config


def route_between_hosts(config: dict[str, object], spokes: int) -> dict[str, list[tuple[str, str]]]:
    """What the README's host checklist asks of the hosts' own network, added to each simulated host."""
    values = {key.split(":", 1)[1]: value for key, value in config.items() if key != "lab:sshPublicKey"}
    spec = parse_config(stack_values({**values, "spokes": spokes}, secrets=False), mock_secrets())
    needed = routes(spec.plan, spec.hosts)
    for host, pairs in needed.items():
        for to, via in pairs:
            hosts("exec", host, "ip", "route", "replace", to, "via", via)
    return needed


def on_host(host: str, *command: str) -> str:
    return hosts("exec", host, *command).stdout


def domains(host: str) -> dict[str, str]:
    """Domain name -> UUID of every domain defined on a simulated host."""
    found = {}
    for name in on_host(host, "virsh", "-q", "list", "--all", "--name").split():
        found[name] = on_host(host, "virsh", "domuuid", name).strip()
    return found


def up_changes(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    found = re.search(r"pulumi up: succeeded, (\{.*\})", result.stdout)
    assert found, result.stdout[-3000:]
    return yaml.safe_load(found.group(1))


def leftovers() -> list[str]:
    """Whatever the stack left on either host: domains, networks, pools, volume files."""
    found = []
    for host in ("a", "b"):
        found += [f"{host}: domain {d}" for d in domains(host)]
        for kind in ("net", "pool"):
            found += [f"{host}: {kind} {n}" for n in on_host(host, "virsh", "-q", f"{kind}-list", "--all",
                                                               "--name").split()]
        files = on_host(host, "find", "/var/lib/libvirt", "-type", "f", "-name", f"{names.stack_prefix(STACK)}*")
        found += [f"{host}: file {f}" for f in files.split()]
    return found


def forget_stale_stack() -> None:
    """A stack left by a killed run names resources of hosts that are gone (each start makes new ones)."""
    if (names.RUN_PROJECT_DIR / f"Pulumi.{STACK}.yaml").exists():
        stacks.open_stack(STACK).workspace.remove_stack(STACK, force=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    figures: dict[str, object] = {}
    forget_stale_stack()
    with running_hosts() as env:
        path, config = stack_file(env, tmp_path_factory.mktemp("twohosts"))
        figures["routes"] = route_between_hosts(config, spokes=4)
        assert labctl(env, "stack-config", STACK, "--from", str(path)).returncode == 0
        failed = True
        try:
            start = time.monotonic()
            result = labctl(env, "up", STACK)
            assert result.returncode == 0, "labctl up failed on two hosts"
            figures["up_to_all_tunnels_seconds"] = round(time.monotonic() - start)
            failed = False
            yield env, figures, path
        finally:
            down = labctl(env, "down", STACK)
            record("two_hosts", figures)
            left = leftovers()
            if not failed:  # after a failed up, its own error is the one to read
                assert down.returncode == 0 and left == [], left or down.stderr[-3000:]
            forget_stale_stack()


def test_each_site_runs_on_its_host(lab: Lab) -> None:
    env, _, _ = lab
    assert sorted(domains("a")) == [names.domain_name(STACK, "hub"), names.domain_name(STACK, "spoke2")]
    assert sorted(domains("b")) == [names.domain_name(STACK, "spoke1")]
    # Host b booted from volumes uploaded over libvirt: its view of the cache is an empty tmpfs.
    assert on_host("b", "ls", "-A", str(names.CACHE_DIR)).split() == []
    volumes = on_host("b", "virsh", "-q", "vol-list", names.stack_prefix(STACK))
    assert names.base_volume_name(STACK) in volumes and names.kernel_volume_name(STACK) in volumes


def test_the_hub_ran_cloud_init_and_the_spokes_lab_seed(lab: Lab) -> None:
    env, _, _ = lab
    for site in (names.HUB, "spoke1", "spoke2"):
        found = on_node(env, site, f"cloud-init status; cat {names.SEED_STATUS} 2>/dev/null || echo none")
        lines = [line.strip() for line in found.splitlines() if line.strip()]
        expected = ["status: done", "none"] if site == names.HUB else ["status: disabled", "status: done"]
        assert lines == expected, f"{site}: {found}"


def test_verify_passes_on_two_hosts(lab: Lab) -> None:
    """Every check of the one-host lab; the hub sees spoke1 from host b's uplink."""
    env, figures, _ = lab
    start = time.monotonic()
    result = labctl(env, "verify", STACK, "--json")
    seconds = round(time.monotonic() - start)  # the sites' checks overlap: their own times add up to more
    report = json.loads(result.stdout)
    failed = [c for c in report["checks"] if not c["passed"]]
    assert result.returncode == 0 and report["passed"] and not failed, failed
    seen = {c["node"]: c["evidence"] for c in report["checks"] if c["check"] == "hub-sees"}
    assert seen["spoke1"].startswith(f"hub sees {env['HOST_B_UPLINK']},"), seen
    assert {c["node"] for c in report["checks"] if c["check"] == "esp-on-wire"} == {"spoke1", "spoke2"}
    # The 4.10 hub authenticates spoke2 by its certificate and spoke1 by its pre-shared key.
    assert {c["node"] for c in report["checks"] if c["check"] == "certificate"} == {"hub", "spoke2"}
    figures["verify_seconds"] = seconds


def test_growing_to_three_spokes_puts_spoke3_on_b_and_replaces_nothing(lab: Lab) -> None:
    env, figures, path = lab
    before = {host: domains(host) for host in ("a", "b")}
    assert labctl(env, "stack-config", STACK, "--from", str(path), "--set", "spokes=3").returncode == 0
    start = time.monotonic()
    result = labctl(env, "up", STACK)
    assert result.returncode == 0, "growing to three spokes failed"
    figures["add_spoke_to_tunnel_seconds"] = round(time.monotonic() - start)
    changes = up_changes(result)
    assert not set(changes) - {"create", "same", "update"}, changes  # nothing replaced or deleted
    # Only what spoke3 adds (its certificate too), the two components whose props list the spokes (their
    # props change) and the CRL, whose list of issued certificates grows (it keeps its signed list, so
    # nothing is pushed to the hub); the engine also steps the dynamic resources' default provider,
    # which is no resource of the lab.
    changed = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("  changed: ")
               and not line.endswith(" default")]
    assert sorted(tuple(step) for step in changed if step[0] != "create") == [
        ("update", "lab:index:Lab", "lab"), ("update", "lab:index:LabNetworks", "lab-networks"),
        ("update", "pulumi-python:dynamic:Resource", "lab-pki-crl")], changed
    assert all(step[2].startswith(("lab-spoke3", "lab-networks-wan-spoke3", "lab-pki-spoke3-cert"))
               for step in changed if step[0] == "create"), changed
    after = {host: domains(host) for host in ("a", "b")}
    assert after["a"] == before["a"]
    spoke3 = names.domain_name(STACK, "spoke3")
    assert spoke3 in after["b"] and after["b"] == {**before["b"], spoke3: after["b"][spoke3]}
    assert "spoke3: tunnel to hub established" in result.stdout


def started(host: str) -> dict[str, float]:
    """Domain name -> when libvirt last started it, from the host's qemu logs as this machine sees them."""
    return {name: domain_started(name, qemu_logs(host)) for name in domains(host)}


def qemu_logs(host: str) -> Path:
    """A simulated host's /var/log/libvirt/qemu, where scripts/hosts.sh keeps it on this machine."""
    return names.STATE_DIR / "hosts" / host / "var-log-libvirt" / Path(names.QEMU_LOG_DIR).name


def test_rebuilding_spoke3_makes_only_its_domain_anew(lab: Lab) -> None:
    """`labctl rebuild`, the one command for drift inside a spoke: spoke3 boots from a new disk, seed and
    domain on host b (each deleted before it is made anew); no other domain changes or restarts."""
    env, figures, _ = lab
    spoke3 = names.domain_name(STACK, "spoke3")
    before = {host: (domains(host), started(host)) for host in ("a", "b")}
    start = time.monotonic()
    result = labctl(env, "rebuild", STACK, "spoke3")
    assert result.returncode == 0, "labctl rebuild failed"
    figures["rebuild_spoke_to_tunnel_seconds"] = round(time.monotonic() - start)
    after = {host: (domains(host), started(host)) for host in ("a", "b")}
    assert after["a"] == before["a"]
    assert after["b"][0][spoke3] != before["b"][0][spoke3], "spoke3's domain was not made anew"
    assert {k: v for k, v in after["b"][0].items() if k != spoke3} == {
        k: v for k, v in before["b"][0].items() if k != spoke3}
    assert {k: v for k, v in after["b"][1].items() if k != spoke3} == {
        k: v for k, v in before["b"][1].items() if k != spoke3}, "another domain on b restarted"
    assert labctl(env, "verify", STACK, "--node", "spoke3").returncode == 0


@pytest.mark.timeout(DRILL_TIMEOUT + 300)
def test_drill_interrupt_adds_spoke4_through_killed_runs_and_removes_it(lab: Lab) -> None:
    """`labctl drill interrupt`: spoke4 added by `labctl up` runs killed, whole process group, at its
    seed upload, its domain create and the hub push, on a remote host; each next run recovers by
    itself and the last one ends with every tunnel up (the drill's own checks: nothing pending, libvirt
    on both hosts and the state alike, the hub's conns and ports, verify), then spoke4 is removed.
    No other domain is made anew or restarted (libvirt's start times; a reboot inside a guest would
    not show). spoke4's last boot, the only one in this lab then (the one-host lab's run goes on
    beside it), gives this run's T1 as `make bench` takes it: from its domain's start to its tunnel."""
    env, figures, _ = lab
    before = {host: (domains(host), started(host)) for host in ("a", "b")}
    result = labctl(env, "drill", "interrupt", STACK, "--json", timeout=DRILL_TIMEOUT)
    report = json.loads(result.stdout)
    figures["interrupt"] = report["figures"]
    assert result.returncode == 0 and report["passed"], "\n".join(report["lines"])
    spoke4 = names.domain_name(STACK, "spoke4")
    (logs,) = [qemu_logs(host) for host in ("a", "b") if (qemu_logs(host) / f"{spoke4}.log").exists()]
    figures["t1_seconds"] = round(float(report["figures"]["tunnels_up_at"]) - domain_started(spoke4, logs), 1)
    figures["add_spoke_through_killed_runs_seconds"] = report["figures"]["total_seconds"]
    assert {host: (domains(host), started(host)) for host in ("a", "b")} == before, \
        "a domain was made anew or restarted, or spoke4 is left"


def test_removing_spoke3_revokes_its_certificate_and_cleans_the_hub(lab: Lab) -> None:
    """Back to two spokes: the CRL lists spoke3's certificate and the hub imported it (pushed with
    the removal); the hub has no conn, secrets or GRE port of spoke3 left; spoke1 and spoke2 keep
    their domains and tunnels."""
    env, figures, path = lab
    serial = stacks.load(STACK).certificate("spoke3")["serial"]  # type: ignore[index]
    before = {host: domains(host) for host in ("a", "b")}
    assert labctl(env, "stack-config", STACK, "--from", str(path), "--set", "spokes=2").returncode == 0
    start = time.monotonic()
    assert labctl(env, "up", STACK).returncode == 0, "removing spoke3 failed"
    figures["remove_spoke_seconds"] = round(time.monotonic() - start)
    assert serial in stacks.load(STACK).revoked_serials, "the CRL does not list spoke3's certificate"
    applied = x509.load_der_x509_crl(base64.b64decode(on_node(env, names.HUB, f"cat {names.PKI_CRL_APPLIED}")))
    assert int(serial, 16) in {entry.serial_number for entry in applied}, "the hub's CRL lacks spoke3"
    conn = names.conn_name(names.HUB, "spoke3")
    assert names.gre_port("spoke3") not in on_node(env, names.HUB, f"ovs-vsctl list-ports {names.BRIDGE}").split()
    assert conn not in on_node(env, names.HUB, f"ls {names.IPSEC_DIR}")
    assert conn not in on_node(env, names.HUB, "ipsec status")
    spoke3 = names.domain_name(STACK, "spoke3")
    assert domains("a") == before["a"] and domains("b") == {k: v for k, v in before["b"].items() if k != spoke3}
    assert labctl(env, "verify", STACK).returncode == 0
