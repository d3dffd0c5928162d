"""The lab's side of the host: its network namespace, libvirt's view of a site's WAN.

The lab's bridges, NAT rules and packets exist only in the namespace where
libvirtd runs; every command here acts there, never on the host's own
interfaces. Commands that need it re-execute the CLI inside it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click

from lablib import names

NETNS_DIR = Path("/run/netns")


def in_lab_namespace() -> bool:
    own = os.stat("/proc/self/ns/net")
    lab = os.stat(NETNS_DIR / names.NETNS)
    return (own.st_dev, own.st_ino) == (lab.st_dev, lab.st_ino)


def enter_lab_namespace() -> None:
    """Re-run this command inside the lab's namespace (where SSH to the VMs works) unless already there."""
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


def run(*command: str, check: bool = True, timeout: float = 60) -> str:
    """Run a host command (in the lab's namespace, where the CLI runs); stdout."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise click.ClickException(f"`{' '.join(command)}` exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def virsh(*args: str, check: bool = False) -> str:
    return run("virsh", "-q", *args, check=check)


def domain_state(domain: str) -> str:
    """'running', 'shut off', ... or '' when libvirt does not know the domain."""
    return virsh("domstate", domain).strip()


def wan_bridge(stack: str, site: str) -> str:
    """The Linux bridge libvirt made for a site's WAN network (virbrN)."""
    network = names.wan_network_name(stack, site)
    found = re.search(r"^Bridge:\s+(\S+)", virsh("net-info", network), re.MULTILINE)
    if not found:
        raise click.ClickException(f"libvirt has no network {network}: is stack {stack} up?")
    return found.group(1)


def wan_tap(stack: str, site: str) -> str:
    """The host side of a VM's WAN NIC (vnetN on the site's WAN bridge), from `virsh domiflist`."""
    network = names.wan_network_name(stack, site)
    for line in virsh("domiflist", names.domain_name(stack, site)).splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == network:
            return fields[0]
    raise click.ClickException(f"{names.domain_name(stack, site)} has no NIC on {network}: is its VM running?")


def bridge_address(bridge: str) -> str:
    """The IPv4 address libvirt gave a bridge (a NAT'd spoke reaches the hub from the hub bridge's)."""
    found = re.search(r"inet ([0-9.]+)/", run("ip", "-4", "-o", "addr", "show", "dev", bridge))
    if not found:
        raise click.ClickException(f"bridge {bridge} has no IPv4 address")
    return found.group(1)


def nft(script: str) -> None:
    """Apply an nftables script atomically (all or nothing)."""
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"nft failed: {result.stderr.strip()}\n{script}")
