"""Look inside running lab VMs over SSH (paramiko): tunnel state and diagnostics.

Used by `tools/labctl.py wait` and by the end-to-end tests; everything runs
from inside the lab's network namespace, where the management network lives.
"""
from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

SSH_USER = "lab"


@dataclass
class Node:
    name: str
    host: str
    key_file: Path

    def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
        """Run command with sudo; return stdout (raise on failure when check)."""
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # fresh lab VMs, private network
        client.connect(self.host, username=SSH_USER, key_filename=str(self.key_file), timeout=10,
                       banner_timeout=30, auth_timeout=30, allow_agent=False, look_for_keys=False)
        try:
            _, stdout, stderr = client.exec_command(f"sudo sh -c {quote(command)}", timeout=timeout)
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            status = stdout.channel.recv_exit_status()
        finally:
            client.close()
        if check and status != 0:
            raise RuntimeError(f"{self.name}: `{command}` exited {status}: {err.strip() or out.strip()}")
        return out + ("" if check else err)

    def reachable(self) -> bool:
        try:
            self.run("true", timeout=10)
            return True
        except (OSError, paramiko.SSHException, RuntimeError):
            return False


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def cloud_init_done(node: Node) -> bool:
    """cloud-init's final stage has run (so has the payload's one-time ipsec restart)."""
    return "status: done" in node.run("cloud-init status", check=False)


def established_conns(node: Node) -> set[str]:
    """Conns with an established child SA (one traffic line each in `ipsec trafficstatus`)."""
    out = node.run("ipsec trafficstatus", check=False)
    return set(re.findall(r'"([^"]+)"[^,]*,\s*type=ESP', out))


def esp_bytes(node: Node, conn: str) -> tuple[int, int]:
    """(inBytes, outBytes) of conn's child SA from `ipsec trafficstatus`."""
    out = node.run("ipsec trafficstatus")
    for line in out.splitlines():
        if f'"{conn}"' in line:
            found = dict(re.findall(r"(inBytes|outBytes)=(\d+)", line))
            return int(found.get("inBytes", 0)), int(found.get("outBytes", 0))
    raise RuntimeError(f"{node.name}: no child SA for {conn} in: {out}")


def wait_until(what: str, check, timeout: float, interval: float = 5, progress=print) -> None:
    """Poll check() until true; report progress every minute; raise TimeoutError at timeout.

    A connection error inside check() counts as "not yet": booting VMs restart sshd.
    """
    def settled() -> bool:
        try:
            return check()
        except (OSError, paramiko.SSHException):
            return False

    start = time.monotonic()
    last_report = start
    while not settled():
        now = time.monotonic()
        if now - start > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        if now - last_report >= 60:
            progress(f"  still waiting for {what} ({now - start:.0f} s)")
            last_report = now
        time.sleep(interval)


def console_tail(domain: str, lines: int = 40) -> str:
    path = Path(f"/var/log/libvirt/qemu/{domain}-console.log")
    if not path.exists():
        return f"(no console log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def diagnostics(node: Node, domain: str) -> str:
    """What a failing run prints: console tail, IPsec and OVS state."""
    parts = [f"===== {node.name} ({node.host}) console tail =====", console_tail(domain)]
    if not node.reachable():
        return "\n".join(parts + [f"(SSH to {node.host} fails)"])
    for command in ("cloud-init status --long", "ipsec trafficstatus", "ipsec status | tail -n 20",
                    "ip xfrm state", "ip -d link show type xfrm; ip -d link show type vti",
                    "ovs-vsctl show", "ip -br addr", "journalctl -u ipsec -n 30 --no-pager"):
        parts += [f"----- {node.name}: {command}", node.run(command, check=False)]
    return "\n".join(parts)


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", *args], capture_output=True, text=True, check=False).stdout
