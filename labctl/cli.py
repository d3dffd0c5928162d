"""The lab's command-line program: everything a user types after `make up`.

    python -m labctl stack-config ci --set domainType=qemu
    python -m labctl up ci          # pulumi up + wait for the tunnels and overlay traffic
    python -m labctl rebuild ci spoke1   # that spoke from scratch (new disk, seed, domain) + wait
    python -m labctl verify ci [--node spoke1] [--json]
    python -m labctl impair spoke1 --delay 40 --jitter 10 --loss 1 --frag-drop 30
    python -m labctl drill fragments ci
    python -m labctl down ci

Commands that touch the running lab re-run themselves inside the lab's
network namespace (needs root). A failure is one line `labctl: ...`;
`python -m labctl --debug COMMAND ...` prints the traceback too.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

import click

from lablib import names, waits
from lablib.wan import WanImpairment
from labctl import checks, host, impair, pending, vanished
from labctl import rebuild as rebuilding
from labctl import stack as stacks
from labctl.drills import DrillReport, drift, fragments, interrupt, overlay_flows, recovery, remedies, revoke
from labctl.fanout import each_spoke
from labctl.failures import LabGroup
from labctl.locks import run_unlocked
from labctl.node import diagnostics, holds, tunnel_up, wait_until

STACK = click.argument("stack", default="local")
PCT = click.FloatRange(0, 100)
TIMEOUT = click.option("--timeout", type=click.IntRange(min=1), metavar="S", help=(
    f"Seconds to wait for all tunnels [default: {waits.TUNNELS_SECONDS}, or more by the lab's VMs per core]."))


@click.group(cls=LabGroup, context_settings={"max_content_width": 100})  # whole command lines on a wide screen
@click.option("--debug", is_flag=True, help="On a failure, print the traceback too (not only the one line).")
def cli(debug: bool) -> None:
    """Bring up, check, impair and drill the GRE-over-IPsec lab (see README)."""


@cli.command("stack-config")
@click.argument("stack")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Plain config to override.")
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Stack file to start from (default stacks/Pulumi.STACK.yaml).")
def stack_config(stack: str, overrides: tuple[str, ...], source: Path | None) -> None:
    """Write the run stack file (committed values + this checkout's secrets).

    .lab/project/Pulumi.STACK.yaml: stacks/Pulumi.STACK.yaml (or --from), --set values, the lab's keys."""
    click.echo(stacks.write_stack_config(stack, overrides, source))


class Stage(NamedTuple):
    """One step of a spoke's way to ready: the line once done, what a wait for it says, the check
    (given a LabStack of the spoke's own: the spokes are checked at once)."""

    done: str
    waiting_for: str
    check: Callable[[stacks.LabStack, str], bool]


def ready_stages(lab: stacks.LabStack) -> list[Stage]:
    """What `up` and `wait` wait for, in order, for each spoke: its IPsec tunnel, then traffic over
    GRE inside it (an SA comes up even when the hub lacks the spoke's GRE port)."""
    ping = f"GRE ping to the hub's {names.BRIDGE} {lab.bridge_ip(names.HUB)}"
    return [Stage("tunnel to hub established", "IPsec tunnel",
                  lambda own, spoke: tunnel_up(own.node(spoke), checks.spoke_conn(spoke))),
            Stage(f"{ping} answered", ping, lambda own, spoke: overlay_flows(own, spoke))]


def advance(lab: stacks.LabStack, reached: dict[str, int], stages: Sequence[Stage]) -> list[tuple[str, float]]:
    """Take each spoke through the stages that hold now, in order (a later check runs only once the
    earlier ones held), the spokes at once; reached[spoke] counts the stages it passed. A line for
    each stage passed, with the time.monotonic() it passed at, in sorted spoke order."""
    def walk(own: stacks.LabStack, spoke: str) -> tuple[int, list[tuple[str, float]]]:
        count, passed = reached[spoke], []
        while count < len(stages) and holds(partial(stages[count].check, own, spoke)):
            count += 1
            passed.append((f"{spoke}: {stages[count - 1].done}", time.monotonic()))
        return count, passed

    waiting = [spoke for spoke in sorted(reached) if reached[spoke] < len(stages)]
    lines: list[tuple[str, float]] = []
    for spoke, (count, passed) in zip(waiting, each_spoke(lab, waiting, walk)):
        reached[spoke] = count
        lines += passed
    return lines


def tunnels_timeout(lab: stacks.LabStack) -> int:
    """The wait for every tunnel when --timeout is not given: scaled to the lab as the hub push's is."""
    return waits.scaled_wait(waits.TUNNELS_SECONDS, len(lab.node_info), str(lab.config["domainType"]),
                             waits.machine_cores())


def wait_for_tunnels(lab: stacks.LabStack, timeout: int | None = None) -> None:
    start = time.monotonic()
    stages = ready_stages(lab)
    reached = dict.fromkeys(lab.serving, 0)  # a revoked spoke's tunnel is refused, as planned
    timeout = timeout or tunnels_timeout(lab)

    def all_ready() -> bool:
        for line, at in advance(lab, reached, stages):
            click.echo(f"  {line} ({at - start:.0f} s)")
        return all(count == len(stages) for count in reached.values())

    try:
        wait_until(f"each spoke's {', then '.join(s.waiting_for for s in stages)}", all_ready, timeout,
                   progress=click.echo)
    except TimeoutError as error:
        for site, node in lab.nodes().items():
            click.echo(diagnostics(node, lab.domain(site)), err=True)
        missing = ", ".join(f"{spoke} (no {stages[count].waiting_for})" for spoke, count in reached.items()
                            if count < len(stages))
        raise click.ClickException(f"{error}: {missing}") from None
    click.echo(f"all {len(lab.serving)} tunnels up and carrying overlay traffic after "
               f"{time.monotonic() - start:.0f} s")
    if lab.revoked_spokes:
        click.echo(f"  revoked (the hub refuses them): {', '.join(lab.revoked_spokes)}")
    for site, info in lab.node_info.items():
        uri = lab.host_uri(site)
        jump = f"-J {urllib.parse.urlsplit(uri).netloc} " if uri else ""  # the host's user@address
        click.echo(f"  {site:8} ssh -i {names.SSH_KEY_FILE} {jump}{names.ssh_login(info['mgmtAddress'])}   "
                   f"(WAN {info['wanAddress']}, overlay {info['overlayAddress']}, tunnel MTU {info['tunnelMtu']})")
    if not lab.hosts:
        click.echo("  (ssh from inside the lab namespace: scripts/labns.sh exec ssh ...)")


@cli.command()
@STACK
@TIMEOUT
def wait(stack: str, timeout: int | None) -> None:
    """Wait for every spoke's tunnel and a GRE ping through it to the hub.

    Then print how to reach each node."""
    host.enter_lab_namespace(stack)
    wait_for_tunnels(stacks.load(stack), timeout)


@cli.command()
@STACK
@TIMEOUT
@click.option("--parallel", type=click.IntRange(1, 256), metavar="N",
              help="At most N resource operations at once (default: Pulumi's).")
def up(stack: str, timeout: int | None, parallel: int | None) -> None:
    """`pulumi up` on the stack, then wait for its tunnels and overlay traffic.

    Between the two, each spoke's WAN is set as lab:spokeWans declares it. The wait is `wait`'s:
    each spoke's tunnel, then a GRE ping through it."""
    host.enter_lab_namespace(stack)
    recover_and_up(stack, parallel=parallel)
    lab = stacks.load(stack)
    for spoke in lab.spokes:
        if (declared := lab.declared_wan(spoke)) != WanImpairment():
            impair.apply(lab, spoke, declared)
            click.echo(f"{spoke}'s WAN as its stack declares: {declared.describe()}")
    wait_for_tunnels(lab, timeout)


def recover_and_up(stack: str, replace: list[str] | None = None, parallel: int | None = None) -> None:
    """The files of pools libvirt forgot and what an interrupted run left undone, then refresh + up
    (replacing the URNs in replace)."""
    remove_forgotten_files(stack)
    run_unlocked(stack, lambda: pending.recover(stacks.open_stack(stack), click.echo), click.echo)
    result, changed = stacks.run_up(stack, click.echo, replace=replace, parallel=parallel)
    click.echo(f"pulumi up: {result.summary.result}, {result.summary.resource_changes}")
    for line in changed:
        click.echo(f"  changed: {line}")


@cli.command()
@click.argument("stack")
@click.argument("spoke")
@TIMEOUT
def rebuild(stack: str, spoke: str, timeout: int | None) -> None:
    """Rebuild SPOKE from scratch, then wait for the tunnels as `up` does.

    A new disk, cloud-init disk and domain: `pulumi up --replace` of those three, nothing else."""
    host.enter_lab_namespace(stack)
    rebuilding.check_spoke(stacks.load(stack), spoke)
    urns = rebuilding.spoke_urns(stacks.open_stack(stack).export_stack().deployment["resources"], spoke)
    recover_and_up(stack, replace=urns)
    wait_for_tunnels(stacks.load(stack), timeout)


@cli.command()
@STACK
def down(stack: str) -> None:
    """Clear the stack's impairments and `pulumi destroy` it."""
    host.enter_lab_namespace(stack)
    outputs = {k: v.value for k, v in stacks.open_stack(stack).outputs().items()}
    lab = stacks.LabStack(stack, outputs, {})
    for site in outputs.get("nodes", {}):
        impair.clear_fragment_rules(stack, site, on=lab.host_uri(site))
    remove_forgotten_files(stack)
    result = stacks.run_destroy(stack, click.echo)
    click.echo(f"pulumi destroy: {result.summary.result}, {result.summary.resource_changes}")


def remove_forgotten_files(stack: str) -> None:
    """The files of the stack's pools that libvirt no longer has (labctl/vanished.py says why)."""
    vanished.remove_forgotten_files(stack, stacks.open_stack(stack).export_stack().deployment or {},
                                    stacks.plain_config(stack), click.echo)


@cli.command()
@STACK
def diagnose(stack: str) -> None:
    """Print console tails, IPsec and OVS state of every node."""
    host.enter_lab_namespace(stack)
    lab = stacks.load(stack)
    for site, node in lab.nodes().items():
        click.echo(diagnostics(node, lab.domain(site)))


@cli.command()
@STACK
@click.option("--node", "only", metavar="NAME", help="Check only this site (hub, spoke1, ...).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
def verify(stack: str, only: str | None, as_json: bool) -> None:
    """Run every check against the running lab; exit 0 only if all pass."""
    host.enter_lab_namespace(stack)
    lab = stacks.load(stack)
    if only:
        lab.check_site(only)
    results, start = [], time.monotonic()
    for result in checks.run_checks(lab, only):
        results.append(result)
        if not as_json:
            click.echo(result.line())
    passed, summary = all(r.passed for r in results), checks.summary(results, time.monotonic() - start)
    if as_json:
        click.echo(json.dumps({"stack": stack, "passed": passed, "summary": summary,
                               "checks": [r.as_dict() for r in results]}, indent=2))
    else:
        click.echo(summary)
    sys.exit(0 if passed else 1)


@cli.command("impair")
@click.argument("site")
@click.option("--stack", default="local", show_default=True)
@click.option("--delay", type=click.IntRange(0, 10000), default=0, help="Added delay, ms.")
@click.option("--jitter", type=click.IntRange(0, 10000), default=0, help="Delay variation, ms (needs --delay).")
@click.option("--loss", type=PCT, default=0, help="Share of packets lost, %.")
@click.option("--rate", type=impair.RateType(), help="Rate limit, e.g. 2mbit.")
@click.option("--frag-drop", type=PCT, default=0, help="Share of IP fragments dropped, %.")
@click.option("--udp-blocked", is_flag=True, help="Drop the site's UDP to ports 500 and 4500 (IKE, NAT-T): "
                                                  "only a tcp spoke's tunnel gets through.")
@click.option("--show", is_flag=True, help="Print what is set now.")
@click.option("--clear", "clear_", is_flag=True, help="Remove every impairment of the site.")
@click.option("--declared", is_flag=True, help="Set the site's WAN back to what lab:spokeWans declares.")
def impair_command(site: str, stack: str, delay: int, jitter: int, loss: float, rate: str | None, frag_drop: float,
                   udp_blocked: bool, show: bool, clear_: bool, declared: bool) -> None:
    """Impair SITE's WAN: the settings given replace the previous ones (idempotent)."""
    wanted = impair.Impairment(delay, jitter, loss, rate or "", frag_drop, udp_blocked)  # validated before anything changes
    if [show, clear_, declared, wanted != impair.Impairment()].count(True) != 1:
        raise click.UsageError("give settings, --show, --clear or --declared, one of them")
    host.enter_lab_namespace(stack)
    lab = stacks.load(stack)
    lab.check_site(site)
    if show:
        click.echo(f"{site}: {impair.current(lab, site).describe()}")
        return
    impair.apply(lab, site, lab.declared_wan(site) if declared else wanted)
    click.echo(f"{site}: {impair.current(lab, site).describe()}")


def progress(as_json: bool) -> Callable[[str], None]:
    """Where a drill's progress lines go: stderr when stdout carries the JSON document."""
    return lambda line: click.echo(line, err=as_json)


def print_report(report: DrillReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"drill": report.drill, "passed": report.passed, "figures": report.figures,
                               "lines": report.lines}, indent=2))
    else:
        for line in report.lines:
            click.echo(line)
        click.echo(f"drill {report.drill}: {'passed' if report.passed else 'FAILED'}")
    sys.exit(0 if report.passed else 1)


