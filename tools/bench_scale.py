"""The bench's scale step: real labs of 1, 4, 8 ... spokes, one after another, and what each costs.

Each size is brought up from nothing on the ci stack (its mix kept: odd spokes behind NAT with an
XFRM interface, even ones routed with a VTI) and measured: `pulumi up` to every tunnel against
its floor, the hub's push of each spoke's side, `labctl verify`, the hub's memory and pluto's
CPU; the largest also gets one spoke added. Then it is destroyed. Goals (issue 16) are ratios
against T1 from the lab step of the same run, so the machine's speed cancels out.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from lablib import waits
from tools.bench_guest import qemu_rss_mib
from tools.bench_lab import (LAB_STACK, ROOT, configure, create_spans, create_times, domain_type, lab_nodes, names,
                             pulumi, up_with_events, wait_tunnels)

OVER_FLOOR_GOAL = 1.3  # every size's `pulumi up` to all tunnels within 1.3 x its floor
ADD_SPOKE_GOAL = 1.3  # a spoke added to the largest lab within 1.3 x T1
VERIFY_GOAL = 2.0  # verify of the largest lab within 2 x verify of one spoke
# Each spoke's tunnel is polled this often (the lab step: 2 s): 16 booting VMs polled every 2 s would
# slow the very boots being timed, and 5 s is within 2 % of the smallest floor.
POLL_SECONDS = 5
# One SSH round trip on the hub: pluto's /proc stat, the clock tick, uptime, and memory.
HUB_PROBE = ("cat /proc/$(pidof -s pluto)/stat; getconf CLK_TCK; cut -d' ' -f1 /proc/uptime; "
             "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo")


def parse_sizes(text: str) -> list[int]:
    """--scale's '1,4,8,16': spoke counts from 1 to 250, each once, in the order given."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or len(set(sizes)) != len(sizes) or not all(1 <= n <= 250 for n in sizes):
        raise click.BadParameter(f"{text!r}: give distinct spoke counts from 1 to 250, e.g. 1,4,8,16",
                                 param_hint="--scale")
    return sizes


def spoke_mix(spokes: int) -> dict[str, object]:
    """The ci lab's config at any size: even spokes routed with a VTI, odd ones behind NAT (XFRM)."""
    even = list(range(2, spokes + 1, 2))
    return {"spokes": spokes, "routedSpokes": even, "vtiSpokes": even}


def floor_seconds(t1: float, vms: int, cores: int) -> float:
    """The least a lab of `vms` one-vCPU VMs can take under emulation: T1 per VM, `cores` at a time."""
    return round(waits.shared_boot_seconds(t1, vms, cores), 1)


def hub_pushes(spans: dict[str, tuple[str, int, int]], start: int | None = None) -> dict[str, Any]:
    """Each spoke's hub side (RemoteConfig `...-hub-side` creates): its seconds, and the spread from
    the first push done to the last, per spoke after the first (a serial push shows as a steady spread)."""
    pushes = {urn.rsplit("::", 1)[-1]: (begin, end) for urn, (_, begin, end) in spans.items()
              if urn.endswith("-hub-side")}
    if not pushes:
        return {"count": 0}
    ends = sorted(end for _, end in pushes.values())
    seconds = {name: end - begin for name, (begin, end) in sorted(pushes.items())}
    origin = min(begin for begin, _ in pushes.values()) if start is None else start
    return {"count": len(pushes), "seconds": seconds, "median_seconds": statistics.median(seconds.values()),
            "longest_seconds": max(seconds.values()), "first_done_at": ends[0] - origin,
            "last_done_at": ends[-1] - origin,
            "per_spoke_spread_seconds": round((ends[-1] - ends[0]) / (len(ends) - 1), 1) if len(ends) > 1 else None}


