"""The lab's side of the host: its network namespace, libvirt's view of a site's WAN.

The lab's bridges, NAT rules and packets exist only in the namespace where
libvirtd runs; every command here acts there, never on the host's own
interfaces. Commands that need it re-execute the CLI inside it. A lab on
several hosts (lab:hosts) is reached the way the hosts' URIs say: a command
for a site on a qemu+ssh host (`on`: its URI) runs there over SSH.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
import paramiko

from lablib import hostssh, names
from labctl.stack import spans_hosts

NETNS_DIR = Path("/run/netns")
T = TypeVar("T")
CAPTURE_SECONDS = 60  # the most a capture on a remote host lasts if this side never ends it
TCPDUMP_LISTENING = "listening on "  # what tcpdump writes to stderr once it captures
# What tcpdump writes to stderr on SIGUSR1. Its kernel count includes drops; on a loopback device it
# also counts the outgoing copy that libpcap skips, so there the counts never meet (CAPTURE_DRAIN_SECONDS).
TCPDUMP_COUNTS = re.compile(r"(?P<captured>\d+) packets? captured, (?P<received>\d+) packets? received by filter, "
                            r"(?P<dropped>\d+) packets? dropped by kernel")
CAPTURE_DRAIN_SECONDS = 5  # the longest a capture waits for tcpdump to print what its filter took


def in_lab_namespace() -> bool:
    own = os.stat("/proc/self/ns/net")
    lab = os.stat(NETNS_DIR / names.NETNS)
    return (own.st_dev, own.st_ino) == (lab.st_dev, lab.st_ino)


def enter_lab_namespace(stack: str) -> None:
    """Re-run this command inside the lab's namespace (where SSH to the VMs works) unless already there,
    or unless the stack spans hosts: then it runs where Pulumi does, and reaches each host over SSH."""
    if spans_hosts(stack):
        return
    if not (NETNS_DIR / names.NETNS).exists():
        raise click.ClickException(f"network namespace {names.NETNS} is absent, so no lab is up "
                                   "(`make up` starts it)")
    if in_lab_namespace():
        return
    if os.geteuid() != 0:
        raise click.ClickException("the lab's commands need root (network namespace, libvirt)")
    env = {**os.environ, "PYTHONPATH": str(names.PROJECT_DIR)}
    sys.stdout.flush()
    os.execvpe("ip", ["ip", "netns", "exec", names.NETNS, sys.executable, "-m", "labctl", *sys.argv[1:]], env)


_CLIENTS: dict[str, paramiko.SSHClient] = {}
_CLIENTS_LOCK = threading.Lock()  # verify checks sites from several threads: one login per host


def _host(uri: str) -> paramiko.SSHClient:
    """One SSH connection per host for the life of the command (reopened if it broke); its
    sessions may run from several threads at once (paramiko's transport multiplexes them)."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(uri)
        transport = client.get_transport() if client else None
        if client is None or transport is None or not transport.is_active():
            try:
                client = _CLIENTS[uri] = hostssh.HostLogin.of(uri).connect()
            except (OSError, paramiko.SSHException) as error:
                raise click.ClickException(f"cannot log in to host {uri}: {error}") from None
        return client


def run(*command: str, check: bool = True, timeout: float = 60, on: str = "", stdin: str = "") -> str:
    """Run a host command (in the lab's namespace, where the CLI runs, or on host `on`); stdout."""
    if on:
        status, out, err = hostssh.run(_host(on), list(command), timeout, stdin)
    else:
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        status, out, err = result.returncode, result.stdout, result.stderr
    if check and status != 0:
        where = f" on {on}" if on else ""
        raise click.ClickException(f"`{' '.join(command)}`{where} exited {status}: {err.strip()}")
    return out


def virsh(*args: str, check: bool = False, on: str = "") -> str:
    return run("virsh", "-q", *args, check=check, on=on)


def domain_state(domain: str, on: str = "") -> str:
    """'running', 'shut off', ... or '' when libvirt does not know the domain."""
    return virsh("domstate", domain, on=on).strip()


def wan_bridge(stack: str, site: str, on: str = "") -> str:
    """The Linux bridge libvirt made for a site's WAN network (virbrN)."""
    network = names.wan_network_name(stack, site)
    found = re.search(r"^Bridge:\s+(\S+)", virsh("net-info", network, on=on), re.MULTILINE)
    if not found:
        raise click.ClickException(f"libvirt has no network {network}: is stack {stack} up?")
    return found.group(1)


def wan_tap(stack: str, site: str, on: str = "") -> str:
    """The host side of a VM's WAN NIC (vnetN on the site's WAN bridge), from `virsh domiflist`."""
    network = names.wan_network_name(stack, site)
    for line in virsh("domiflist", names.domain_name(stack, site), on=on).splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == network:
            return fields[0]
    raise click.ClickException(f"{names.domain_name(stack, site)} has no NIC on {network}: is its VM running?")


def bridge_address(bridge: str, on: str = "") -> str:
    """The IPv4 address libvirt gave a bridge (a NAT'd spoke reaches the hub from the hub bridge's)."""
    found = re.search(r"inet ([0-9.]+)/", run("ip", "-4", "-o", "addr", "show", "dev", bridge, on=on))
    if not found:
        raise click.ClickException(f"bridge {bridge} has no IPv4 address")
    return found.group(1)


def nft(script: str, on: str = "") -> None:
    """Apply an nftables script atomically (all or nothing)."""
    try:
        run("nft", "-f", "-", stdin=script, on=on)
    except click.ClickException as error:
        raise click.ClickException(f"nft failed: {error.message}\n{script}") from None


def capture(bridge: str, expression: str, during: Callable[[], T], on: str = "", payload: bool = False,
            seconds: int = CAPTURE_SECONDS) -> tuple[T, list[str]]:
    """(what during() returned, tcpdump's lines) of a capture on bridge while during() runs, begun once
    tcpdump listens and ended once it has printed every packet its filter took; with payload, each
    packet's bytes as text too (tcpdump -A). It runs here or on host `on`, at most `seconds`."""
    command = ["tcpdump", "-l", "-nn", "-p", *(["-A"] if payload else []), "-i", bridge, expression]
    line = held_capture(command, seconds)
    if on:
        stdin, stdout, stderr = _host(on).exec_command(line, timeout=seconds + 30)
        end = stdin.channel.shutdown_write
    else:
        process = subprocess.Popen(line, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        stdin, stdout, stderr, end = process.stdin, process.stdout, process.stderr, process.stdin.close

    def ask() -> None:
        """A line on the held capture's stdin: tcpdump's counts on its stderr."""
        stdin.write(b"\n")
        stdin.flush()
    try:
        _await_listening(stderr.readline, bridge)
        result = during()
        time.sleep(0.5)
        _drain(ask, stderr.readline)
    finally:
        end()
    lines = stdout.read().decode(errors="replace").splitlines()
    if not on:
        process.wait(timeout=10)
    return result, lines


def held_capture(command: list[str], seconds: int) -> str:
    """A shell line that runs the capture command until its stdin ends (this side is done, or gone),
    and at most `seconds`: so a capture on another host ends with the traffic it watches. Each line on
    its stdin asks tcpdump for its counts (SIGUSR1: one line on stderr). A command that ends by itself
    (tcpdump with no such interface) ends the line at once."""
    bounded = shlex.join(["timeout", "-s", "INT", str(seconds), *command])
    # A background list's stdin is /dev/null: the reader gets the line's own through fd 3. The
    # command is timeout's child (timeout passes SIGUSR1 on to nobody).
    script = (f"exec 3<&0; {bounded} & capture=$!; "
              "{ while read -r _ <&3; do pkill -USR1 -P $capture; done; kill -INT $capture; } > /dev/null 2>&1 & "
              "wait $capture")
    return f"sh -c {shlex.quote(script)}"


def _drain(ask: Callable[[], None], readline: Callable[[], str | bytes]) -> None:
    """Return once tcpdump's counts say it printed what its filter took (or dropped), or after
    CAPTURE_DRAIN_SECONDS: tcpdump stopped while it lags loses the packets it had not read yet (a test
    in CI, beside the other lane's VMs, lost its one packet after a 0.5 s wait so)."""
    deadline = time.monotonic() + CAPTURE_DRAIN_SECONDS
    while time.monotonic() < deadline:
        try:
            ask()
        except OSError:
            return  # the capture ended (its bound): what it printed is all there is
        line = readline()
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        if not text:
            return  # as above
        counts = TCPDUMP_COUNTS.search(text)
        if counts and int(counts["captured"]) + int(counts["dropped"]) >= int(counts["received"]):
            return
        time.sleep(0.1)


def _await_listening(readline: Callable[[], str | bytes], bridge: str) -> None:
    """Return once tcpdump says it listens on bridge; raise with what it said if it ends first. (A
    fixed 1.5 s missed the first ping of a capture on a remote host under load: 8 of 10 ESP packets.)"""
    said: list[str] = []
    while True:
        line = readline()
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        if not text:
            raise click.ClickException(f"tcpdump on {bridge} ended before it listened: {' '.join(said)}")
        if TCPDUMP_LISTENING in text:
            return
        said.append(text.strip())
