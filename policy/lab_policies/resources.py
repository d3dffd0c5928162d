"""The resource types the pack judges, and small readers of their values for checks and messages."""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Iterator

from .plumbing import Res, is_unknown


LAB = "lab:index:Lab"
NETWORKS = "lab:index:LabNetworks"
NODE = "lab:index:LabNode"
TUNNEL = "lab:index:Tunnel"
DOMAIN = "libvirt:index/domain:Domain"
NETWORK = "libvirt:index/network:Network"
DYNAMIC = "pulumi-python:dynamic:Resource"


def as_number(value: Any) -> int | None:
    """An integer input (numbers arrive as floats), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def as_network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=False) if text and not is_unknown(text) else None
    except ValueError:
        return None


def as_address(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text)) if text and not is_unknown(text) else None
    except ValueError:
        return None


def as_interface(text: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    try:
        return ipaddress.ip_interface(str(text)) if text and not is_unknown(text) else None
    except ValueError:
        return None


def label_of(r: Res) -> str:
    """How a message names a resource, e.g. "Tunnel lab-spoke1-tunnel"."""
    kind = "dynamic resource" if r.type == DYNAMIC else r.type.rsplit(":", 1)[-1]
    return f"{kind} {r.name}"


def show(value: Any) -> str:
    """A value for a message: numbers arrive as floats."""
    return repr(int(value) if isinstance(value, float) and value.is_integer() else value)


def duplicates(items: Iterable[tuple[Any, Res]]) -> Iterator[tuple[Any, Res, Res]]:
    """(value, first, later) for every later resource that repeats a value."""
    first: dict[Any, Res] = {}
    for value, r in items:
        if value in (None, "") or is_unknown(value):
            continue
        if value in first:
            yield value, first[value], r
        else:
            first[value] = r
