"""Networks: lab subnets are distinct and the management network stays isolated."""
from __future__ import annotations

from typing import Any, Iterator

from pulumi_policy import StackValidationArgs

from .plumbing import DEFAULT_HOST, Report, Res, components, host_of, is_unknown, of_type, plan, stack_policy
from .resources import LAB, NETWORK, NETWORKS, NODE, as_address, as_interface, as_network, label_of


def _overlaps(named: list[tuple[str, Any, Res]]) -> Iterator[tuple[tuple[str, Any, Res], tuple[str, Any, Res]]]:
    """Pairs of (label, network, resource) that overlap, each pair once."""
    ordered = sorted(((label, net, r) for label, net, r in named if net is not None),
                     key=lambda item: (item[1].version, item[1].network_address))
    for index, first in enumerate(ordered):
        for second in ordered[index + 1:]:
            if second[1].version != first[1].version or second[1].network_address > first[1].broadcast_address:
                break  # sorted by start: nothing later overlaps first
            yield first, second


def check_subnets(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    hosts = {r.urn: host_of(r.provider) for r in args.resources}
    libvirt = [(f"{label_of(r)} {a}", as_network(a), r) for r in of_type(resources, NETWORK)
               for a in r.get("addresses") or []]

    def apart(ra: Res, rb: Res) -> bool:
        """Two isolated networks on two hosts never meet (each host has its own management network)."""
        isolated = all(r.get("mode", "nat") in ISOLATED_MODES for r in (ra, rb))
        return isolated and hosts.get(ra.urn, DEFAULT_HOST) != hosts.get(rb.urn, DEFAULT_HOST)

    for (label_a, _a, ra), (label_b, _b, rb) in _overlaps(libvirt):
        if ra is not rb and not apart(ra, rb):
            report(f"{label_b} overlaps {label_a}: every lab network needs its own subnet (check "
                   "lab:hubSubnet, lab:spokeSubnetPool, lab:siteSubnetPrefix, lab:mgmtSubnet).", rb.urn)
    planned = [(f"{label_of(r)} subnets.{key} {value}", as_network(value), r)
               for r in components(args, resources, NETWORKS, "subnets")
               for key, value in (r.get("subnets") or {}).items()]
    for (label_a, _a, _ra), (label_b, _b, rb) in _overlaps(planned):
        report(f"{label_b} overlaps {label_a}: every lab subnet must be distinct.", rb.urn)
    # The overlay pool and the br0 subnet must not collide with the underlay or the management network.
    extra = [(f"{label_of(r)} overlayPool {r.get('overlayPool')}", as_network(r.get("overlayPool")), r)
             for r in of_type(resources, LAB)]
    bridge = {}
    for n in of_type(resources, NODE):
        interface = as_interface(n.get("bridgeAddress"))
        if interface is not None:
            bridge.setdefault(interface.network, n)
    extra += [(f"bridge subnet {net} ({label_of(n)})", net, n) for net, n in bridge.items()]
    underlay = planned or libvirt
    for index, (label, net, r) in enumerate(extra):
        for other_label, other, _other in underlay + extra[index + 1:]:
            if net is not None and other is not None and net.overlaps(other):
                report(f"{label} overlaps {other_label}: the overlay pool (lab:overlayPool), the br0 subnet "
                       "(lab:bridgeSubnet) and the lab networks must all be distinct.", r.urn)


lab_subnets_distinct = stack_policy(
    "lab-subnets-distinct",
    "No two lab subnets overlap: libvirt networks (but each host's isolated management network), the planned "
    "site and management subnets, the overlay pool and the br0 subnet.",
    check_subnets)

ISOLATED_MODES = ("none", "isolated")


def check_mgmt(args: StackValidationArgs, report: Report) -> None:
    resources = plan(args)
    planned = components(args, resources, NETWORKS, "subnets")
    nodes = components(args, resources, NODE, "role")
    for r in planned:
        mode = r.get("mgmtMode")
        if mode not in ISOLATED_MODES and not is_unknown(mode):
            report(f"{label_of(r)}: mgmtMode is {mode!r}: the management network must not forward or NAT "
                   f"(use {' or '.join(ISOLATED_MODES)}).", r.urn)
    mgmt_subnets = [as_network((r.get("subnets") or {}).get("mgmt")) for r in planned]
    mgmt_subnets = [s for s in mgmt_subnets if s is not None]
    for net in of_type(resources, NETWORK):
        subnets = [as_network(a) for a in net.get("addresses") or []]
        if not any(s is not None and s.overlaps(m) for s in subnets for m in mgmt_subnets):
            continue
        mode = net.get("mode", "nat")  # the provider's default mode is nat
        if mode not in ISOLATED_MODES and not is_unknown(mode):
            report(f"{label_of(net)} carries the management subnet but has mode {mode!r}: set mode none so the "
                   "management network never routes into the underlay.", net.urn)
    for n in nodes:
        wan, mgmt = as_address(n.get("wanAddress")), as_address(n.get("mgmtAddress"))
        for subnet in mgmt_subnets:
            if wan is not None and wan in subnet:
                report(f"{label_of(n)}: WAN address {wan} is inside the management subnet {subnet}: the underlay "
                       "must not use the management network.", n.urn)
            if mgmt is not None and mgmt not in subnet:
                report(f"{label_of(n)}: management address {mgmt} is outside the management subnet {subnet}: "
                       "management traffic must stay on the management network.", n.urn)


mgmt_network_separate = stack_policy(
    "mgmt-network-separate",
    "The management network is isolated (mode none) and separate from the underlay: no WAN address in it, "
    "every management address inside it.",
    check_mgmt)
