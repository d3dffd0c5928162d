"""Pulumi operations with a time bound, and stopping the pulumi processes this process started.

The Automation API waits on its pulumi process for ever; a drill that hangs there hangs its whole
run (a CI run once spent its last 70 minutes in a drill that never ended, and printed nothing).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
# How long each signal of stop_pulumi_children gets to end them.
STOP_GRACE_SECONDS = 20


def within(seconds: float, what: str, operation: Callable[[], T]) -> T:
    """operation() (a Pulumi operation), or TimeoutError naming `what` once `seconds` have passed;
    the pulumi processes it started are stopped then, so that the stack's lock is free again."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = operation()
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error
    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        stop_pulumi_children(print)
        worker.join(STOP_GRACE_SECONDS)
        raise TimeoutError(f"{what}: not done within {seconds:.0f} s (its pulumi process was stopped)")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def stop_pulumi_children(echo: Callable[[str], None]) -> None:
    """Interrupt every pulumi process this process started (twice: the second Ctrl-C does not wait
    for the providers), then kill what is left: one left running holds the stack's lock, and every
    later operation on the stack would fail on it."""
    strays = {int(pid) for pid in subprocess.run(["pgrep", "-x", "-P", str(os.getpid()), "pulumi"],
                                                 capture_output=True, text=True).stdout.split()}
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
        for pid in strays:
            echo(f"stopping pulumi (pid {pid}) with {sig.name}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while strays and time.monotonic() < deadline:
            strays = {pid for pid in strays if not _exited(pid)}
            time.sleep(1)


def _exited(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) != (0, 0)
    except ChildProcessError:  # reaped already (by its Popen)
        return True
