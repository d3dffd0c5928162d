"""A drill's Pulumi operation with a time bound, in a process of its own.

The Automation API waits on its pulumi process for ever, and serves the engine's events from a gRPC
server in the caller's process. A CI run once hung for its last 70 minutes, printing nothing, in the
drill stage that ran it in a thread beside another drill's (the cause was not found). So a drill
runs its Pulumi operation in a spawned process, in a session of its own, and ends that whole session
when the bound has passed: nothing of it is left in the drill's process, or holding the stack's lock.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

# How long each signal gets to end the session it was sent to.
STOP_GRACE_SECONDS = 20
# SIGINT twice (the second Ctrl-C does not wait for the providers), then SIGKILL.
STOP_SIGNALS = (signal.SIGINT, signal.SIGINT, signal.SIGKILL)


def isolated(seconds: float, what: str, function: Callable[..., Any], *args: Any) -> Any:
    """function(*args) in a spawned process (function and its value picklable); TimeoutError naming
    `what` once `seconds` have passed, after that process's whole session (its pulumi and providers
    too) was stopped; RuntimeError with the child's error if it raised."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_serve, args=(send, function, args), name=what, daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            _stop_session(child)
            raise TimeoutError(f"{what}: not done within {seconds:.0f} s (its processes were stopped)")
        try:
            failed, value = receive.recv()
        except EOFError:
            child.join(STOP_GRACE_SECONDS)
            raise RuntimeError(f"{what}: its process ended without an answer (exit {child.exitcode})") from None
    finally:
        receive.close()
    child.join(STOP_GRACE_SECONDS)
    if failed:
        raise RuntimeError(f"{what}: {value}")
    return value


def _serve(send: Connection, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """The child's side: a session of its own (so the parent can end it whole), SIGINT answered even
    where the caller ignores it (a background job of a script does: its pulumi would ignore the stop
    too), then the answer."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        answer = (False, function(*args))
    except Exception as error:  # the parent raises it, as text: not every error pickles
        answer = (True, f"{type(error).__name__}: {error}")
    send.send(answer)
    send.close()


def _stop_session(child: BaseProcess) -> None:
    session = child.pid
    assert session is not None, "stopping a process that never started"
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, sig)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and _session_alive(child):
            time.sleep(0.5)
        if not _session_alive(child):
            return


def _session_alive(child: BaseProcess) -> bool:
    """The child, or anything left in its session (a pulumi it started outlives it until killed)."""
    child.join(0)  # reaps it once it has ended
    return child.is_alive() or subprocess.run(["pgrep", "-s", str(child.pid)], capture_output=True).returncode == 0
