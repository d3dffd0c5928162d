"""labctl.host.capture with the real tcpdump, in a network namespace of the test's own (unshare -n)."""
from __future__ import annotations

import json
import subprocess
import sys
from functools import cache

from harness import ROOT

CAPTURE = """
import json, socket, click
from labctl import host
def send():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return sock.sendto(b"probe", ("127.0.0.1", 9999)) == 5
answered, lines = host.capture("lo", "udp port 9999", during=send)
try:
    host.capture("no-such-br0", "udp", during=send)
    refused = ""
except click.ClickException as error:
    refused = error.message
print(json.dumps({"answered": answered, "lines": lines, "refused": refused}))
"""

# The line a capture on another host runs, run here: it ends when its stdin does, long before its bound.
HELD = """
import json, socket, subprocess, time, click
from labctl import host
line = host.held_capture(["tcpdump", "-l", "-nn", "-p", "-i", "lo", "udp port 9999"], 60)
start = time.monotonic()
shell = subprocess.Popen(line, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
host._await_listening(shell.stderr.readline, "lo")
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.sendto(b"probe", ("127.0.0.1", 9999))
time.sleep(0.5)
shell.stdin.close()
lines = shell.stdout.read().splitlines()
shell.wait(timeout=30)
seconds = time.monotonic() - start
shell = subprocess.Popen(line.replace(" lo ", " no-such-br0 "), shell=True, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    host._await_listening(shell.stderr.readline, "no-such-br0")
    refused = ""
except click.ClickException as error:
    refused = error.message
ended = shell.wait(timeout=10) is not None  # by itself: its stdin is still open
print(json.dumps({"lines": lines, "seconds": seconds, "refused": refused, "ended": ended}))
"""


@cache
def in_own_namespace(code: str) -> dict[str, object]:
    """Run code in a new network namespace with its loopback up; its JSON line."""
    shell = f"ip link set lo up && exec {sys.executable} -c \"$0\""
    done = subprocess.run(["unshare", "-n", "sh", "-c", shell, code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_capture_begins_once_tcpdump_listens_and_sees_the_first_packet() -> None:
    found = in_own_namespace(CAPTURE)
    assert found["answered"] is True
    lines = found["lines"]
    assert isinstance(lines, list)
    assert len([line for line in lines if "127.0.0.1.9999: UDP, length 5" in line]) == 1


def test_a_tcpdump_that_cannot_listen_is_an_error_naming_the_bridge_and_its_words() -> None:
    refused = str(in_own_namespace(CAPTURE)["refused"])
    assert refused.startswith("tcpdump on no-such-br0 ended before it listened:")
    assert "no-such-br0" in refused.split(":", 1)[1]


def test_a_held_capture_ends_with_its_stdin_and_keeps_what_it_saw() -> None:
    found = in_own_namespace(HELD)
    assert len([line for line in found["lines"] if "127.0.0.1.9999: UDP, length 5" in line]) == 1  # type: ignore[union-attr]
    assert float(found["seconds"]) < 10  # type: ignore[arg-type]


def test_a_held_capture_whose_tcpdump_cannot_listen_ends_by_itself_with_the_error() -> None:
    found = in_own_namespace(HELD)
    assert str(found["refused"]).startswith("tcpdump on no-such-br0 ended before it listened:")
    assert found["ended"] is True
