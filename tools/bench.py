"""make bench: how long the lab takes and what it costs, measured in one run.

    scripts/labns.sh exec venv/bin/python tools/bench.py [--only plan,preview,lab] [--scale 1,4,8,16]

- plan: the program under Pulumi mocks for 100 and 250 spokes (no engine);
- preview: a real `pulumi preview` of the scale stack at 100 and 250 spokes;
- lab: the ci stack brought up from nothing (pulumi up -> every tunnel up),
  resident memory of each VM, goodput through GRE over IPsec against the raw
  WAN between the same two VMs, then one spoke added to the running lab (T1:
  that VM, booting alone, from domain start to its tunnel; the ratio of the
  whole `pulumi up` of the spoke to T1), and the lab destroyed;
- scale (with --scale): real labs of those spoke counts one after another,
  each against its floor from T1 of the lab step (tools/bench_scale.py),
  and their plot in .lab/bench-scale.png (tools/bench_plot.py).
Figures go to .lab/bench.json and a table on stdout. Needs the lab's
namespace (`make bench` starts it) and the image (`make deps`).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.bench_guest import boot_breakdown, command_cpu_seconds, domain_started, qemu_rss_mib  # noqa: E402
from labctl.node import goodput_mbps  # noqa: E402
from tools.bench_lab import (LAB_STACK, cloud_init_boot, config_int, configure, create_times,  # noqa: E402
                             domain_type, lab_nodes, names, packaged_kernel_boot, payload_done, pulumi,
                             stack_nodes, stack_values, timed, up_with_events, wait_tunnels, wait_until)
from tools.bench_plot import plot_scale  # noqa: E402
from tools.bench_scale import (bench_scale, broken_sizes, floor_seconds, parse_sizes, scale_ratios,  # noqa: E402
                               scale_rows)
from tools.mockrun import timed_plan  # noqa: E402

OUT = names.BENCH_FIGURES
SCALE_STACK = "scale"  # planned and previewed only: 100 and 250 spokes
STEPS = ("plan", "preview", "lab")


# The machine's pure-Python speed: plan under mocks is measured against it (issue 16: 250 spokes
# within PLAN_GOAL x this, min of 3 each), so that a twice slower machine gives the same ratio.
REFERENCE = "sum(i*i for i in range(2*10**7))"
PLAN_GOAL = 3


def bench_plan(repeat: int = 3) -> dict[str, Any]:
    """Median and min seconds to run the program under mocks, per spoke count, and the reference."""
    figures: dict[str, Any] = {}
    for spokes in (100, 250):
        runs = [round(timed_plan(stack_values({"spokes": spokes}))[0], 3) for _ in range(repeat)]
        figures[str(spokes)] = {"median_seconds": statistics.median(runs), "min_seconds": min(runs), "runs": runs}
    reference = [reference_seconds() for _ in range(repeat)]
    figures["reference"] = {"code": REFERENCE, "min_seconds": min(reference), "runs": reference}
    return figures


def reference_seconds() -> float:
    """Wall seconds of the reference loop in a new interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", REFERENCE], check=True)
    return round(time.perf_counter() - start, 3)


def bench_preview() -> dict[str, Any]:
    """Wall seconds of a real `pulumi preview` (engine, language host, provider) per spoke count."""
    figures: dict[str, Any] = {}
    for spokes in (100, 250):
        configure(SCALE_STACK, spokes=spokes)
        figures[str(spokes)] = {"seconds": timed(lambda: pulumi(SCALE_STACK, "preview"))}
    return figures


