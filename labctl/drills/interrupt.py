"""`drill interrupt`: `labctl up` killed, whole process group, at points of a change that adds a spoke.

The drill adds one spoke to the stack and runs `labctl up` as a user would, in
a session of its own. When the run starts one of the points below for the new
spoke, the drill kills the run's process group with SIGKILL (a crash, or a
closed terminal), then runs `labctl up` again; the last run is let finish.
Each later run must recover by itself (labctl/locks.py, labctl/pending.py). It
passes when the change ends with no operation pending, every libvirt object of
the stack in the state and every one in the state in libvirt, the hub holding
config for exactly the planned spokes, and `verify` passing. The CLI drill
then removes the spoke again; the end-to-end test goes on with it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from pulumi import automation as auto

from lablib import names
from lablib.hostssh import is_remote
from labctl import checks, host, pending
from labctl.drills import DrillReport, Echo, require_healthy, settle_seconds
from labctl.stack import LabStack, load, open_stack

# Where a run is killed: (what the point is, the new spoke's resource it starts, seconds after it starts,
# shorter than the step takes: the seed upload under a second, the domain one or two, the hub push more).
POINTS = (("seed upload", "cloudinit", 0.0), ("domain create", "domain", 0.3), ("hub push", "tunnel-hub-side", 1.0))
# The drill's runs do one operation at a time: with Pulumi's default the domain and the hub push start
# together, and one completes unseen while the run is killed at the other (then never killed at).
PARALLEL = 1
RUN_TIMEOUT = 1800  # one `labctl up` to the end: the new spoke's boot and its tunnel, under emulation
RECOVERY_MARKS = ("removed ", "cleared ", "ending ", "removed the lock")


@dataclass
class Run:
    """One `labctl up`: what it printed of its recovery, and the point it was killed at (None: it ended)."""

    recovery: list[str]
    killed_at: str | None
    seconds: float
    status: int


def resource_line(spoke: str, resource: str, event: str) -> str:
    """How labctl up's engine output shows a step of the spoke's resource (components/lab.py names it)."""
    return f"-{spoke}-{resource} {event}"


def labctl_up(stack: str, spoke: str, points: list[tuple[str, str, float]], echo: Echo) -> tuple[Run, list[str]]:
    """Run `labctl up` in a session of its own; kill its process group at the first of points it starts.
    Returns the run and the points it passed without being killed (created already)."""
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "labctl", "up", stack, "--parallel", str(PARALLEL)],
                               cwd=names.PROJECT_DIR,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(names.PROJECT_DIR)})
    recovery, passed, killed_at = [], [], None
    assert process.stdout is not None
    for line in process.stdout:
        if any(mark in line for mark in RECOVERY_MARKS):
            recovery.append(line.strip())
            echo(f"  up: {line.strip()}")
        for what, resource, delay in points:
            if resource_line(spoke, resource, "created") in line:
                passed.append(what)
            elif resource_line(spoke, resource, "creating") in line and killed_at is None:
                time.sleep(delay)
                os.killpg(process.pid, signal.SIGKILL)  # the whole group, as a closed terminal or a crash
                killed_at = what
                echo(f"  killed labctl up's process group at the {what}, {time.monotonic() - start:.0f} s in")
        if killed_at:
            break  # plugins outside the group may hold the pipe open until the next run ends them
    status = process.wait(timeout=RUN_TIMEOUT)
    return Run(recovery, killed_at, round(time.monotonic() - start, 1), status), passed


def libvirt_objects(stack: str, uri: str) -> set[tuple[str, str]]:
    """(kind, name) of every domain, network, pool and volume of the stack on one libvirt host."""
    on = uri if is_remote(uri) else ""
    prefix = names.stack_prefix(stack)

    def ours(name: str) -> bool:
        return name == prefix or name.startswith(prefix + "-")
    found = {(kind, name) for kind, command in (("domain", "list"), ("network", "net-list"), ("pool", "pool-list"))
             for name in host.virsh(command, "--all", "--name", on=on).split() if ours(name)}
    for _, pool in [item for item in found if item[0] == "pool"]:
        found |= {("volume", line.split()[0]) for line in host.virsh("vol-list", pool, on=on).splitlines()
                  if line.split()}
    return found


def state_objects(deployment: dict[str, object]) -> dict[str, set[tuple[str, str]]]:
    """URI -> (kind, name) of every libvirt object the state holds."""
    uris = pending.provider_uris(deployment)
    found: dict[str, set[tuple[str, str]]] = {}
    for resource in deployment.get("resources", []):  # type: ignore[union-attr]
        kind = pending.KINDS.get(resource.get("type", ""))
        if kind:
            uri = uris.get(resource.get("provider", ""), "")
            found.setdefault(uri, set()).add((kind, (resource.get("inputs") or {}).get("name")))
    return found


def check_state(stack: str, report: DrillReport) -> None:
    """No pending operation; libvirt and the state hold the same objects."""
    deployment = open_stack(stack).export_stack().deployment or {}
    left = pending.pending(deployment)
    if left:
        report.fail(f"operations still pending: {[op['resource']['urn'].rsplit('::', 1)[-1] for op in left]}")
    for uri, held in state_objects(deployment).items():
        there = libvirt_objects(stack, uri)
        if there - held:
            report.fail(f"in libvirt but not in the state (orphaned): {sorted(there - held)}")
        if held - there:
            report.fail(f"in the state but not in libvirt: {sorted(held - there)}")


def hub_config(lab: LabStack) -> tuple[set[str], set[str]]:
    """The spokes the hub has a conn file for, and those it has a GRE port for."""
    hub = lab.node(names.HUB)
    conn_prefix, port_prefix = names.conn_name(names.HUB, ""), names.gre_port("")
    conns = {name.removesuffix(".conf").removeprefix(conn_prefix) for name in hub.run(f"ls {names.IPSEC_DIR}").split()
             if name.startswith(conn_prefix) and name.endswith(".conf")}
    ports = {port.removeprefix(port_prefix) for port in hub.run(f"ovs-vsctl list-ports {names.BRIDGE}").split()
             if port.startswith(port_prefix)}
    return conns, ports


def check_hub(lab: LabStack, report: DrillReport) -> None:
    conns, ports = hub_config(lab)
    for what, held in (("conn files", conns), ("GRE ports", ports)):
        if held != set(lab.spokes):
            report.fail(f"the hub has {what} for {sorted(held)}, the plan has {lab.spokes}")


def recovery_summary(lines: list[str]) -> str:
    """What a run's recovery did, short: the plugins it ended counted, the rest as it said it."""
    ended = [line for line in lines if line.startswith("ending ")]
    rest = [line.split(": ", 1)[-1] if line.startswith("stack ") else line for line in lines if line not in ended]
    return "; ".join(([f"ended {len(ended)} plugin process(es) left running"] if ended else []) + rest) or "nothing"