@cli.group()
def drill() -> None:
    """Scripted fault drills.

    Each prints its figures and fails when the lab does not heal itself in time."""


SITE = click.option("--site", help="The spoke to drill (default: the first spoke behind NAT).")
JSON = click.option("--json", "as_json", is_flag=True, help="Figures as JSON.")


@drill.command("fragments")
@STACK
@SITE
@click.option("--drop", type=PCT, default=30, show_default=True, help="Share of WAN fragments dropped, %.")
@click.option("--count", type=click.IntRange(20, 2000), default=200, show_default=True)
@click.option("--size", type=int, default=1400, show_default=True, help="Ping size (IP packet), bytes.")
@JSON
def drill_fragments(stack: str, site: str | None, drop: float, count: int, size: int, as_json: bool) -> None:
    """The original failure (wrong tunnel MTU + WAN fragment loss), then the computed MTU."""
    host.enter_lab_namespace(stack)
    print_report(fragments.run(stacks.load(stack), site, drop, count, size, progress(as_json)), as_json)


@drill.command("remedies")
@STACK
@click.option("--drop", type=PCT, default=30, show_default=True, help="Share of every WAN's fragments dropped, %.")
@click.option("--count", type=click.IntRange(20, 2000), default=200, show_default=True)
@click.option("--size", type=click.IntRange(1280, 9000), default=1400, show_default=True,
              help="Ping size (IP packet), bytes: the write-up's large packets.")
