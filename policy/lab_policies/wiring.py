"""Wiring: tunnel ends mirror each other; each spoke has one tunnel to the one hub; domains have cloud-init."""
from __future__ import annotations

import re
from typing import Any

from pulumi_policy import ResourceValidationArgs, StackValidationArgs

from .plumbing import Report, Res, components, is_unknown, of_type, plan, resource_policy, stack_policy
from .resources import (
    DOMAIN, LAB, NODE, TUNNEL, as_address, as_interface, as_network, as_number, duplicates, label_of, show)


IFNAMSIZ = 15  # Linux interface names (OVS ports are interfaces) have at most 15 characters


def check_tunnel_ends(r: Res, _args: ResourceValidationArgs, report: Report) -> None:
    hub, spoke = r.get("hubEnd") or {}, r.get("spokeEnd") or {}
    hub_port, spoke_port = r.get("hubPort") or {}, r.get("spokePort") or {}
    pairs = [
        ("hubEnd.localId", hub.get("localId"), "spokeEnd.remoteId", spoke.get("remoteId")),
        ("hubEnd.remoteId", hub.get("remoteId"), "spokeEnd.localId", spoke.get("localId")),
        ("hubEnd.localOverlay", hub.get("localOverlay"), "spokeEnd.remoteOverlay", spoke.get("remoteOverlay")),
        ("hubEnd.remoteOverlay", hub.get("remoteOverlay"), "spokeEnd.localOverlay", spoke.get("localOverlay")),
        ("hubEnd.localAddress", hub.get("localAddress"), "spokeEnd.remoteAddress", spoke.get("remoteAddress")),
        ("hubEnd.ike", hub.get("ike"), "spokeEnd.ike", spoke.get("ike")),
        ("hubEnd.esp", hub.get("esp"), "spokeEnd.esp", spoke.get("esp")),
        ("hubEnd.tunnelMark", hub.get("tunnelMark"), "spokeEnd.tunnelMark", spoke.get("tunnelMark")),
        ("hubPort.localIp", hub_port.get("localIp"), "spokePort.remoteIp", spoke_port.get("remoteIp")),
        ("hubPort.remoteIp", hub_port.get("remoteIp"), "spokePort.localIp", spoke_port.get("localIp")),
        ("hubPort.key", hub_port.get("key"), "spokePort.key", spoke_port.get("key")),
        # GRE runs between the overlay addresses the IPsec policy covers.
        ("hubPort.localIp", hub_port.get("localIp"), "hubEnd.localOverlay", hub.get("localOverlay")),
        ("spokePort.localIp", spoke_port.get("localIp"), "spokeEnd.localOverlay", spoke.get("localOverlay")),
    ]
    for left, a, right, b in pairs:
        if a != b and not is_unknown(a) and not is_unknown(b):
            report(f"{label_of(r)}: {left} = {show(a)} but {right} = {show(b)}: the two ends must mirror each other.")
    if r.has("greKey") and bool(r.get("greKey")) != (hub_port.get("key") is not None):
        report(f"{label_of(r)}: greKey is {r.get('greKey')} but hubPort.key is {hub_port.get('key')!r}: "
               "set a GRE key on both ports exactly when greKey is true.")
    for name, end in (("hubEnd", hub), ("spokeEnd", spoke)):
        mark, interface = as_number(end.get("tunnelMark")), end.get("interfaceName")
        if end.get("interfaceMode") == "xfrm" and mark is not None and interface != f"ipsec{mark}":
            report(f"{label_of(r)}: {name}.interfaceName is {interface!r} but libreswan names the XFRM interface "
                   f"with ID {mark} ipsec{mark}: use ipsec{mark}.")
    names = [("hubPort.name", hub_port.get("name")), ("spokePort.name", spoke_port.get("name")),
             ("hubEnd.interfaceName", hub.get("interfaceName")),
             ("spokeEnd.interfaceName", spoke.get("interfaceName"))]
    for field, value in names:
        if not isinstance(value, str) or is_unknown(value):
            continue
        if not value or len(value) > IFNAMSIZ or re.search(r"[\s/:]", value):
            report(f"{label_of(r)}: {field} {value!r} is not a valid Linux interface name (1-{IFNAMSIZ} "
                   "characters, no spaces, '/' or ':'): shorten it.")
    pool = as_network(r.get("overlayPool"))
    overlays = [("hubEnd.localOverlay", hub.get("localOverlay")), ("spokeEnd.localOverlay", spoke.get("localOverlay"))]
    for field, value in overlays:
        address = as_address(value)
        if pool is not None and address is not None and address not in pool:
            report(f"{label_of(r)}: {field} {value} is outside overlayPool {pool}: take overlay addresses from "
                   "lab:overlayPool.")
    if as_address(hub.get("localOverlay")) is not None and hub.get("localOverlay") == spoke.get("localOverlay"):
        report(f"{label_of(r)}: hub and spoke share overlay address {hub.get('localOverlay')}: give each its own.")


tunnel_ends_agree = resource_policy(
    "tunnel-ends-agree",
    "Both ends of a tunnel mirror each other (IDs, overlays, proposals, mark, GRE ports); names fit Linux. "
    "The kind of route-based interface is each end's own (it never shows on the wire).",
    (TUNNEL,), check_tunnel_ends)


