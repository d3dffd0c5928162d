"""Scripted fault drills: each breaks the lab in one way the field saw, measures, and puts it back.

A drill prints its figures and fails when the lab does not come back by
itself within a bound derived from the stack's config; it never runs pulumi
or ipsec commands to help the lab recover, and it leaves the lab as found.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import click

from lablib import names, waits
from labctl.fanout import each_spoke
from labctl.node import TRANSIENT, holds, ping_loss, wait_until
from labctl.stack import LabStack

# libreswan's first IKE retransmit comes this long after the send; each later wait doubles.
FIRST_RETRANSMIT = 0.5

Echo = Callable[[str], None]


@dataclass
class DrillReport:
    drill: str
    passed: bool = True
    figures: dict[str, object] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.passed = False
        self.lines.append(f"FAIL: {why}")


def retransmit_timeout(lab: LabStack) -> int:
    """lab:retransmitTimeout: how long IKE retransmits before giving a peer up."""
    return int(lab.config["retransmitTimeout"])  # type: ignore[arg-type]


def give_up_seconds(lab: LabStack) -> float:
    """When a silent peer is given up, from the first send: pluto checks the timeout only at its
    retransmit events, 0.5, 1, 2, 4 ... s after the send (seen on 4.10), so at the first one that
    reaches it: 64 s for libreswan's default 60, 32 s for 30."""
    event = FIRST_RETRANSMIT
    while event < retransmit_timeout(lab):
        event *= 2
    return event


def liveness_bound(lab: LabStack) -> int:
    """Seconds a tunnel may need to notice a dead peer and come back: IKE retransmits + a few probes."""
    return retransmit_timeout(lab) + 6 * int(lab.config["dpdDelay"])  # type: ignore[arg-type]


def redial_bound(lab: LabStack) -> int:
    """Liveness, and one more IKE retransmit cycle: an exchange begun through the mapping the change
    replaced is dropped by the hub ("encrypted payload seems to be corrupt") until the spoke gives it up
    and starts a fresh IKE_SA_INIT (seen once: 150 s for the change back, against 85 s usually)."""
    return liveness_bound(lab) + retransmit_timeout(lab)


def settle_seconds(lab: LabStack) -> int:
    """How long a recovered check must keep holding: two liveness intervals, so that each end has
    probed its peer (or heard from it) since the check first passed."""
    return 2 * int(lab.config["dpdDelay"])  # type: ignore[arg-type]


def boot_bound(lab: LabStack, vms: int = 1) -> int:
    """Seconds `vms` VMs rebooted at once may need until their tunnels carry traffic again."""
    boot = waits.shared_boot_seconds(waits.boot_seconds(str(lab.config["domainType"])), vms, waits.machine_cores())
    return round(boot) + liveness_bound(lab)


def first_nat_spoke(lab: LabStack) -> str:
    """The drills' default site: the first spoke behind NAT (the ADSL sites were), else the first spoke."""
    behind_nat = [spoke for spoke in lab.serving if lab.node_info[spoke]["behindNat"]]
    return (behind_nat or lab.serving)[0]


def pick_spoke(lab: LabStack, site: str | None) -> str:
    spoke = lab.check_site(site) if site else first_nat_spoke(lab)
    if spoke == names.HUB:
        raise click.BadParameter("this drill needs a spoke", param_hint="--site")
    return spoke


def overlay_flows(lab: LabStack, spoke: str, wait: float = 2) -> bool:
    """One don't-fragment ping from spoke to the hub's br0 address is answered within `wait` s (one
    only, not resent: the drills time a recovery to the poll)."""
    try:
        return ping_loss(lab.node(spoke), lab.bridge_ip(names.HUB), count=1, wait=wait)[0] == 1
    except TRANSIENT:
        return False


def flows(lab: LabStack) -> dict[str, bool]:
    """overlay_flows from every spoke the hub serves, spokes at once (each on its own connection), in spoke order."""
    return dict(zip(lab.serving, each_spoke(lab, lab.serving, overlay_flows)))


def all_flow(lab: LabStack) -> bool:
    return all(flows(lab).values())


# Set in the threads of together(): the lab was found healthy once, before any of its drills began.
_CHECKED = threading.local()


def require_healthy(lab: LabStack) -> None:
    """A drill starts only on a lab whose every spoke reaches the hub over the overlay."""
    if getattr(_CHECKED, "done", False):
        return
    broken = [spoke for spoke, flowing in flows(lab).items() if not flowing]
    if broken:
        raise click.ClickException(f"overlay traffic does not flow from {', '.join(broken)}: "
                                   f"run `python -m labctl verify {lab.name}` first")


def time_recovery(report: DrillReport, label: str, check: Callable[[], bool], bound: int, echo: Echo,
                  settle: float, since: float | None = None) -> float | None:
    """Seconds (from `since`, default now) until check() holds and still holds `settle` seconds
    later; a failure past the bound.

    A check that passes and fails again within `settle` (as when a late liveness verdict clears the
    SA that had just come back) is not a recovery: the wait goes on, and the report says so.
    Waits up to twice the bound so that a slow recovery still gets its figure.
    """
    start = since if since is not None else time.monotonic()
    while True:
        try:
            wait_until(label, check, timeout=start + 2 * bound - time.monotonic(), interval=2, progress=echo)
        except TimeoutError:
            report.figures[label] = None
            report.fail(f"{label}: no recovery within {2 * bound} s (bound {bound} s)")
            return None
        seconds = round(time.monotonic() - start, 1)
        time.sleep(settle)
        if holds(check):
            break
        report.lines.append(f"{label}: held at {seconds} s, lost again within {settle:.0f} s")
        echo(report.lines[-1])
    report.figures[label] = seconds
    verdict = "within" if seconds <= bound else "OVER"
    report.lines.append(f"{label:<44} {seconds:7.1f} s  ({verdict} the bound of {bound} s)")
    if seconds > bound:
        report.fail(f"{label} took {seconds} s, bound {bound} s")
    return seconds


def together(lab: LabStack, drills: Sequence[Callable[[], DrillReport]]) -> list[DrillReport]:
    """Drills on different spokes at once (each a call of a drill on its own LabStack): the lab is
    checked healthy once, before any starts, since each one breaks its own spoke at once and would
    make the others' own check fail. Two drills that change the same part (the hub itself, the
    NAT in front of a spoke, Pulumi's state) must not run together.

    Each runs in a daemon thread, joined one by one: an exception in the caller's thread (a test's
    timeout) ends the wait at once, where a thread pool's exit would join a hung drill for ever."""
    require_healthy(lab)
    reports: dict[int, DrillReport] = {}
    errors: dict[int, BaseException] = {}

    def run(index: int, drill: Callable[[], DrillReport]) -> None:
        _CHECKED.done = True
        try:
            reports[index] = drill()
        except BaseException as error:  # raised in the caller's thread below
            errors[index] = error
    threads = [threading.Thread(target=run, args=(index, drill), daemon=True, name=f"drill-{index}")
               for index, drill in enumerate(drills)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
    return [reports[index] for index in range(len(drills))]
