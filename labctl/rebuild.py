"""`labctl rebuild STACK SPOKE`: one spoke from scratch, as a broken or drifted spoke is repaired.

A spoke's payload is its seed's, applied once at first boot (by lab-seed or cloud-init): a spoke
whose VM no longer holds it gets a new disk, a new cloud-init disk and a new domain (`pulumi up
--replace` of those three, each deleted before its replacement: their libvirt names are fixed) and
boots as a new instance.
Nothing else changes: the hub keeps the spoke's side, which the new spoke dials as before.
"""
from __future__ import annotations

from typing import Any

import click

from lablib import names
from labctl.stack import LabStack

REBUILT_TYPES = ("libvirt:index/domain:Domain", "libvirt:index/volume:Volume",
                 "libvirt:index/cloudInitDisk:CloudInitDisk")


def spoke_urns(resources: list[dict[str, Any]], spoke: str) -> list[str]:
    """The URNs of spoke's domain, disk and cloud-init disk in an exported state's resources."""
    wanted = set(names.node_resources(spoke))
    urns = [r["urn"] for r in resources
            if r.get("type") in REBUILT_TYPES and r["urn"].rsplit("::", 1)[-1] in wanted and not r.get("delete")]
    if len(urns) != len(wanted):
        found = {urn.rsplit("::", 1)[-1] for urn in urns}
        raise click.ClickException(f"{spoke}: the stack's state lacks {', '.join(sorted(wanted - found))}: "
                                   "run `labctl up` first")
    return urns


def check_spoke(lab: LabStack, spoke: str) -> str:
    if spoke not in lab.spokes:
        raise click.BadParameter(f"{spoke!r} is not a spoke of stack {lab.name}; spokes: {', '.join(lab.spokes)}",
                                 param_hint="SPOKE")
    return spoke
