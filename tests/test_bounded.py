"""No wait of a drill is endless: a hung Pulumi operation ends with its pulumi process stopped, and a
caller interrupted (a test's timeout) is not held by a drill thread that never ends."""
from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from labctl import bounded, drills
from labctl.drills import DrillReport
from tests.test_labctl import lab_with


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> Path:
    """A process named pulumi that never ends by itself (a copy of sleep)."""
    program = tmp_path / "pulumi"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    return program


def hang_with_pulumi(program: str, pid_file: str) -> None:
    """In the spawned process: start a pulumi that never ends, say its pid, wait for it."""
    process = subprocess.Popen([program, "600"])
    Path(pid_file).write_text(str(process.pid))
    process.wait()


def fail(why: str) -> None:
    raise ValueError(why)


@pytest.mark.parametrize("caller_sigint", [signal.default_int_handler, signal.SIG_IGN], ids=["foreground", "background"])
def test_a_hung_operation_ends_at_the_first_sigint_with_its_whole_session_stopped(
        fake_pulumi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller_sigint: object) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored, and its children
    inherit that: the session must end at the first SIGINT all the same, not at SIGKILL."""
    monkeypatch.setattr(bounded, "STOP_SIGNALS", (signal.SIGINT, signal.SIGKILL))
    previous = signal.signal(signal.SIGINT, caller_sigint)
    pid_file = tmp_path / "pid"
    begin = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="pulumi up: not done within 3 s"):
            bounded.isolated(3, "pulumi up", hang_with_pulumi, str(fake_pulumi), str(pid_file))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - begin < 3 + bounded.STOP_GRACE_SECONDS
    pulumi = int(pid_file.read_text())
    assert not Path(f"/proc/{pulumi}").exists() or "Z" in Path(f"/proc/{pulumi}/stat").read_text().split()[2]


def test_an_operation_gives_its_value_or_its_own_error() -> None:
    assert bounded.isolated(60, "pulumi up", divmod, 7, 2) == (3, 1)
    with pytest.raises(RuntimeError, match="pulumi up: ValueError: bad"):
        bounded.isolated(60, "pulumi up", fail, "bad")


class Interrupted(Exception):
    pass


@pytest.fixture
def alarm_in() -> Iterator[None]:
    """SIGALRM after 0.5 s raises Interrupted in the main thread: what pytest-timeout does (its own
    alarm is off meanwhile)."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted()
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_a_caller_interrupted_is_not_held_by_a_hung_drill(monkeypatch: pytest.MonkeyPatch, alarm_in: None) -> None:
    monkeypatch.setattr(drills, "overlay_flows", lambda lab, spoke: True)
    never = threading.Event()

    def hung() -> DrillReport:
        never.wait()
        return DrillReport("drift")
    begin = time.monotonic()
    with pytest.raises(Interrupted):
        drills.together(lab_with(), [lambda: DrillReport("redial"), hung])
    assert time.monotonic() - begin < 5
    never.set()


def test_a_drill_that_raises_raises_in_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drills, "overlay_flows", lambda lab, spoke: True)

    def broken() -> DrillReport:
        raise RuntimeError("spoke2: `true` exited 1")
    with pytest.raises(RuntimeError, match="spoke2"):
        drills.together(lab_with(), [lambda: DrillReport("redial"), broken])
