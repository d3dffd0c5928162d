"""Stack locks left behind: take back the lock of a Pulumi process that is gone, refuse a live one.

The file backend keeps one lock file per running update (.pulumi/locks/.../ID.json, with
the pid, user and host of the pulumi that took it; ID.json.attrs beside it). A pulumi
killed with its `labctl up` (a closed terminal, a crash) leaves its lock, and every later
update stops with ConcurrentUpdateError naming it. A lock taken on this machine by a pid
that runs no more, or before this machine last booted, is stale: labctl removes its files,
says so and goes on. It removes only the files it judged: `pulumi cancel` removes every
lock of the stack, one a live pulumi took meanwhile too.
"""
from __future__ import annotations

import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import click
from pulumi import automation as auto

T = TypeVar("T")

# One line per lock in the error (pulumi's diy backend, checkForLock):
#   URL: created by USER@HOST (pid PID) at RFC3339-TIME
_LOCK_LINE = re.compile(r"^\s*(?P<url>\S+): created by (?P<user>.*)@(?P<host>[^@\s]*) \(pid (?P<pid>\d+)\) "
                        r"at (?P<taken>\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Lock:
    """One lock file as Pulumi's error names it."""

    url: str
    user: str
    host: str
    pid: int
    taken: datetime | None  # None: a time this parser does not read

    def describe(self) -> str:
        since = f", since {self.taken.isoformat()}" if self.taken else ""
        return f"pulumi pid {self.pid} ({self.user}@{self.host}{since})"

    def path(self) -> Path | None:
        """The lock file, when the backend is a local directory and the URL is a lock's."""
        parts = urllib.parse.urlsplit(self.url)
        path = Path(urllib.parse.unquote(parts.path))
        if parts.scheme != "file" or "/.pulumi/locks/" not in path.as_posix() or path.suffix != ".json":
            return None
        return path


def parse_locks(message: str) -> list[Lock]:
    """The locks a ConcurrentUpdateError's text names (none if Pulumi's wording changed)."""
    return [Lock(m["url"], m["user"], m["host"], int(m["pid"]), _time(m["taken"]))
            for m in _LOCK_LINE.finditer(message)]


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def is_stale(lock: Lock, hostname: str, running: Callable[[int], bool], booted: datetime) -> bool:
    """Left by a process that is gone: taken on this machine, before it booted or by a pid not running.
    A lock of another machine is never stale here: its pid says nothing on this one."""
    if lock.host != hostname:
        return False
    return (lock.taken is not None and lock.taken < booted) or not running(lock.pid)


def held_line(stack: str, held: list[Lock], hostname: str) -> str:
    """The one line for locks labctl must not take back."""
    where = [lock for lock in held if lock.host != hostname]
    if where:
        return (f"stack {stack} is locked by {where[0].describe()} on another machine: if that update no longer "
                f"runs, `scripts/pulumi.sh {stack} cancel` removes the lock")
    return (f"stack {stack} is locked by {held[0].describe()}, which is still running: "
            "wait for it to end (or stop it) and try again")


def pid_running(pid: int) -> bool:
    """The pid is a process of this machine that has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: keep the lock
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def boot_time() -> datetime:
    """When this machine last booted (/proc/stat's btime)."""
    found = re.search(r"^btime (\d+)$", Path("/proc/stat").read_text(), re.MULTILINE)
    return datetime.fromtimestamp(int(found.group(1)) if found else 0, timezone.utc)


def remove_stale(stack: str, message: str, echo: Callable[[str], None]) -> None:
    """Remove the lock files message names if every one is stale; otherwise one ClickException line."""
    locks = parse_locks(message)
    if not locks:
        first = next((line for line in message.splitlines() if "locked" in line), message.strip())
        raise click.ClickException(f"stack {stack} is locked: {first.strip()}")
    hostname, booted = socket.gethostname(), boot_time()
    held = [lock for lock in locks if not is_stale(lock, hostname, pid_running, booted)]
    if held:
        raise click.ClickException(held_line(stack, held, hostname))
    files = [(lock, path) for lock in locks if (path := lock.path()) is not None]
    if len(files) < len(locks):
        lock = next(lock for lock in locks if lock.path() is None)
        raise click.ClickException(f"stack {stack} is locked by {lock.describe()}, which no longer runs, at "
                                   f"{lock.url}: `scripts/pulumi.sh {stack} cancel` removes the lock")
    for lock, path in files:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".attrs").unlink(missing_ok=True)  # the blob store's sidecar
        echo(f"stack {stack}: removed the lock left by {lock.describe()}, which no longer runs")


def run_unlocked(stack: str, operation: Callable[[], T], echo: Callable[[str], None]) -> T:
    """operation() (a Pulumi update of stack); once more after removing stale locks that stopped it."""
    try:
        return operation()
    except auto.errors.ConcurrentUpdateError as error:
        remove_stale(stack, str(error), echo)
    return operation()
