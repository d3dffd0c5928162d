"""verify's checks run site by site at once: the order of its report, the bound on threads, and
one LabStack (so one set of SSH connections) per thread; its pings resend within a deadline."""
from __future__ import annotations

import math
import threading
import time

import click
import pytest

from labctl import checks
from labctl.node import REACH_WAIT, Node, ping_loss, pings
from labctl.stack import LabStack

SITES = ("hub", "spoke1", "spoke2", "spoke3")


def lab() -> LabStack:
    nodes = {site: {"mgmtAddress": f"10.10.0.{n}", "behindNat": False} for n, site in enumerate(SITES, 2)}
    return LabStack("ci", {"nodes": nodes}, {})


class Recorder:
    """Fake checks that sleep, recording who ran where and how many ran at once."""

    def __init__(self, barrier: threading.Barrier | None = None, pause: float = 0.05) -> None:
        self.barrier, self.pause = barrier, pause
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.runs: list[tuple[str, str, float, float, int]] = []  # site, check, start, end, id of the LabStack

    def check(self, name: str) -> checks.Check:
        def run(lab_stack: LabStack, site: str) -> checks.Outcome:
            lab_stack.node(site)
            lab_stack.node("hub")
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            start = time.monotonic()
            if self.barrier is not None and name == "first":
                self.barrier.wait(timeout=5)  # broken (RuntimeError: a failed Result) unless all sites run at once
            time.sleep(self.pause)
            with self.lock:
                self.running -= 1
                self.runs.append((site, name, start, time.monotonic(), id(lab_stack)))
            return True, f"{name} on {site}"
        return run

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(checks, "CHECKS", [("first", self.check("first"), "all"),
                                               ("second", self.check("second"), "spokes"),
                                               ("third", self.check("third"), "all")])


SERIAL_ORDER = [("hub", "first"), ("hub", "third"),
                *((spoke, name) for spoke in SITES[1:] for name in ("first", "second", "third"))]


def test_sites_are_checked_at_once_and_reported_in_the_serial_order(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(threading.Barrier(len(SITES)))
    recorder.install(monkeypatch)
    results = list(checks.run_checks(lab()))
    assert [(r.node, r.check) for r in results] == SERIAL_ORDER
    assert all(r.passed for r in results), [r.evidence for r in results if not r.passed]
    assert recorder.most == len(SITES)  # every site's first check waited for all the others


def test_each_sites_checks_run_in_order_on_a_labstack_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    recorder.install(monkeypatch)
    shared = lab()
    list(checks.run_checks(shared))
    for site in SITES:
        runs = [run for run in recorder.runs if run[0] == site]
        assert [run[1] for run in runs] == [name for s, name in SERIAL_ORDER if s == site]
        assert all(earlier[3] <= later[2] for earlier, later in zip(runs, runs[1:]))
        assert len({run[4] for run in runs}) == 1, "one site's checks use one LabStack"
    overlapping = [(a, b) for a in recorder.runs for b in recorder.runs
                   if a[0] != b[0] and a[2] < b[3] and b[2] < a[3]]
    assert overlapping and all(a[4] != b[4] for a, b in overlapping), "checks at once share no SSH connection"
    assert id(shared) not in {run[4] for run in recorder.runs} and not shared._nodes


def test_threads_are_bounded_and_their_connections_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    recorder.install(monkeypatch)
    closed: list[str] = []
    monkeypatch.setattr(Node, "close", lambda node: closed.append(node.name))
    assert len(list(checks.run_checks(lab(), threads=2))) == len(SERIAL_ORDER)
    assert recorder.most == 2
    assert closed.count("hub") == 2 and sorted(set(closed)) == sorted(SITES)  # a hub connection per thread


def test_one_node_only(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder().install(monkeypatch)
    assert [(r.node, r.check) for r in checks.run_checks(lab(), "spoke2")] == [
        ("spoke2", "first"), ("spoke2", "second"), ("spoke2", "third")]


def test_an_error_a_check_does_not_report_still_stops_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """As before: run_check turns connection and command errors into failed Results; anything else
    (libvirt has no such network) ends verify with its one line, after the sites before it."""
    def broken(lab_stack: LabStack, site: str) -> checks.Outcome:
        if site == "spoke2":
            raise click.ClickException("libvirt has no network lab-ci-wan-spoke2")
        return True, "fine"
    monkeypatch.setattr(checks, "CHECKS", [("only", broken, "spokes")])
    seen: list[str] = []
    with pytest.raises(click.ClickException, match="no network"):
        for result in checks.run_checks(lab()):
            seen.append(result.node)
    assert seen == ["spoke1"]


class PingNode:
    """A node whose `ping` answers `answered` of what it sends, and that records the command."""

    def __init__(self, sent: int, answered: int) -> None:
        self.sent, self.answered, self.commands = sent, answered, []

    def run(self, command: str, timeout: float = 0, check: bool = True) -> str:
        self.commands.append(command)
        return f"{self.sent} packets transmitted, {self.answered} received"


def test_reachability_pings_resend_within_a_deadline_and_loss_figures_send_exactly_count() -> None:
    """pings() (verify) resends a lost ping until `count` are answered (ping -w: checked against Debian's
    iputils, 6 sent for 3 answered when every second echo is dropped); a loss figure sends exactly count."""
    late = PingNode(sent=4, answered=3)
    assert pings(late, "10.0.0.1", count=3)  # type: ignore[arg-type]
    assert f" -w {math.ceil(3 * 0.2 + REACH_WAIT)} " in late.commands[0]
    assert not pings(PingNode(sent=30, answered=2), "10.0.0.1", count=3)  # type: ignore[arg-type]
    exact = PingNode(sent=200, answered=104)
    assert ping_loss(exact, "10.0.0.1", 200, interval=0.1) == (104, 200)  # type: ignore[arg-type]
    assert " -w " not in exact.commands[0]