def parse_hub_probe(text: str) -> dict[str, float]:
    """HUB_PROBE's output: pluto's CPU seconds and share of its life, the hub's memory in use."""
    lines = text.splitlines()
    fields = lines[0].rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, utime 14, stime 15
    tick, uptime = int(lines[1]), float(lines[2])
    cpu = (int(fields[11]) + int(fields[12])) / tick
    alive = uptime - int(fields[19]) / tick  # starttime, field 22: ticks after boot
    memory = {key: int(kib) for key, kib in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return {"pluto_cpu_seconds": round(cpu, 1), "pluto_alive_seconds": round(alive, 1),
            "pluto_cpu_share": round(cpu / alive, 3) if alive > 0 else 0.0,
            "used_mib": round((memory["MemTotal"] - memory["MemAvailable"]) / 1024, 1),
            "total_mib": round(memory["MemTotal"] / 1024, 1)}


def labctl_wait() -> float:
    """`labctl wait`, as `labctl up` ends before a user's first verify: each spoke's payload done and
    a GRE ping through its tunnel. The bench's own poll sees only child SAs; a verify right after them
    (until 2026-12-06) ran while the last spokes could still be finishing their boots: at 16 spokes it
    once failed every check through spoke16, and so every spoke's `ping-spokes` (docs/performance.md)."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "labctl", "wait", LAB_STACK], cwd=ROOT, capture_output=True,
                            text=True, check=False, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"labctl wait: {(result.stderr.strip() or result.stdout.strip() or 'failed')[-300:]}")
    return round(time.monotonic() - start, 1)


def timed_verify() -> dict[str, Any]:
    """`labctl verify --json` on the lab as a user runs it: its wall seconds and verdict, with each
    failed check's evidence (which peers a `ping-spokes` lost tells a lossy hub from a dead spoke)."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "labctl", "verify", LAB_STACK, "--json"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=3600)
    seconds = round(time.monotonic() - start, 1)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return {"seconds": seconds, "passed": False, "error": (result.stderr.strip() or "no output")[-300:]}
    return {"seconds": seconds, "passed": report["passed"], "checks": len(report["checks"]),
            "failed": [f"{c['node']}/{c['check']}" for c in report["checks"] if not c["passed"]],
            "evidence": {f"{c['node']}/{c['check']}": c["evidence"] for c in report["checks"] if not c["passed"]}}


def measure_size(figures: dict[str, Any], sets: tuple[str, ...], timeout: float, suite: str, events: Path) -> None:
    """One size from nothing to every tunnel, then its push, verify, hub memory and pluto CPU, into
    figures (what was measured stays there when a later part fails)."""
    spokes = figures["spokes"]
    configure(LAB_STACK, sets, suite, domainType=domain_type(), **spoke_mix(spokes))
    epoch, start = int(time.time()), time.monotonic()
    figures["vms"], figures["pulumi_up_seconds"] = spokes + 1, up_with_events(LAB_STACK, events)
    figures["creates"], figures["hub_push"] = create_times(events), hub_pushes(create_spans(events), epoch)
    tunnels = wait_tunnels(LAB_STACK, [names.spoke_name(n) for n in range(1, spokes + 1)], start, timeout,
                           interval=POLL_SECONDS)
    figures["tunnels_up_seconds"], figures["up_to_all_tunnels_seconds"] = tunnels, max(tunnels.values())
    hub = lab_nodes(LAB_STACK)[names.HUB]
    try:
        figures["hub"] = {**parse_hub_probe(hub.run(HUB_PROBE)),
                          "rss_mib": qemu_rss_mib(names.domain_name(LAB_STACK, names.HUB))}
    finally:
        hub.close()
    figures["labctl_wait_seconds"] = labctl_wait()
    figures["verify"] = timed_verify()


def add_spoke(spokes: int, sets: tuple[str, ...], timeout: float, suite: str, events: Path) -> dict[str, Any]:
    """One spoke more on the running lab of `spokes`: `pulumi up` to its tunnel, and its hub push."""
    configure(LAB_STACK, sets, suite, domainType=domain_type(), **spoke_mix(spokes + 1))
    added = names.spoke_name(spokes + 1)
    epoch, start = int(time.time()), time.monotonic()
    figures: dict[str, Any] = {"to_spokes": spokes, "pulumi_up_seconds": up_with_events(LAB_STACK, events)}
    figures["hub_push"] = hub_pushes(create_spans(events), epoch)
    figures["seconds"] = wait_tunnels(LAB_STACK, [added], start, timeout, interval=POLL_SECONDS)[added]
    return figures


def bench_scale(sizes: list[int], sets: tuple[str, ...], timeout: float, suite: str) -> dict[str, Any]:
    """Every size in turn (each destroyed before the next); a size that fails records its error and
    the run goes on. `timeout` is per VM sharing a core: a lab of n VMs may wait n/cores times it."""
    events = names.STATE_DIR / "bench-events.json"
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"sizes": {}}
    for spokes in sizes:
        click.echo(f"bench: scale, {spokes} spoke(s) ...", err=True)
        budget = timeout * max(spokes + 1, cores) / cores
        figures = out["sizes"][str(spokes)] = {"spokes": spokes}
        try:
            measure_size(figures, sets, budget, suite, events)
            if spokes == max(sizes):
                click.echo(f"bench: scale, one spoke added to {spokes} ...", err=True)
                out["add_spoke"] = add_spoke(spokes, sets, budget, suite, events)
        except (click.ClickException, TimeoutError, RuntimeError, OSError) as error:
            message = error.format_message() if isinstance(error, click.ClickException) else str(error)
            figures["error"] = message.strip().splitlines()[-1][:300] if message.strip() else type(error).__name__
            click.echo(f"bench: scale, {spokes} spoke(s) failed: {message}", err=True)
        finally:
            pulumi(LAB_STACK, "destroy", "--yes", "--skip-preview")
    return out


