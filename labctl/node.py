"""Look inside running lab VMs over SSH (paramiko): tunnel state, counters, diagnostics.

Everything runs from inside the lab's network namespace, where the
management network lives (the CLI enters it by itself); a VM on a remote
host of lab:hosts is reached through that host (SSH jump host).
"""
from __future__ import annotations

import json
import math
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from lablib import names
from lablib.hostssh import HostLogin, channel_to
from labctl.rootshell import START, RootShell

# A connection error means "not yet" while a VM boots or reboots (sshd restarts).
TRANSIENT = (OSError, EOFError, paramiko.SSHException)


@dataclass
class Node:
    """One lab VM, reached over its management address; the SSH connection is reused."""

    name: str
    host: str
    key_file: Path
    jump_uri: str = ""  # the URI of the VM's host when its management network is reached through it
    _client: paramiko.SSHClient | None = field(default=None, repr=False, compare=False)
    _jump: paramiko.SSHClient | None = field(default=None, repr=False, compare=False)
    _shell: RootShell | None = field(default=None, repr=False, compare=False)
    _shell_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _connect(self) -> paramiko.SSHClient:
        transport = self._client.get_transport() if self._client else None
        if self._client is None or transport is None or not transport.is_active():
            self.close()
            if self.jump_uri:
                self._jump = HostLogin.of(self.jump_uri).connect()
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # fresh lab VMs, private network
            client.connect(self.host, username=names.SSH_USER, key_filename=str(self.key_file), timeout=10,
                           banner_timeout=30, auth_timeout=30, channel_timeout=30, allow_agent=False,
                           look_for_keys=False, sock=channel_to(self._jump, self.host) if self._jump else None)
            # A VM that reboots or freezes under us must break the connection, not hang a read.
            client.get_transport().set_keepalive(5)  # type: ignore[union-attr]
            self._client = client
        return self._client

    def close(self) -> None:
        self._shell = None  # its channel goes with the connection
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
        """Run command as root; return stdout (raise RuntimeError on failure when check).

        Without check, stderr is appended so that callers can show what went wrong. The command
        runs in the connection's root shell (rootshell.py); in an exec channel of its own while
        another thread has that shell busy.
        """
        try:
            if self._shell_lock.acquire(blocking=False):
                try:
                    out, err, status = self._root_shell().run(command, timeout)
                finally:
                    self._shell_lock.release()
            else:
                out, err, status = self._exec(command, timeout)
        except TRANSIENT:
            self.close()  # the next command reconnects (the VM may have rebooted)
            raise
        if check and status != 0:
            raise RuntimeError(f"{self.name}: `{command}` exited {status}: {err.strip() or out.strip()}")
        return out + ("" if check else err)

    def _root_shell(self) -> RootShell:
        if self._shell is None or not self._shell.alive():
            channel = self._connect().get_transport().open_session(timeout=30)  # type: ignore[union-attr]
            channel.exec_command(START)
            self._shell = RootShell(channel, self.name)
        return self._shell

    def _exec(self, command: str, timeout: float) -> tuple[str, str, int]:
        _, stdout, stderr = self._connect().exec_command(f"sudo sh -c {shlex.quote(command)}", timeout=timeout)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        # recv_exit_status() has no timeout: a lost exit-status message would block for ever.
        if not stdout.channel.status_event.wait(timeout):
            raise TimeoutError(f"{self.name}: no exit status from `{command}` within {timeout:.0f} s")
        return out, err, stdout.channel.exit_status

    def reachable(self) -> bool:
        try:
            self.run("true", timeout=10)
            return True
        except (*TRANSIENT, RuntimeError):
            return False


# What says the first-boot payload has run: lab-seed's status on a VM booted with it
# (names.CLOUD_INIT_OFF), else cloud-init's (its final stage).
PAYLOAD_STATUS = f"cat {names.SEED_STATUS} 2>/dev/null || cloud-init status"


def payload_done(node: Node) -> bool:
    """The first-boot payload has run (so has its one-time ipsec start)."""
    return "status: done" in node.run(PAYLOAD_STATUS, check=False)


def _established(trafficstatus: str) -> set[str]:
    return set(re.findall(r'"([^"]+)"[^,]*,\s*type=ESP', trafficstatus))


def established_conns(node: Node) -> set[str]:
    """Conns with an established child SA (one traffic line each in `ipsec trafficstatus`)."""
    return _established(node.run("ipsec trafficstatus", check=False))


def tunnel_up(node: Node, conn: str) -> bool:
    """Reachable, the payload applied and conn's child SA established. One command: every poll of a
    wait costs the VM it waits for about a quarter of a CPU-second per command (docs/performance.md)."""
    try:
        out = node.run(f"{PAYLOAD_STATUS}; ipsec trafficstatus", timeout=10, check=False)
    except TRANSIENT:
        return False
    return "status: done" in out and conn in _established(out)


def esp_bytes(node: Node, conn: str) -> tuple[int, int]:
    """(inBytes, outBytes) of conn's child SAs from `ipsec trafficstatus`, summed: a rekey, or a
    retry that crossed an established IKE SA, leaves two for a while and only one carries traffic."""
    out = node.run("ipsec trafficstatus")
    found = [dict(re.findall(r"(inBytes|outBytes)=(\d+)", line)) for line in out.splitlines()
             if f'"{conn}"' in line and "type=ESP" in line]
    if not found:
        raise RuntimeError(f"{node.name}: no child SA for {conn} in: {out.strip() or '(no SA)'}")
    return (sum(int(sa.get("inBytes", 0)) for sa in found), sum(int(sa.get("outBytes", 0)) for sa in found))