def check_wiring(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    nodes = components(args, resources, NODE, "role")
    tunnels = components(args, resources, TUNNEL, "spoke")
    hubs = [n for n in nodes if n.get("role") == "hub"]
    spokes = [n for n in nodes if n.get("role") == "spoke"]
    by_site: dict[Any, list[Res]] = {}
    for t in tunnels:
        by_site.setdefault(t.get("spoke"), []).append(t)
    for n in spokes:
        found = by_site.get(n.get("site"), [])
        if len(found) != 1:
            names = ", ".join(t.name for t in found) or "none"
            report(f"{label_of(n)} has {len(found)} tunnels to the hub ({names}): every spoke needs exactly one "
                   "Tunnel (one per spoke in lab:spokes).", n.urn)
            continue
        t = found[0]
        spoke_end = t.get("spokeEnd") or {}
        for field, mine in (("localId", "ikeId"), ("localOverlay", "overlayAddress")):
            if spoke_end.get(field) != n.get(mine):
                report(f"{label_of(t)}: spokeEnd.{field} is {spoke_end.get(field)!r} but {label_of(n)} has "
                       f"{mine} {n.get(mine)!r}: the tunnel must use the spoke's own values.", t.urn)
    known_sites = {n.get("site") for n in spokes}
    for site, found in by_site.items():
        if site not in known_sites:
            for t in found:
                report(f"{label_of(t)} leads to {site!r}, which is not a spoke of this lab: remove it or add the "
                       "spoke.", t.urn)
    if len(hubs) == 1:
        hub = hubs[0]
        for t in tunnels:
            hub_end = t.get("hubEnd") or {}
            for field, mine in (("localId", "ikeId"), ("localOverlay", "overlayAddress"),
                                ("localAddress", "wanAddress")):
                if hub_end.get(field) != hub.get(mine):
                    report(f"{label_of(t)}: hubEnd.{field} is {hub_end.get(field)!r} but the hub {label_of(hub)} has "
                           f"{mine} {hub.get(mine)!r}: the tunnel must use the hub's values.", t.urn)
    for value, first, later in duplicates((n.get("overlayAddress"), n) for n in nodes):
        report(f"{label_of(later)} has overlay address {value}, as {label_of(first)} does: overlay addresses must be "
               "unique (hub .1, spoke N .N+1 of lab:overlayPool).", later.urn)
    for value, first, later in duplicates(((t.get("hubPort") or {}).get("name"), t) for t in tunnels):
        report(f"{label_of(later)}'s hub GRE port {value} has the same name as {label_of(first)}'s: both live on the "
               "hub's br0, so each needs its own name.", later.urn)
    bridges = [(n, as_interface(n.get("bridgeAddress"))) for n in nodes]
    for value, first, later in duplicates((b.ip if b else None, n) for n, b in bridges):
        report(f"{label_of(later)} has bridge address {value}, as {label_of(first)} does: every site needs its own "
               "br0 address.", later.urn)
    subnets = {b.network for _n, b in bridges if b is not None}
    if len(subnets) > 1:
        report(f"the sites' br0 addresses are in different subnets ({', '.join(map(str, sorted(subnets)))}): "
               "the shared L2 segment needs one lab:bridgeSubnet.")
    for lab in of_type(resources, LAB):
        planned, hub_id = as_number(lab.get("spokes")), lab.get("hubId")
        if planned is not None and planned != len(spokes):
            report(f"{label_of(lab)} plans {planned} spokes but {len(spokes)} spoke nodes exist: every spoke in "
                   "lab:spokes needs its node and tunnel.", lab.urn)
        if len(hubs) == 1 and hub_id is not None and hub_id != hubs[0].get("ikeId"):
            report(f"{label_of(lab)} has hubId {hub_id!r} but the hub node's ikeId is {hubs[0].get('ikeId')!r}: "
                   "use one hub ID.", lab.urn)


hub_spoke_wiring = stack_policy(
    "hub-spoke-wiring",
    "Every spoke has exactly one tunnel to the hub, with the nodes' own IDs and addresses; overlay and "
    "bridge addresses and hub GRE ports are unique.",
    check_wiring)


def check_cloudinit(args: StackValidationArgs, report: Report) -> None:
    for d in of_type(plan(args), DOMAIN):
        if d.get("cloudinit") in (None, ""):
            report(f"{label_of(d)} has no cloudinit disk: without it the VM never gets its network, keys and "
                   "tunnel config; attach the node's CloudInitDisk.", d.urn)


domains_have_cloudinit = stack_policy(
    "domains-have-cloudinit",
    "Every libvirt domain boots with a cloud-init disk.",
    check_cloudinit)


def check_single_hub(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    hubs = [n for n in components(args, resources, NODE, "role") if n.get("role") == "hub"]
    if not hubs:
        report("the lab has no hub node (LabNode with role hub): every spoke's tunnel ends on the hub.",
               next((r.urn for r in of_type(resources, LAB)), None))
    for extra in hubs[1:]:
        report(f"{label_of(extra)} is a second hub (after {label_of(hubs[0])}): the lab has exactly one hub.",
               extra.urn)


single_hub = stack_policy(
    "single-hub",
    "The lab has exactly one hub.",
    check_single_hub)
