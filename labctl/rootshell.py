"""One root shell per SSH connection to a lab VM, each command run in it instead of an exec of its own.

An exec channel per command starts the login shell, sudo and sh: about 0.28 s of the guest's CPU
under emulation, most of what a check or a poll costs the VM (docs/performance.md). In one
`sudo sh` kept open, a command costs its own `sh -c`: about 0.045 s.

Each command runs as `sh -c` (so `exit`, `cd` and variables stay its own) with stdin from
/dev/null (it cannot eat the next command); a marker with a fresh random name ends its stdout,
with its exit status, and its stderr.
"""
from __future__ import annotations

import re
import select
import shlex
import time
import uuid
from typing import Protocol

START = "sudo sh"
CHUNK = 65536


class Channel(Protocol):
    """The part of paramiko's Channel the shell uses."""

    closed: bool
    eof_received: bool

    def sendall(self, data: bytes) -> None: ...
    def recv(self, nbytes: int) -> bytes: ...
    def recv_stderr(self, nbytes: int) -> bytes: ...
    def recv_ready(self) -> bool: ...
    def recv_stderr_ready(self) -> bool: ...
    def exit_status_ready(self) -> bool: ...
    def fileno(self) -> int: ...


class RootShell:
    """Commands, one at a time, through one shell on `channel` (already started with START)."""

    def __init__(self, channel: Channel, name: str) -> None:
        self.channel, self.name = channel, name

    def alive(self) -> bool:
        """False once the shell has ended (it died, or the VM's sshd closed it)."""
        channel = self.channel
        return not (channel.closed or channel.eof_received or channel.exit_status_ready())

    def run(self, command: str, timeout: float) -> tuple[str, str, int]:
        """(stdout, stderr, exit status) of command. TimeoutError past timeout, EOFError if the
        shell ends first (the VM rebooted, sshd went): the shell is then of no further use."""
        mark = f"lab-end-{uuid.uuid4().hex}"
        self.channel.sendall((f"sh -c {shlex.quote(command)} </dev/null; printf '\\n{mark} %d\\n' $?; "
                              f"printf '\\n{mark}\\n' >&2\n").encode())
        end_out = re.compile(rb"\n" + mark.encode() + rb" (\d+)\n")
        end_err = b"\n" + mark.encode() + b"\n"
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while not ((found := end_out.search(out)) and err.endswith(end_err)):
            if not self._read(out, err, deadline):
                raise TimeoutError(f"{self.name}: `{command}` not done within {timeout:.0f} s")
            if not self.alive() and not (self.channel.recv_ready() or self.channel.recv_stderr_ready()):
                raise EOFError(f"{self.name}: the shell ended during `{command}`")
        return (out[:found.start()].decode(errors="replace"), err[:-len(end_err)].decode(errors="replace"),
                int(found.group(1)))

    def _read(self, out: bytearray, err: bytearray, deadline: float) -> bool:
        """Take whatever has come on either stream, waiting for it (False: the deadline passed)."""
        channel = self.channel
        if channel.recv_ready():
            out += channel.recv(CHUNK)
        elif channel.recv_stderr_ready():
            err += channel.recv_stderr(CHUNK)
        elif (remaining := deadline - time.monotonic()) <= 0:
            return False
        elif self.alive():
            select.select([channel], [], [], min(remaining, 1))
        return True