def bench_lab(sets: tuple[str, ...], timeout: float, suite: str, label: str = "") -> dict[str, Any]:
    """The ci lab from nothing to every tunnel, its memory and goodput, one spoke added; then destroyed.
    Every VM boots the lab image of `suite`; label names the variant when it is not the suite."""
    figures: dict[str, Any] = {"suite": suite, "label": label or suite}
    events = names.STATE_DIR / "bench-events.json"
    configure(LAB_STACK, sets, suite, spokes=2, domainType=domain_type())
    try:
        start = time.monotonic()
        figures["pulumi_up_seconds"] = up_with_events(LAB_STACK, events)
        figures["creates"] = create_times(events)
        tunnels = wait_tunnels(LAB_STACK, ["spoke1", "spoke2"], start, timeout)
        figures["tunnels_up_seconds"] = tunnels
        figures["up_to_all_tunnels_seconds"] = max(tunnels.values())
        info = stack_nodes(LAB_STACK)
        memory = config_int(LAB_STACK, "memoryMib")
        figures["memory"] = {"guest_mib": memory, "rss_mib": {
            n: qemu_rss_mib(names.domain_name(LAB_STACK, n)) for n in info}}
        nodes = lab_nodes(LAB_STACK)
        hub, spoke = nodes[names.HUB], nodes["spoke2"]  # spoke2 is routed: its raw WAN path has no NAT
        figures["goodput_mbps"] = {
            "wan": goodput_mbps(spoke, hub, str(info[names.HUB]["wanAddress"])),
            "overlay": goodput_mbps(spoke, hub, str(info[names.HUB]["bridgeAddress"]).split("/")[0])}
        figures["command_cpu_seconds"] = command_cpu_seconds(spoke, names.domain_name(LAB_STACK, "spoke2"))

        configure(LAB_STACK, sets, suite, spokes=3, domainType=domain_type())
        start = time.monotonic()
        figures["add_spoke_pulumi_up_seconds"] = up_with_events(LAB_STACK, events)
        added = wait_tunnels(LAB_STACK, ["spoke3"], start, timeout)["spoke3"]
        figures["add_spoke_seconds"] = added
        domain = names.domain_name(LAB_STACK, "spoke3")
        node = lab_nodes(LAB_STACK)["spoke3"]
        wait_until("spoke3's payload", lambda: payload_done(node), 300, interval=2)
        # T1 on the host's clock: the added spoke's domain start to its tunnel (seen by the poll).
        domain_start = (time.monotonic() - start) - (time.time() - domain_started(domain))
        figures["t1_seconds"] = round(added - domain_start, 1)
        figures["t1_breakdown"] = boot_breakdown(node)
    finally:
        pulumi(LAB_STACK, "destroy", "--yes", "--skip-preview")
    return figures


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    """The issue's goals as ratios of figures measured in this run."""
    lab = figures.get("lab") or {}
    out: dict[str, float] = {}
    plan = figures.get("plan") or {}
    if "reference" in plan and "250" in plan:
        out["plan_250_over_reference"] = round(plan["250"]["min_seconds"] / plan["reference"]["min_seconds"], 2)
    if "t1_seconds" in lab:
        cores = (figures.get("machine") or {}).get("cores") or os.cpu_count() or 1
        floor = floor_seconds(lab["t1_seconds"], 3, cores)  # the ci lab: a hub and two spokes, one vCPU each
        out["ci_floor_seconds"] = floor
        out["ci_over_floor"] = round(lab["up_to_all_tunnels_seconds"] / floor, 2)
        out["add_spoke_over_t1"] = round(lab["add_spoke_seconds"] / lab["t1_seconds"], 2)
    if "memory" in lab:
        guest = lab["memory"]["guest_mib"]
        out["rss_over_guest_max"] = round(max(lab["memory"]["rss_mib"].values()) / guest, 2)
    if "goodput_mbps" in lab:
        out["overlay_over_wan"] = round(lab["goodput_mbps"]["overlay"] / lab["goodput_mbps"]["wan"], 2)
    for key, other in figures.items():
        if key.startswith("lab-") and "t1_seconds" in lab:
            out[f"t1_{_label(other)}_over_t1_{_label(lab)}"] = round(other["t1_seconds"] / lab["t1_seconds"], 2)
    return {**out, **scale_ratios(figures)}


def _label(lab: dict[str, Any]) -> str:
    """A lab step's variant: its suite, or what else it changed (older figures have no label)."""
    return lab.get("label") or lab.get("suite", "")