def peer_addresses(node: Node, conn: str) -> set[str]:
    """Addresses node's established instances of conn talk to (the hub sees NAT'd spokes post-NAT)."""
    out = node.run("ipsec trafficstatus", check=False)
    return set(re.findall(rf'"{re.escape(conn)}"(?:\[\d+\])? ([0-9.]+),\s*type=ESP', out))


# Reachability pings (pings(), verify's ping checks) resend a lost or late ping until `count` are
# answered, within their schedule plus this: under emulation, on a machine running two labs, a reply
# has come after ping's own linger (two round trips) and a healthy path failed verify.
REACH_WAIT = 5


def _ping_command(address: str, count: int, size: int | None, dont_fragment: bool, interval: float,
                  wait: float, resend: bool) -> str:
    options = f"-s {size - 28}" if size else ""
    options += " -M do" if dont_fragment else " -M dont"
    options += f" -w {math.ceil(count * interval + REACH_WAIT)}" if resend else ""
    return f"ping -q -n -c {count} -i {interval} -W {wait} {options} {shlex.quote(address)}"


def _received_sent(out: str, count: int) -> tuple[int, int]:
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if not found:
        return 0, count  # "message too long" and friends: nothing left the node
    return int(found.group(2)), int(found.group(1))


def ping_loss(node: Node, address: str, count: int, size: int | None = None, dont_fragment: bool = True,
              interval: float = 0.2, wait: float = 2, resend: bool = False) -> tuple[int, int]:
    """(received, sent) of `count` pings of `size` bytes (IP packet), DF set or explicitly cleared.
    resend: ping on until `count` are answered or the deadline (ping -w) passes; for a loss figure
    leave it off, so that exactly `count` are sent."""
    out = node.run(_ping_command(address, count, size, dont_fragment, interval, wait, resend),
                   timeout=count * interval + wait + REACH_WAIT + 30, check=False)
    return _received_sent(out, count)


def ping_loss_each(node: Node, addresses: list[str], count: int, interval: float = 0.2,
                   wait: float = 2, at_once: int | None = None) -> dict[str, tuple[int, int]]:
    """ping_loss(resend=True) from node to every address, in one command: one SSH exec however many
    addresses (one after the other, each spoke's pings to the others made `verify` grow with the
    square of the spokes). Pinged `at_once` at a time (all at once without it), each group after
    the last; each ping's lines are tagged with its address."""
    size = at_once or len(addresses) or 1
    groups = [addresses[i:i + size] for i in range(0, len(addresses), size)]
    tagged = "; ".join(" ".join(f"{{ {_ping_command(address, count, None, True, interval, wait, True)} 2>&1 | "
                                f"sed 's/^/{address} /'; }} &" for address in group) + " wait" for group in groups)
    one = count * interval + wait + REACH_WAIT
    out = node.run(tagged, timeout=one * len(groups) + 30, check=False)
    lines = out.splitlines()
    return {address: _received_sent("\n".join(line for line in lines if line.startswith(f"{address} ")), count)
            for address in addresses}


def pings(node: Node, address: str, count: int = 3, size: int | None = None) -> bool:
    """`count` don't-fragment pings answered (a lost one sent again, within the deadline)."""
    return ping_loss(node, address, count, size, resend=True)[0] >= count


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 5,
               progress: Callable[[str], None] = print) -> float:
    """Poll check() until true; report progress every minute; return the seconds it took.

    Raise TimeoutError at timeout. A connection error inside check() counts as "not yet".
    """
    start = time.monotonic()
    last_report = start
    while not holds(check):
        now = time.monotonic()
        if now - start > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        if now - last_report >= 60:
            progress(f"  still waiting for {what} ({now - start:.0f} s)")
            last_report = now
        time.sleep(interval)
    return time.monotonic() - start


def holds(check: Callable[[], bool]) -> bool:
    """check(), with a connection error counting as "no" (a VM rebooting drops its SSH)."""
    try:
        return check()
    except TRANSIENT:
        return False


def console_tail(domain: str, lines: int = 40) -> str:
    path = Path(names.console_log_path(domain))
    if not path.exists():
        return f"(no console log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def diagnostics(node: Node, domain: str) -> str:
    """What a failing run prints: console tail, IPsec and OVS state."""
    parts = [f"===== {node.name} ({node.host}) console tail =====", console_tail(domain)]
    if not node.reachable():
        return "\n".join(parts + [f"(SSH to {node.host} fails)"])
    for command in (f"{PAYLOAD_STATUS} --long", "ipsec trafficstatus",
                    "ipsec status | tail -n 20", "ip xfrm state", "ip -d link show type xfrm; ip -d link show type vti",
                    "ovs-vsctl show", "ip -br addr", "journalctl -u ipsec -n 30 --no-pager"):
        parts += [f"----- {node.name}: {command}", node.run(command, check=False)]
    return "\n".join(parts)


def goodput_mbps(client: Node, server: Node, address: str, seconds: int = 8, port: int = 5201) -> float:
    """TCP goodput client -> server at address (iperf3, received side), Mbit/s; one server per port,
    for one test (-1), so that several clients can measure at once."""
    server.run(f"iperf3 -s -1 -D -p {port} && sleep 1")
    report = json.loads(client.run(f"iperf3 -J -t {seconds} -p {port} -c {address}", timeout=seconds + 60))
    return round(report["end"]["sum_received"]["bits_per_second"] / 1e6, 1)
