"""Calls about every spoke run at once (labctl.fanout): the drills' health check and overlay check,
and `up`/`wait`'s polls. Fakes meet at barriers and wait on events, so a serial run would break a
barrier or time out, not merely be slower; the output keeps the spoke order."""
from __future__ import annotations

import threading
from collections.abc import Callable

import click
import pytest

import labctl.cli as labctl_cli
from lablib import waits
from labctl import drills, fanout
from labctl.stack import LabStack

SPOKES = ("spoke1", "spoke2", "spoke3", "spoke4")
WAIT = 5  # seconds a barrier or event waits before the test fails: only a broken overlap waits that long


def lab(spokes: tuple[str, ...] = SPOKES, **config: object) -> LabStack:
    nodes = {site: {"mgmtAddress": f"10.10.0.{n}", "behindNat": False, "bridgeAddress": f"10.20.0.{n}/24"}
             for n, site in enumerate(("hub", *spokes), 2)}
    return LabStack("ci", {"nodes": nodes}, {"domainType": "qemu", **config})


class Overlap:
    """Counts the calls running at once, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0

    def __enter__(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.running -= 1


def test_each_spoke_runs_all_at_once_on_labstacks_of_their_own_kept_between_calls() -> None:
    shared, barrier = lab(), threading.Barrier(len(SPOKES))
    seen: list[tuple[str, int]] = []

    def call(own: LabStack, spoke: str) -> str:
        barrier.wait(timeout=WAIT)  # broken unless every spoke's call runs at once
        seen.append((spoke, id(own)))
        return spoke.upper()
    assert fanout.each_spoke(shared, SPOKES, call) == [spoke.upper() for spoke in SPOKES]
    first = dict(seen)
    assert len(set(first.values())) == len(SPOKES) and id(shared) not in first.values() and not shared._nodes
    seen.clear()
    fanout.each_spoke(shared, SPOKES, call)
    assert dict(seen) == first, "a spoke's next call reuses its LabStack (and so its SSH connection)"


def test_each_spoke_is_bounded_and_raises_the_first_error_in_spoke_order_after_all_ended() -> None:
    overlap, ended = Overlap(), []
    spoke4_done = threading.Event()

    def call(own: LabStack, spoke: str) -> None:
        with overlap:
            if spoke == "spoke2":
                spoke4_done.wait(timeout=WAIT)
                raise RuntimeError("spoke2 failed")
            if spoke == "spoke4":
                spoke4_done.set()
                raise RuntimeError("spoke4 failed first")
            ended.append(spoke)
    with pytest.raises(RuntimeError, match="spoke2 failed"):
        fanout.each_spoke(lab(), SPOKES, call, threads=2)
    assert overlap.most == 2 and sorted(ended) == ["spoke1", "spoke3"]


def gated_flows(flowing: set[str]) -> Callable[[LabStack, str], bool]:
    """A fake overlay check: every spoke's ping waits for all the others; the last spoke answers first."""
    barrier, last_done = threading.Barrier(len(SPOKES)), threading.Event()

    def flows(own: LabStack, spoke: str) -> bool:
        barrier.wait(timeout=WAIT)
        if spoke == SPOKES[-1]:
            last_done.set()
        else:
            last_done.wait(timeout=WAIT)
        return spoke in flowing
    return flows


def test_a_drill_checks_every_spoke_at_once_and_names_the_broken_ones_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drills, "overlay_flows", gated_flows({"spoke1", "spoke3"}))
    with pytest.raises(click.ClickException, match=r"does not flow from spoke2, spoke4: run"):
        drills.require_healthy(lab())
    assert not drills.all_flow(lab())
    monkeypatch.setattr(drills, "overlay_flows", gated_flows(set(SPOKES)))
    assert drills.all_flow(lab())
    monkeypatch.setattr(drills, "overlay_flows", gated_flows(set(SPOKES)))
    drills.require_healthy(lab())


def test_up_polls_every_spoke_at_once_and_prints_in_spoke_order() -> None:
    """Stage one: every spoke's check meets at a barrier, spoke4 passes first; stage two passes for
    spoke1 and spoke3. A spoke whose connection drops (OSError) only stays where it was."""
    barrier, spoke4_passed = threading.Barrier(len(SPOKES)), threading.Event()

    def tunnel(own: LabStack, spoke: str) -> bool:
        barrier.wait(timeout=WAIT)
        if spoke == "spoke4":
            spoke4_passed.set()
        else:
            spoke4_passed.wait(timeout=WAIT)
        if spoke == "spoke2":
            raise OSError("connection reset by a booting VM")
        return True
    stages = [labctl_cli.Stage("tunnel", "IPsec", tunnel),
              labctl_cli.Stage("gre", "GRE", lambda own, spoke: spoke in ("spoke1", "spoke3"))]
    reached = dict.fromkeys(SPOKES, 0)
    lines = labctl_cli.advance(lab(), reached, stages)
    assert [line for line, _ in lines] == ["spoke1: tunnel", "spoke1: gre", "spoke3: tunnel", "spoke3: gre",
                                           "spoke4: tunnel"]
    assert reached == {"spoke1": 2, "spoke2": 0, "spoke3": 2, "spoke4": 1}
    checked: list[str] = []
    stages[1] = labctl_cli.Stage("gre", "GRE", lambda own, spoke: checked.append(spoke) or False)
    stages[0] = labctl_cli.Stage("tunnel", "IPsec", lambda own, spoke: checked.append(spoke) or False)
    assert labctl_cli.advance(lab(), reached, stages) == [] and sorted(checked) == ["spoke2", "spoke4"]


def test_the_wait_for_tunnels_scales_with_the_lab_unless_given() -> None:
    assert labctl_cli.tunnels_timeout(lab(("spoke1", "spoke2"))) == 1200  # the ci lab
    big = lab(tuple(f"spoke{n}" for n in range(1, 17)))
    assert labctl_cli.tunnels_timeout(big) == waits.scaled_wait(1200, 17, "qemu", waits.machine_cores())
