"""What the benchmark reads from a lab VM and from its qemu process.

A VM's boot is timed from the inside with the guest's own clock (monotonic,
seconds since its kernel started): systemd's unit timestamps, cloud-init's
stage timestamps (when cloud-init ran) and pluto's "established Child SA" journal line. The host
adds the one thing the guest cannot see: when libvirt started the domain.
"""
from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

from lablib import names
from tools.bench_lab import Node

# Units whose start the breakdown shows, in boot order.
UNITS = ("systemd-networkd.service", "cloud-init-local.service", names.SEED_UNIT, "cloud-init.service",
         "ssh.service", "openvswitch-switch.service", "multi-user.target", "cloud-final.service",
         "lab-network.service", "ipsec.service")

# Runs in the guest (python3 is in the image): one SSH round trip for the whole breakdown.
PROBE = r'''
import json, re, subprocess, time
def sh(c): return subprocess.run(c, shell=True, capture_output=True, text=True).stdout
up = float(open("/proc/uptime").read().split()[0]); boot = time.time() - up
try: v1 = json.load(open("/run/cloud-init/status.json"))["v1"]
except OSError: v1 = {}  # booted with lab-seed: its unit's times say it all
stages = {k: [round(v["start"] - boot, 1), round(v["finished"] - boot, 1)]
          for k, v in v1.items() if isinstance(v, dict) and v.get("start") and v.get("finished")}
def mono(unit, prop):
    v = sh(f"systemctl show -p {prop} --value {unit}").strip()
    return round(int(v) / 1e6, 1) if v.isdigit() and int(v) else None
units = {u: [mono(u, "InactiveExitTimestampMonotonic"), mono(u, "ActiveEnterTimestampMonotonic")] for u in UNITS}
# lab-seed is active once its local part is done (Type=notify); its process ends with the payload.
units[SEED + " (payload done)"] = [units[SEED][0], mono(SEED, "ExecMainExitTimestampMonotonic")]
m = re.search(r"^\[\s*([\d.]+)\].*established Child SA", sh("journalctl -o short-monotonic --no-pager -u ipsec"), re.M)
print(json.dumps({"analyze": sh("systemd-analyze").strip(), "stages": stages, "units": units,
                  "blame": sh("systemd-analyze blame --no-pager").splitlines()[:12],
                  "child_sa": float(m.group(1)) if m else None}))
'''


def boot_breakdown(node: Node) -> dict[str, object]:
    """Kernel/userspace split, cloud-init stages, unit starts and the tunnel, in guest seconds."""
    code = f"UNITS = {UNITS!r}; SEED = {names.SEED_UNIT!r}" + PROBE
    out = json.loads(node.run(f"python3 -c {_quote(code)}", timeout=90))
    found = re.search(r"in (.+?) \(kernel\).*?\+ (.+?) \(userspace\)", out["analyze"])
    if found:
        out["kernel_seconds"], out["userspace_seconds"] = (_seconds(found.group(1)), _seconds(found.group(2)))
    return out


def _seconds(text: str) -> float:
    """systemd's '2min 9.104s' / '812ms' -> seconds."""
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(min|ms|s)", text):
        total += float(number) * {"min": 60, "s": 1, "ms": 0.001}[unit]
    return round(total, 1)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def domain_started(domain: str, log_dir: Path = Path(names.QEMU_LOG_DIR)) -> float:
    """Epoch seconds at which libvirt last started the domain (its qemu log says so); log_dir is where
    this machine sees the log of the host that runs it."""
    log = (log_dir / f"{domain}.log").read_text(errors="replace")
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\+0000: starting up", log, re.M)
    if not stamps:
        raise RuntimeError(f"no 'starting up' line in the qemu log of {domain}")
    return datetime.strptime(stamps[-1] + "+0000", "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def qemu_process(domain: str) -> Path:
    """/proc/PID of the domain's qemu process."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"guest=" + domain.encode() + b"," in b" ".join(cmdline) and cmdline[0].endswith(b"qemu-system-x86_64"):
            return proc
    raise RuntimeError(f"no qemu process for domain {domain}")


def qemu_rss_mib(domain: str) -> float:
    """Resident memory of the domain's qemu process, in MiB."""
    kib = re.search(r"^VmRSS:\s+(\d+) kB", (qemu_process(domain) / "status").read_text(), re.M)
    assert kib, f"no VmRSS for domain {domain}"
    return round(int(kib.group(1)) / 1024, 1)


def qemu_cpu_seconds(domain: str) -> float:
    """CPU time the domain's qemu process has used (user + system): under emulation, the guest's work."""
    fields = (qemu_process(domain) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command_cpu_seconds(node: Node, domain: str, count: int = 20) -> float:
    """Guest CPU per command the lab sends a VM (`node.run("true")`: an `sh -c` in the connection's
    root shell, labctl/rootshell.py), less the VM's idle use over the same time: what every check
    and drill pays per command."""
    node.run("true")
    start, idle_start = time.monotonic(), qemu_cpu_seconds(domain)
    time.sleep(5)
    idle = (qemu_cpu_seconds(domain) - idle_start) / (time.monotonic() - start)
    start, used = time.monotonic(), qemu_cpu_seconds(domain)
    for _ in range(count):
        node.run("true")
    used = qemu_cpu_seconds(domain) - used - idle * (time.monotonic() - start)
    return round(used / count, 3)