def table(figures: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    for spokes, plan in (figures.get("plan") or {}).items():
        if spokes != "reference":
            rows.append((f"plan under mocks, {spokes} spokes", f"{plan['median_seconds']} s"))
    if "plan_250_over_reference" in (figures.get("ratios") or {}):
        rows.append((f"  250 spokes (min) / python -c '{REFERENCE}' (min)",
                     f"x{figures['ratios']['plan_250_over_reference']} (goal x{PLAN_GOAL})"))
    for spokes, preview in (figures.get("preview") or {}).items():
        rows.append((f"pulumi preview, {spokes} spokes", f"{preview['seconds']} s"))
    lab = figures.get("lab") or {}
    ratio = figures.get("ratios") or {}
    if lab:
        b = lab["t1_breakdown"]
        rows += [("T1 (one VM: domain start -> tunnel up)", f"{lab['t1_seconds']} s"),
                 ("  kernel / userspace (systemd-analyze)", f"{b.get('kernel_seconds')} / {b.get('userspace_seconds')} s"),
                 ("  child SA established (guest clock)", f"{b.get('child_sa')} s")]
        rows += [(f"  {stage}", f"{s} -> {f} s") for stage, (s, f) in b["stages"].items()]
        rows += [(f"  {unit}", f"{s} -> {e} s") for unit, (s, e) in b["units"].items() if e is not None]
        rows += [("ci lab: pulumi up", f"{lab['pulumi_up_seconds']} s"),
                 ("ci lab: pulumi up -> all tunnels", f"{lab['up_to_all_tunnels_seconds']} s"
                  f" (floor {ratio['ci_floor_seconds']} s, x{ratio['ci_over_floor']})"),
                 ("spoke added -> its tunnel", f"{lab['add_spoke_seconds']} s (x{ratio['add_spoke_over_t1']} T1)"),
                 ("resident memory per VM", f"{lab['memory']['rss_mib']} MiB for {lab['memory']['guest_mib']} MiB"
                  f" (max x{ratio['rss_over_guest_max']})"),
                 ("goodput overlay / WAN", f"{lab['goodput_mbps']['overlay']} / {lab['goodput_mbps']['wan']} Mbit/s"
                  f" (x{ratio['overlay_over_wan']})"),
                 ("guest CPU per command (sh -c in the root shell)", f"{lab.get('command_cpu_seconds')} s")]
        rows += [(f"  create {t}", f"{c['count']} x, longest {c['longest_seconds']} s")
                 for t, c in lab["creates"].items()]
    for key, other in figures.items():
        if key.startswith("lab-"):
            b, versus = other["t1_breakdown"], f"t1_{_label(other)}_over_t1_{_label(lab)}"
            rows += [(f"T1, {_label(other)}", f"{other['t1_seconds']} s (x{ratio.get(versus)})"),
                     ("  kernel / userspace (systemd-analyze)",
                      f"{b.get('kernel_seconds')} / {b.get('userspace_seconds')} s"),
                     (f"  ci lab, {_label(other)}: pulumi up -> all tunnels",
                      f"{other['up_to_all_tunnels_seconds']} s")]
    rows += scale_rows(figures)
    width = max(len(name) for name, _ in rows) if rows else 0
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


@click.command()
@click.option("--only", default=",".join(STEPS), show_default=True,
              help="Comma-separated steps to run: plan, preview, lab.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config for the lab step's ci stack on top of stacks/Pulumi.ci.yaml, e.g. memoryMib=384.")
@click.option("--timeout", default=900, show_default=True, help="Seconds to wait for tunnels.")
@click.option("--suite", "suites", multiple=True, default=(names.DEFAULT_SUITE,), show_default=True,
              help="Debian suite whose lab image every VM of the lab step boots; repeat to compare "
                   "(the first gives the lab figures and T1, each other one its own T1 beside it).")
@click.option("--compare-cloud-init", is_flag=True,
              help="Run the lab step once more with every VM booting cloud-init instead of the image's "
                   "lab-seed (the kernel command line without cloud-init=disabled); its T1 goes beside.")
@click.option("--compare-packaged-kernel", is_flag=True,
              help="Run the lab step once more with every VM booting the suite's packaged Debian kernel and "
                   "its initrd instead of the lab's own kernel; its T1 goes beside.")
@click.option("--scale", metavar="N,N,...", help="After the other steps, real labs of these spoke counts "
              "one after another (e.g. 1,4,8,16), each against its floor from the lab step's T1.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=OUT, show_default=True)
def main(only: str, sets: tuple[str, ...], timeout: int, suites: tuple[str, ...], compare_cloud_init: bool,
         compare_packaged_kernel: bool, scale: str | None, out: Path) -> None:
    """Run the benchmark steps; write JSON to OUT and print a table (and with --scale, its plot)."""
    sizes = parse_sizes(scale) if scale else []
    steps = [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise click.BadParameter(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}",
                                 param_hint="--only")
    figures: dict[str, Any] = {"machine": machine()}
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "plan": bench_plan, "preview": bench_preview, "lab": lambda: bench_lab(sets, timeout, suites[0])}
    for step in steps:
        click.echo(f"bench: {step} ...", err=True)
        figures[step] = runners[step]()
        if step == "lab":
            for suite in suites[1:]:
                click.echo(f"bench: lab on the {suite} image ...", err=True)
                figures[f"lab-{suite}"] = bench_lab(sets, timeout, suite)
            if compare_cloud_init:
                click.echo("bench: lab booting cloud-init ...", err=True)
                figures["lab-cloud-init"] = bench_lab((*sets, *cloud_init_boot()), timeout, suites[0], "cloud-init")
            if compare_packaged_kernel:
                click.echo("bench: lab booting the packaged kernel ...", err=True)
                figures["lab-packaged-kernel"] = bench_lab((*sets, *packaged_kernel_boot(suites[0])), timeout,
                                                           suites[0], "packaged-kernel")
    if sizes:
        figures["scale"] = bench_scale(sizes, sets, timeout, suites[0])
    figures["ratios"] = ratios(figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    click.echo(table(figures))
    click.echo(f"(figures in {out})")
    if sizes:
        click.echo(f"(plot in {plot_scale(figures, out.with_name(f'{out.stem}-scale.png'))})")
    broken = broken_sizes(figures)
    if broken:
        raise click.ClickException(f"{len(broken)} lab size(s) did not work: {'; '.join(broken)}")


if __name__ == "__main__":
    main()
