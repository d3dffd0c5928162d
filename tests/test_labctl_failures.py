"""labctl's failures: a stale stack lock taken back, a live one refused in one line; any failure
of a command one line `labctl: ...`, the traceback only with --debug."""
from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pulumi import automation as auto

from labctl import host, locks
from labctl.cli import cli
from labctl.failures import one_line

BOOTED = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
HERE = "vm"


def lock_message(*lines: str) -> str:
    """A ConcurrentUpdateError's text as the Automation API makes it from pulumi's stderr."""
    stderr = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
              "or delete the lock file with `pulumi cancel`.\n" + "\n".join(f"  {line}" for line in lines))
    return str(auto.errors.ConcurrentUpdateError(auto.CommandResult(stdout="", stderr=stderr, code=255)))


def lock(host_name: str = HERE, pid: int = 5237, taken: str = "2026-12-03T10:15:00Z") -> locks.Lock:
    url = "file:///work/.lab/state/.pulumi/locks/organization/lab/local/0c5e.json"
    return locks.parse_locks(lock_message(f"{url}: created by root@{host_name} (pid {pid}) at {taken}"))[0]


def test_the_lock_line_of_pulumis_error_is_read() -> None:
    """As pulumi 3.274's file backend words it (the URL keeps the backend's query)."""
    url = "file:///work/.lab/state/.pulumi/locks/organization/lab/local/0c5e5a3c-1b0e.json?no_tmp_dir=true"
    found = locks.parse_locks(lock_message(f"{url}: created by root@vm (pid 5237) at 2026-12-03T10:15:00+01:00"))
    assert found == [locks.Lock(url, "root", "vm", 5237, datetime(2026, 12, 3, 9, 15, tzinfo=timezone.utc))]
    assert found[0].path() == Path("/work/.lab/state/.pulumi/locks/organization/lab/local/0c5e5a3c-1b0e.json")
    assert locks.parse_locks(lock_message()) == []


@pytest.mark.parametrize(("the_lock", "running", "stale"), [
    (lock(), set(), True),  # this machine, pid gone: the killed `labctl up`
    (lock(), {5237}, False),  # this machine, pid running: a live update
    (lock(taken="2026-12-03T07:00:00Z"), {5237}, True),  # taken before the machine booted: the pid is another's now
    (lock(host_name="laptop"), set(), False),  # another machine: its pid says nothing here
    (lock(taken="yesterday"), {5237}, False),  # a time not understood: the pid decides
])
def test_a_lock_is_stale_only_when_its_process_is_gone_from_this_machine(
        the_lock: locks.Lock, running: set[int], stale: bool) -> None:
    assert locks.is_stale(the_lock, HERE, running.__contains__, BOOTED) is stale


def test_a_held_lock_is_one_line_saying_what_to_do() -> None:
    assert locks.held_line("local", [lock()], HERE) == (
        "stack local is locked by pulumi pid 5237 (root@vm, since 2026-12-03T10:15:00+00:00), which is still "
        "running: wait for it to end (or stop it) and try again")
    assert "another machine" in locks.held_line("local", [lock(host_name="laptop")], HERE)
    assert "scripts/pulumi.sh local cancel" in locks.held_line("local", [lock(host_name="laptop")], HERE)


@pytest.mark.parametrize("url", ["s3://bucket/.pulumi/locks/organization/lab/local/x.json",
                                 "file:///etc/passwd", "file:///state/.pulumi/locks/organization/lab/local/"])
def test_only_a_local_lock_file_is_ever_removed(url: str) -> None:
    assert locks.Lock(url, "root", HERE, 1, None).path() is None


def planted_lock(state: Path, pid: int) -> tuple[Path, str]:
    """A lock file (and its blob store's sidecar) in a file backend, and the error pulumi gives for it."""
    path = state / ".pulumi" / "locks" / "organization" / "lab" / "local" / "0c5e.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    path.with_name(path.name + ".attrs").write_text("{}")
    taken = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return path, lock_message(f"file://{path}?no_tmp_dir=true: created by root@{socket.gethostname()} "
                              f"(pid {pid}) at {taken}")


def gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_stale_lock_is_removed_with_one_line_and_the_update_runs(tmp_path: Path) -> None:
    path, message = planted_lock(tmp_path, gone_pid())
    calls: list[str] = []
    said: list[str] = []

    def update() -> str:
        calls.append("up")
        if len(calls) == 1:
            raise auto.errors.ConcurrentUpdateError(auto.CommandResult(stdout="", stderr=message, code=255))
        return "done"

    assert locks.run_unlocked("local", update, said.append) == "done"
    assert calls == ["up", "up"] and list(path.parent.iterdir()) == []
    assert len(said) == 1 and said[0].startswith("stack local: removed the lock left by pulumi pid")


def test_a_live_lock_is_one_clear_error_and_stays(tmp_path: Path) -> None:
    path, message = planted_lock(tmp_path, os.getpid())

    def update() -> str:
        raise auto.errors.ConcurrentUpdateError(auto.CommandResult(stdout="", stderr=message, code=255))

    with pytest.raises(click.ClickException, match=r"^stack local is locked by pulumi pid \d+ .*still running"):
        locks.run_unlocked("local", update, print)
    assert path.exists()


def failing(error: BaseException, monkeypatch: pytest.MonkeyPatch):
    def enter(stack: str) -> None:
        raise error
    monkeypatch.setattr(host, "enter_lab_namespace", enter)


@pytest.mark.parametrize(("error", "line"), [
    (RuntimeError("boom\nmore detail"), "labctl: RuntimeError: boom (--debug shows the traceback)\n"),
    (click.ClickException("stack local is not up"), "labctl: stack local is not up\n"),
    (auto.errors.CommandError(auto.CommandResult(
        stdout="Updating (local):\n", stderr="error: could not read plugin [libvirt]: no such file\n", code=255)),
     "labctl: pulumi failed: could not read plugin [libvirt]: no such file (--debug shows the traceback)\n"),
])
def test_a_failing_command_says_one_line(error: BaseException, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    failing(error, monkeypatch)
    result = CliRunner().invoke(cli, ["diagnose", "local"])
    assert (result.exit_code, result.output) == (1, line)


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    failing(RuntimeError("boom"), monkeypatch)
    result = CliRunner().invoke(cli, ["--debug", "diagnose", "local"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_a_pulumi_error_without_an_error_line_gives_its_exit_code() -> None:
    assert one_line(auto.errors.CommandError(auto.CommandResult(stdout="", stderr="", code=7))) == \
        "pulumi failed: exit code 7"