def grow(stack: str, spoke: str, echo: Echo) -> DrillReport:
    """Take the stack, whose config already has spoke, through the interrupted runs to the end."""
    report = DrillReport("interrupt")
    left = list(POINTS)
    runs: list[Run] = []
    start = time.monotonic()
    while True:
        run, passed = labctl_up(stack, spoke, left, echo)
        runs.append(run)
        left = [point for point in left if point[0] not in passed and point[0] != run.killed_at]
        if passed:
            report.lines.append(f"run {len(runs)}: {', '.join(passed)} done before any kill point")
        if run.killed_at is None:
            break
    figures = [{"killed_at": r.killed_at, "seconds": r.seconds, "recovery_next_run": n.recovery}
               for r, n in zip(runs, runs[1:])]
    report.figures.update(runs=figures, final_run_seconds=runs[-1].seconds, total_seconds=round(time.monotonic() - start))
    for number, figure in enumerate(figures, 1):
        report.lines.append(f"run {number}: killed at the {figure['killed_at']} after {figure['seconds']} s; "
                            f"run {number + 1} recovered: {recovery_summary(figure['recovery_next_run'])}")
    killed = [r.killed_at for r in runs if r.killed_at]
    if len(killed) < len(POINTS):
        report.fail(f"killed at {killed} only: the other points were done before a run reached them")
    if runs[-1].status != 0:
        report.fail(f"the last labctl up exited {runs[-1].status}")
        return report
    report.figures["tunnels_up_at"] = time.time()  # for T1: the drill's own checks come after
    report.lines.append(f"run {len(runs)}: ended by itself after {runs[-1].seconds} s, every tunnel up")
    check_state(stack, report)
    lab = load(stack)
    check_hub(lab, report)
    # As every drill's recovery, the lab must hold once settled: a spoke's first pings to its peers
    # go while their neighbours and SAs through the hub are still being set up (one of three lost).
    time.sleep(settle_seconds(lab))
    failed = [r.line() for r in checks.run_checks(lab) if not r.passed]
    report.figures["verify_failed"] = len(failed)
    for line in failed:
        report.fail(f"verify: {line}")
    return report


def run(lab: LabStack, echo: Echo) -> DrillReport:
    """The CLI drill: one spoke more, brought up through the interrupted runs, then removed again."""
    require_healthy(lab)
    stack = open_stack(lab.name)
    found = len(lab.spokes)
    spoke = names.spoke_name(found + 1)
    echo(f"adding {spoke} to stack {lab.name}, killing labctl up at: {', '.join(p[0] for p in POINTS)}")
    stack.set_config("lab:spokes", auto.ConfigValue(str(found + 1)))
    try:
        report = grow(lab.name, spoke, echo)
    finally:
        stack.set_config("lab:spokes", auto.ConfigValue(str(found)))  # the plan as found, whatever happened
    echo(f"removing {spoke} again")
    removal, _ = labctl_up(lab.name, spoke, [], echo)
    if removal.status != 0:
        report.fail(f"labctl up removing {spoke} exited {removal.status}")
    else:
        check_hub(load(lab.name), report)
    report.figures["site"] = spoke
    return report