@click.option("--light-loss", type=click.FloatRange(0.1, 20), default=1, show_default=True,
              help="Random loss for the second goodput figure, %.")
@JSON
def drill_remedies(stack: str, drop: float, count: int, size: int, light_loss: float, as_json: bool) -> None:
    """The write-up's table: every spoke's remedy, measured at once under WAN fragment loss."""
    host.enter_lab_namespace(stack)
    print_report(remedies.run(stacks.load(stack), drop, count, size, light_loss, progress(as_json)), as_json)


@drill.command("interrupt")
@STACK
@JSON
def drill_interrupt(stack: str, as_json: bool) -> None:
    """labctl up killed while it adds a spoke; the next up recovers."""
    host.enter_lab_namespace(stack)
    print_report(interrupt.run(stacks.load(stack), progress(as_json)), as_json)


@drill.command("revoke")
@STACK
@click.option("--site", help="The spoke to revoke (default: the first spoke with a certificate).")
@JSON
def drill_revoke(stack: str, site: str | None, as_json: bool) -> None:
    """A spoke's certificate revoked, refused by the hub; then renewed.

    The other spokes must keep their traffic throughout."""
    host.enter_lab_namespace(stack)
    print_report(revoke.run(stacks.load(stack), site, progress(as_json)), as_json)