def scale_ratios(figures: dict[str, Any]) -> dict[str, float]:
    """The scale goals as ratios: each size's up-to-all-tunnels over its floor (T1 from the lab step),
    the added spoke over T1, verify of the largest size over verify of the smallest."""
    scale = figures.get("scale") or {}
    t1 = (figures.get("lab") or {}).get("t1_seconds")
    cores = (figures.get("machine") or {}).get("cores") or os.cpu_count() or 1
    sizes = {int(n): f for n, f in (scale.get("sizes") or {}).items() if "up_to_all_tunnels_seconds" in f}
    out: dict[str, float] = {}
    for n, size in sorted(sizes.items()):
        if t1:
            floor = floor_seconds(t1, size["vms"], cores)
            out[f"scale_{n}_floor_seconds"] = floor
            out[f"scale_{n}_over_floor"] = round(size["up_to_all_tunnels_seconds"] / floor, 2)
    verify = {n: size["verify"]["seconds"] for n, size in sizes.items() if "verify" in size}
    if len(verify) > 1:
        out[f"scale_verify_{max(verify)}_over_{min(verify)}"] = round(verify[max(verify)] / verify[min(verify)], 2)
    added = scale.get("add_spoke") or {}
    if t1 and "seconds" in added:
        out["scale_add_spoke_over_t1"] = round(added["seconds"] / t1, 2)
    return out


def verdict(ratio: float, goal: float) -> str:
    return f"x{ratio} ({'pass' if ratio <= goal else 'FAIL'}: goal x{goal})"


def size_rows(n: str, size: dict[str, Any], ratio: dict[str, float]) -> list[tuple[str, str]]:
    """One measured size: up to all tunnels against its floor, the hub's pushes, verify, the hub."""
    up, push, hub, verify = size["up_to_all_tunnels_seconds"], size["hub_push"], size["hub"], size["verify"]
    floor, over = ratio.get(f"scale_{n}_floor_seconds"), ratio.get(f"scale_{n}_over_floor")
    against = f" (floor {floor} s, {verdict(over, OVER_FLOOR_GOAL)})" if floor and over else ""
    checked = "all passed" if verify["passed"] else f"FAILED {verify.get('failed') or verify.get('error')}"
    return [(f"scale, {n} spoke(s): pulumi up -> all tunnels", f"{up} s{against}"),
            ("  hub push per spoke", f"median {push.get('median_seconds')} s, longest {push.get('longest_seconds')} s, "
                                     f"done {push.get('per_spoke_spread_seconds')} s/spoke apart"),
            ("  labctl wait, then verify", f"{size.get('labctl_wait_seconds')} s, then {verify['seconds']} s, {checked}"),
            ("  hub memory / pluto CPU", f"{hub['used_mib']} of {hub['total_mib']} MiB used (qemu RSS "
                                         f"{hub['rss_mib']} MiB) / {hub['pluto_cpu_seconds']} s, "
                                         f"{hub['pluto_cpu_share']:.1%} of its life")]


def scale_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The scale step's lines of the bench table, each goal with its ratio and pass/FAIL."""
    scale, ratio = figures.get("scale") or {}, figures.get("ratios") or {}
    rows: list[tuple[str, str]] = []
    if scale and not (figures.get("lab") or {}).get("t1_seconds"):
        rows.append(("scale: no T1 in this run", "floors need the lab step (--only lab with --scale)"))
    for n, size in (scale.get("sizes") or {}).items():
        if "error" in size:
            rows.append((f"scale, {n} spoke(s)", f"FAILED: {size['error']}"))
        if "verify" in size:
            rows += size_rows(n, size, ratio)
    added = scale.get("add_spoke") or {}
    if "seconds" in added:
        against = ""
        if "scale_add_spoke_over_t1" in ratio:
            against = f" ({verdict(ratio['scale_add_spoke_over_t1'], ADD_SPOKE_GOAL)} T1)"
        rows += [(f"scale: one spoke added to {added['to_spokes']} -> its tunnel", f"{added['seconds']} s{against}"),
                 ("  its hub push", f"{added['hub_push'].get('longest_seconds')} s")]
    for key, value in ratio.items():
        if key.startswith("scale_verify_"):
            largest, smallest = key.removeprefix("scale_verify_").split("_over_")
            rows.append((f"scale: verify of {largest} spokes / of {smallest}", verdict(value, VERIFY_GOAL)))
    return rows


def broken_sizes(figures: dict[str, Any]) -> list[str]:
    """The sizes whose lab did not work (an error, or a verify check failed), each with why: the
    bench exits non-zero for them, since a lab that failed is a finding, not a slow figure."""
    broken = []
    for n, size in ((figures.get("scale") or {}).get("sizes") or {}).items():
        verify = size.get("verify") or {"passed": True}
        if "error" in size:
            broken.append(f"{n} spokes: {size['error']}")
        elif not verify["passed"]:
            broken.append(f"{n} spokes: verify failed {verify.get('failed') or verify.get('error')}")
    return broken


def scale_series(figures: dict[str, Any]) -> dict[str, list[float]]:
    """What the plot draws, per measured size in spoke order: up to all tunnels, its floor, verify."""
    sizes = sorted((int(n), f) for n, f in ((figures.get("scale") or {}).get("sizes") or {}).items()
                   if "up_to_all_tunnels_seconds" in f)
    ratio = scale_ratios(figures)
    return {"spokes": [n for n, _ in sizes], "up": [f["up_to_all_tunnels_seconds"] for _, f in sizes],
            "floor": [ratio.get(f"scale_{n}_floor_seconds") for n, _ in sizes],
            "verify": [(f.get("verify") or {}).get("seconds") for _, f in sizes]}
