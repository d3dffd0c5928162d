"""labctl.host.capture with the real tcpdump, in a network namespace of the test's own (unshare -n)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache

from harness import ROOT

CAPTURE = """
import json, os, signal, socket, subprocess, threading, time, click
from labctl import host
def send():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return sock.sendto(b"probe", ("10.9.0.2", 9999)) == 5
def lagging():
    # tcpdump stopped before the packet and for a second after: it reads nothing until then, as
    # under load. (This pid namespace holds no other tcpdump.)
    pid = int(subprocess.run(["pgrep", "-x", "tcpdump"], capture_output=True, text=True, check=True).stdout)
    os.kill(pid, signal.SIGSTOP)
    threading.Timer(1.0, os.kill, (pid, signal.SIGCONT)).start()
    return send()
start = time.monotonic()
answered, lines = host.capture("a0", "udp port 9999", during=send)
seconds = time.monotonic() - start
_, lagged = host.capture("a0", "udp port 9999", during=lagging)
try:
    host.capture("no-such-br0", "udp", during=send)
    refused = ""
except click.ClickException as error:
    refused = error.message
print(json.dumps({"answered": answered, "lines": lines, "seconds": seconds, "lagged": lagged, "refused": refused}))
"""

# The line a capture runs (here or on another host) for a tcpdump that cannot listen, its stdin left open.
HELD = """
import json, subprocess, click
from labctl import host
line = host.held_capture(["tcpdump", "-l", "-nn", "-p", "-i", "no-such-br0", "udp"], 60)
shell = subprocess.Popen(line, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
try:
    host._await_listening(shell.stderr.readline, "no-such-br0")
    refused = ""
except click.ClickException as error:
    refused = error.message
ended = shell.wait(timeout=10) is not None  # by itself: its stdin is still open
print(json.dumps({"refused": refused, "ended": ended}))
"""
# A veth whose far end answers nothing, and a neighbour that needs no ARP: a packet sent to 10.9.0.2
# leaves a0 once (on loopback tcpdump's counts never meet, see host.TCPDUMP_COUNTS).
VETH = ("ip link add a0 type veth peer name b0 && ip addr add 10.9.0.1/24 dev a0 && ip link set a0 up && "
        "ip link set b0 up && ip neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev a0")
PROBE = "10.9.0.1.* > 10.9.0.2.9999: UDP, length 5"


@cache
def in_own_namespace(code: str) -> dict[str, object]:
    """Run code in new network and pid namespaces with a veth of their own; its JSON line."""
    shell = f"{VETH} && exec {sys.executable} -c \"$0\""
    done = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", shell, code], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def probes(lines: object) -> int:
    assert isinstance(lines, list)
    return sum(bool(re.search(PROBE, line)) for line in lines)


def test_a_capture_begins_once_tcpdump_listens_and_sees_the_first_packet() -> None:
    found = in_own_namespace(CAPTURE)
    assert found["answered"] is True
    assert probes(found["lines"]) == 1
    assert float(found["seconds"]) < 10  # type: ignore[arg-type]  # ended with this side, not its 60 s bound


def test_a_capture_keeps_the_packets_tcpdump_had_not_read_when_this_side_was_done() -> None:
    assert probes(in_own_namespace(CAPTURE)["lagged"]) == 1


def test_a_tcpdump_that_cannot_listen_is_an_error_naming_the_bridge_and_its_words() -> None:
    refused = str(in_own_namespace(CAPTURE)["refused"])
    assert refused.startswith("tcpdump on no-such-br0 ended before it listened:")
    assert "no-such-br0" in refused.split(":", 1)[1]


def test_a_held_capture_whose_tcpdump_cannot_listen_ends_by_itself_with_the_error() -> None:
    found = in_own_namespace(HELD)
    assert str(found["refused"]).startswith("tcpdump on no-such-br0 ended before it listened:")
    assert found["ended"] is True
