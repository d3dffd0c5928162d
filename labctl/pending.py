"""Interrupted runs: what a killed `pulumi up` began and never finished.

A `pulumi up` killed in the middle of a step leaves that step in the state's
pending operations: a create that may or may not have happened. For a libvirt
object it may well have: a domain, volume or network of that name then exists
outside the state, and the next create of it fails ("already exists"). Before
its up, `labctl up` ends what is left of the killed run (Pulumi starts its
plugins in process groups of their own, so they outlive a killed group and
could finish a create behind the recovery's back), removes those orphans, and
clears the pending operations with a refresh. The up that follows creates
them anew.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from lablib import names
from lablib.hostssh import is_remote
from labctl import host

# libvirt resource types -> the virsh noun of the object a create makes, and how to remove it.
KINDS = {
    "libvirt:index/domain:Domain": "domain",
    "libvirt:index/volume:Volume": "volume",
    "libvirt:index/cloudInitDisk:CloudInitDisk": "volume",
    "libvirt:index/network:Network": "network",
    "libvirt:index/pool:Pool": "pool",
}
_INFO = {"domain": "dominfo", "volume": "vol-info", "network": "net-info", "pool": "pool-info"}
_REMOVE = {"domain": (("destroy",), ("undefine",)), "volume": (("vol-delete",),),
           "network": (("net-destroy",), ("net-undefine",)), "pool": (("pool-destroy",), ("pool-undefine",))}
# The plugins a Pulumi run starts; with their parent gone they are the killed run's.
PLUGIN_MARKS = ("pulumi-language-", "pulumi-resource-", "pulumi-analyzer-")
PLUGIN_EXIT_SECONDS = 10


@dataclass(frozen=True)
class Orphan:
    """A libvirt object an interrupted create may have left, and the host it is on."""

    kind: str
    name: str
    pool: str = ""  # volumes only
    uri: str = ""  # the libvirt host's URI; "" = this machine's

    def virsh_args(self, *command: str) -> list[str]:
        return [*command, self.name, *(("--pool", self.pool) if self.pool else ())]

    def describe(self) -> str:
        where = f" on {self.uri}" if self.uri else ""
        return f"{self.kind} {self.name}{where}"


def pending(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment.get("pending_operations") or [])


def provider_uris(deployment: dict[str, Any]) -> dict[str, str]:
    """Provider reference ("URN::ID") -> its libvirt URI ("" for the default provider)."""
    return {f"{r['urn']}::{r.get('id', '')}": str((r.get("inputs") or {}).get("uri", ""))
            for r in deployment.get("resources", []) if r.get("type", "").startswith("pulumi:providers:")}


def orphans(deployment: dict[str, Any]) -> list[Orphan]:
    """The libvirt objects the pending creates name that no resource in the state owns."""
    owned = {(r["type"], (r.get("inputs") or {}).get("name")) for r in deployment.get("resources", [])}
    uris = provider_uris(deployment)
    found = []
    for operation in pending(deployment):
        resource = operation.get("resource", {})
        kind = KINDS.get(resource.get("type", ""))
        inputs = resource.get("inputs") or {}
        name = inputs.get("name")
        if operation.get("type") != "creating" or kind is None or not isinstance(name, str):
            continue
        if (resource["type"], name) in owned:
            continue
        pool = str(inputs.get("pool", "")) if kind == "volume" else ""
        found.append(Orphan(kind, name, pool, uris.get(resource.get("provider", ""), "")))
    return found


def remove(orphan: Orphan) -> bool:
    """Remove the object if libvirt has it; whether it had. (A domain not running cannot be
    destroyed, a network not started neither: only the last step must succeed.)"""
    on = orphan.uri if is_remote(orphan.uri) else ""  # a qemu+ssh host: virsh runs there
    if orphan.kind == "volume":
        host.virsh("pool-refresh", orphan.pool, on=on)  # a file the killed upload left, unknown to the pool
    if not host.virsh(*orphan.virsh_args(_INFO[orphan.kind]), on=on).strip():
        return False
    *first, last = _REMOVE[orphan.kind]
    for command in first:
        host.virsh(*orphan.virsh_args(*command), on=on)
    host.virsh(*orphan.virsh_args(*last), check=True, on=on)
    return True


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    command: str
    cwd: str


def processes(proc: Path = Path("/proc")) -> Iterator[Process]:
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        ppid = int(stat.rsplit(")", 1)[-1].split()[1])
        yield Process(int(entry.name), ppid, command, cwd)


def left_plugins(found: list[Process], project: Path) -> list[Process]:
    """Plugins whose Pulumi is gone (re-parented to init) that ran for this checkout's program
    (working directory in the checkout): a killed run's. Another checkout's are left alone."""
    root = str(project)
    return [p for p in found if p.ppid == 1 and any(mark in p.command for mark in PLUGIN_MARKS)
            and (p.cwd == root or p.cwd.startswith(root + "/"))]


def end_left_plugins(project: Path, echo: Callable[[str], None]) -> None:
    """End the plugins a killed run left, and wait until they are gone."""
    left = left_plugins(list(processes()), project)
    for process in left:
        echo(f"ending {process.command.split()[0].rsplit('/', 1)[-1]} (pid {process.pid}), left by an interrupted run")
        with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
            os.kill(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + PLUGIN_EXIT_SECONDS
    while left and time.monotonic() < deadline:
        left = [p for p in left if Path(f"/proc/{p.pid}").exists()]
        time.sleep(0.2)



def recover(stack: auto.Stack, echo: Callable[[str], None]) -> None:
    """Undo what an interrupted run of stack left half-done, saying what; nothing when none did."""
    end_left_plugins(names.PROJECT_DIR, echo)
    deployment = stack.export_stack().deployment or {}
    operations = pending(deployment)
    if not operations:
        return
    for orphan in orphans(deployment):
        if remove(orphan):
            echo(f"removed {orphan.describe()}, created by an interrupted run but not in the state")
    stack.refresh(clear_pending_creates=True, on_output=lambda line: None)
    echo(f"stack {stack.name}: cleared {len(operations)} operation(s) an interrupted run left pending "
         f"({', '.join(sorted({op['resource']['urn'].rsplit('::', 1)[-1] for op in operations}))})")
