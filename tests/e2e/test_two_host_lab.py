"""The lab on two simulated hypervisors (scripts/hosts.sh), from stacks/two-hosts.example.yaml.

Hub and spoke2 (routed) on host a, spoke1 (behind NAT) on host b; Pulumi and the
lab's commands run in the controller's namespace and reach both hosts over
qemu+ssh and SSH only (the hosts see nothing of the controller's cache). The
lab is proven with `labctl verify`, grown to spoke3 on b with nothing replaced,
and destroyed with nothing left on either host. Needs root; nothing is skipped.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lablib import names
from lablib.config import parse_config
from lablib.hosts import routes
from labctl import stack as stacks
from tests.e2e.simhosts import hosts, running_hosts
from tools.mockrun import mock_secrets, stack_values

ROOT = names.PROJECT_DIR
STACK = "twohosts"
EXAMPLE = ROOT / "stacks" / "two-hosts.example.yaml"
FIGURES = names.E2E_FIGURES
LABCTL_TIMEOUT = 1200
pytestmark = pytest.mark.timeout(1800)


def labctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The lab's command-line program, run where Pulumi runs: the controller's namespace."""
    print(f"$ labctl {' '.join(args)}", flush=True)
    result = subprocess.run(["ip", "netns", "exec", env["HOSTS_CONTROLLER_NS"], str(ROOT / "venv" / "bin" / "python"),
                             "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True, timeout=LABCTL_TIMEOUT)
    print(result.stdout[-5000:], result.stderr[-3000:], sep="\n", flush=True)
    return result


def stack_file(env: dict[str, str], directory: Path) -> tuple[Path, dict[str, object]]:
    """The example stack (domainType qemu: it runs anywhere) with the simulated hosts' URIs (their keys
    and known_hosts in .lab/hosts)."""
    document = yaml.safe_load(EXAMPLE.read_text())
    config = document["config"]
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


def record(figures: dict[str, object]) -> None:
    """Beside the one-host figures of the same run (each module merges its own into the file)."""
    everything = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    everything["two_hosts"] = figures
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(everything, indent=2))
    print("two-host figures:", json.dumps(figures), flush=True)


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
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, object], Path]]:
    figures: dict[str, object] = {}
    forget_stale_stack()
    with running_hosts() as env:
        path, config = stack_file(env, tmp_path_factory.mktemp("twohosts"))
        figures["routes"] = route_between_hosts(config, spokes=3)
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
            record(figures)
            left = leftovers()
            if not failed:  # after a failed up, its own error is the one to read
                assert down.returncode == 0 and left == [], left or down.stderr[-3000:]
            forget_stale_stack()


def test_each_site_runs_on_its_host(lab: tuple[dict[str, str], dict[str, object], Path]) -> None:
    env, _, _ = lab
    assert sorted(domains("a")) == [names.domain_name(STACK, "hub"), names.domain_name(STACK, "spoke2")]
    assert sorted(domains("b")) == [names.domain_name(STACK, "spoke1")]
    # Host b booted from volumes uploaded over libvirt: its view of the cache is an empty tmpfs.
    assert on_host("b", "ls", "-A", str(names.CACHE_DIR)).split() == []
    volumes = on_host("b", "virsh", "-q", "vol-list", names.stack_prefix(STACK))
    assert names.base_volume_name(STACK) in volumes and names.kernel_volume_name(STACK) in volumes


def test_verify_passes_on_two_hosts(lab: tuple[dict[str, str], dict[str, object], Path]) -> None:
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
    figures["verify_seconds"] = seconds


def test_growing_to_three_spokes_puts_spoke3_on_b_and_replaces_nothing(
        lab: tuple[dict[str, str], dict[str, object], Path]) -> None:
    env, figures, path = lab
    before = {host: domains(host) for host in ("a", "b")}
    assert labctl(env, "stack-config", STACK, "--from", str(path), "--set", "spokes=3").returncode == 0
    start = time.monotonic()
    result = labctl(env, "up", STACK)
    assert result.returncode == 0, "growing to three spokes failed"
    figures["add_spoke_to_tunnel_seconds"] = round(time.monotonic() - start)
    changes = up_changes(result)
    assert not set(changes) - {"create", "same", "update"}, changes  # nothing replaced or deleted
    # Only what spoke3 adds, and the two components whose props list the spokes (their props change);
    # the engine also steps the dynamic resources' default provider, which is no resource of the lab.
    changed = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("  changed: ")
               and not line.endswith(" default")]
    assert sorted(step[0] for step in changed if step[0] != "create") == ["update", "update"], changed
    assert {tuple(step[1:]) for step in changed if step[0] == "update"} == {
        ("lab:index:Lab", "lab"), ("lab:index:LabNetworks", "lab-networks")}, changed
    assert all(step[2].startswith(("lab-spoke3", "lab-networks-wan-spoke3")) for step in changed
               if step[0] == "create"), changed
    after = {host: domains(host) for host in ("a", "b")}
    assert after["a"] == before["a"]
    spoke3 = names.domain_name(STACK, "spoke3")
    assert spoke3 in after["b"] and after["b"] == {**before["b"], spoke3: after["b"][spoke3]}
    assert "spoke3: tunnel to hub established" in result.stdout
