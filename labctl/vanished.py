"""A lab whose libvirt objects vanished behind Pulumi's back: the host rebooted, or
`scripts/labns.sh stop` ran (both leave libvirt with nothing of the lab, but its files on disk).

The state still holds the objects. A refresh reads them as gone (the lab's build of the provider
does so for a volume whose pool is gone too: toolchain/libvirt-provider/tf-libvirt-gone.patch), and
the up that follows makes them anew. But the new pool finds the old files in its directory, and each
volume's create then fails ("storage volume ... exists already"). So `labctl up` and `labctl down`
first remove the files of each pool of the stack that libvirt on its host no longer has, when it
has no domain of the stack either (nothing can use them, and no other run is making them: a run of
the stack makes its pool first).
"""
from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lablib import names
from lablib.hostssh import is_remote
from labctl import host
from labctl.pending import provider_uris

POOL_TYPE = "libvirt:index/pool:Pool"


@dataclass(frozen=True)
class StatePool:
    """A storage pool of the stack: its name, directory and host (URI; "" = this machine)."""

    name: str
    path: str
    uri: str = ""

    @property
    def on(self) -> str:
        return self.uri if is_remote(self.uri) else ""  # a qemu+ssh host: commands run there

    def where(self) -> str:
        return f" on {self.uri}" if self.on else ""


def state_pools(deployment: dict[str, Any]) -> list[StatePool]:
    uris = provider_uris(deployment)
    found = []
    for resource in deployment.get("resources", []):
        inputs = resource.get("inputs") or {}
        path = (inputs.get("target") or {}).get("path")
        if resource.get("type") == POOL_TYPE and isinstance(inputs.get("name"), str) and isinstance(path, str):
            found.append(StatePool(inputs["name"], path, uris.get(resource.get("provider", ""), "")))
    return found


def configured_pools(stack: str, config: dict[str, Any]) -> list[StatePool]:
    """The pools the stack's config makes, one per host: where the files are when the state holds no
    pool (a destroy that found the lab gone already)."""
    path = names.pool_dir(str(config["poolPath"]), stack)
    hosts = config.get("hosts") or []
    return ([StatePool(names.stack_prefix(stack), path, str(h["uri"])) for h in hosts]
            or [StatePool(names.stack_prefix(stack), path)])


def forgotten(pool: StatePool, stack: str) -> bool:
    """libvirt on the pool's host knows neither the pool nor any domain of the stack."""
    if host.virsh("pool-info", pool.name, on=pool.on).strip():
        return False
    prefix = names.stack_prefix(stack) + "-"
    return not any(d.startswith(prefix) for d in host.virsh("list", "--all", "--name", on=pool.on).split())


def remove_forgotten_files(stack: str, deployment: dict[str, Any], config: dict[str, Any],
                           echo: Callable[[str], None]) -> None:
    """Remove the files of each pool of the state (of the config, if the state has none) whose host
    forgot it and every domain of the stack."""
    for pool in state_pools(deployment) or configured_pools(stack, config):
        if not pool.path.endswith("/" + names.stack_prefix(stack)) or not forgotten(pool, stack):
            continue  # only the stack's own directory (lablib.names.pool_dir), and only when unused
        files = host.run("find", pool.path, "-mindepth", "1", "-maxdepth", "1", "-type", "f",
                         check=False, on=pool.on).split()
        if files:
            host.run("sh", "-c", f"rm -f -- {shlex.join(files)}", on=pool.on)
            echo(f"removed {len(files)} file(s) of pool {pool.name}{pool.where()}, which libvirt no longer "
                 f"has (the host restarted, or the lab's namespace was stopped): {pool.path}")