@drill.command("reboot")
@STACK
@click.option("--site", "sites", multiple=True,
              help="A spoke to reboot with the hub; repeat for more (default: the first spoke behind NAT).")
@JSON
def drill_reboot(stack: str, sites: tuple[str, ...], as_json: bool) -> None:
    """The hub and the spokes reboot together; then the hub's ipsec restarts."""
    host.enter_lab_namespace(stack)
    print_report(recovery.reboot(stacks.load(stack), sites, progress(as_json)), as_json)


def _recovery_drill(name: str, summary: str, run: Callable[[stacks.LabStack, str | None, Callable], DrillReport]
                    ) -> None:
    """Register `drill NAME [STACK] [--site SPOKE] [--json]` for a drill that times a recovery."""
    @drill.command(name, help=summary)
    @STACK
    @SITE
    @JSON
    def command(stack: str, site: str | None, as_json: bool) -> None:
        host.enter_lab_namespace(stack)
        print_report(run(stacks.load(stack), site, progress(as_json)), as_json)


for _name, _summary, _run in (
        ("outage", "A spoke's WAN link down for longer than the liveness timeout, then up.", recovery.outage),
        ("redial", "A NAT'd spoke's public address changes (ADSL reconnect), then changes back.", recovery.redial),
        ("drift", "A spoke's VM deleted behind Pulumi's back; refresh + up recreate only it.", drift.run)):
    _recovery_drill(_name, _summary, _run)
