"""RootShell's protocol against a real local `sh` on pipes (the lab's SSH channels are proved by the e2e suite)."""
from __future__ import annotations

import os
import subprocess
import threading

import pytest

from labctl.rootshell import RootShell


class LocalChannel:
    """`sh` on pipes, with the part of paramiko's Channel RootShell uses (fileno: readable on news)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buffers = {"out": bytearray(), "err": bytearray()}
        self.lock = threading.Lock()
        self.ended = {"out": False, "err": False}
        self.closed = False
        self._wake_read, self._wake = os.pipe()
        os.set_blocking(self._wake_read, False)
        for stream, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(stream, pipe), daemon=True).start()

    def _pump(self, stream: str, pipe) -> None:  # type: ignore[no-untyped-def]
        while chunk := os.read(pipe.fileno(), 4096):
            with self.lock:
                self.buffers[stream] += chunk
            os.write(self._wake, b".")
        self.ended[stream] = True
        os.write(self._wake, b".")

    @property
    def eof_received(self) -> bool:
        return all(self.ended.values())

    def sendall(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _take(self, stream: str) -> bytes:
        with self.lock:
            data = bytes(self.buffers[stream])
            self.buffers[stream].clear()
            try:
                os.read(self._wake_read, 4096)
            except BlockingIOError:
                pass
        return data

    def recv(self, _nbytes: int) -> bytes:
        return self._take("out")

    def recv_stderr(self, _nbytes: int) -> bytes:
        return self._take("err")

    def recv_ready(self) -> bool:
        return bool(self.buffers["out"])

    def recv_stderr_ready(self) -> bool:
        return bool(self.buffers["err"])

    def exit_status_ready(self) -> bool:
        return self.proc.poll() is not None

    def fileno(self) -> int:
        return self._wake_read

    def close(self) -> None:
        self.closed = True
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def shell():  # type: ignore[no-untyped-def]
    channel = LocalChannel()
    yield RootShell(channel, "node")
    channel.close()


def test_each_command_gets_its_own_output_error_and_status(shell: RootShell) -> None:
    assert shell.run("echo one; echo two", timeout=10) == ("one\ntwo\n", "", 0)
    assert shell.run("printf no-newline; echo oops >&2; exit 3", timeout=10) == ("no-newline", "oops\n", 3)
    assert shell.run("true", timeout=10) == ("", "", 0)


def test_a_command_cannot_change_the_shell_or_read_the_next_command(shell: RootShell) -> None:
    assert shell.run("cd /; X=1; exit 7", timeout=10)[2] == 7
    before = shell.run("pwd", timeout=10)[0]
    assert shell.run("cat; echo read-nothing", timeout=10)[0] == "read-nothing\n"
    assert shell.run('echo "${X:-unset}"; pwd', timeout=10)[0] == "unset\n" + before


def test_large_output_and_a_marker_lookalike_come_back_whole(shell: RootShell) -> None:
    out, _, status = shell.run("head -c 300000 /dev/zero | od -An -v | head -c 1000000; echo lab-end-x 0", timeout=30)
    assert status == 0 and out.endswith("lab-end-x 0\n") and len(out) > 300000


def test_a_late_command_times_out(shell: RootShell) -> None:
    with pytest.raises(TimeoutError, match="sleep 5"):
        shell.run("sleep 5", timeout=0.5)


def test_an_ended_shell_says_so(shell: RootShell) -> None:
    shell.run("exit 0", timeout=10)  # the sh -c exits, not the shell
    assert shell.alive()
    with pytest.raises(EOFError, match="kill"):
        shell.run("kill -9 $PPID", timeout=10)
    assert not shell.alive()
