"""MTU: tunnel and inner MTUs leave room for ESP, NAT-T and GRE, so ESP never fragments."""
from __future__ import annotations

from typing import Any, Iterator

from pulumi_policy import PolicyConfigSchema, StackValidationArgs

from .capacity import PRODUCTION_PATTERN, is_production
from .ipsec import gre_overhead, tunnel_mtu_limit
from .plumbing import Report, Res, components, of_type, plan, setting, stack_of, stack_policy
from .resources import LAB, NETWORK, NODE, TUNNEL, as_address, as_network, as_number, label_of


MTU_SCHEMA = PolicyConfigSchema({"wanOverheadAllowance": {
    "type": "integer", "minimum": 0, "default": 0,
    "description": "Bytes the WAN path loses beyond the configured WAN MTU (e.g. 8 for an unplanned PPPoE "
                   "hop); the tunnel MTU must fit the reduced WAN MTU."}, **PRODUCTION_PATTERN})
AS_DEPLOYED = "as-deployed"  # lab:asDeployedSpokes: the original failure, kept on purpose
KERNEL_GRE = "kernel-gre"  # lab:kernelGreSpokes: the tunnel keeps the WAN MTU, t0's MTU (br0's) keeps ESP whole
TCP = "tcp"  # lab:tcpSpokes: ESP in TCP, segmented by TCP: no ESP packet is ever an IP fragment


def _in_tcp(r: Res) -> bool:
    """A tcp spoke's tunnel (its spoke end dials TCP) or node: its MTUs are as deployed, its ESP never fragments."""
    if r.get("remedy") != TCP:
        return False
    return r.type != TUNNEL or (r.get("spokeEnd") or {}).get("enableTcp") is True


def _declared_failure(args: StackValidationArgs, r: Res, report: Report) -> bool:
    """An as-deployed spoke (its tunnel or node) fragments ESP on purpose: passed outside production
    stacks, where the lab replays the failure; refused in a production one."""
    if r.get("remedy") != AS_DEPLOYED:
        return False
    stack = stack_of(r.urn)
    if is_production(stack, setting(args, MTU_SCHEMA, "productionStackPattern")):
        report(f"{label_of(r)} is as-deployed, the original failing shape (the WAN MTU on the tunnel: ESP "
               f"fragments on the WAN and 20-50 % of large packets were lost), in production stack {stack!r}: "
               "remove it from lab:asDeployedSpokes.", r.urn)
    return True


def _mtu_findings(wan_mtu: Any, tunnel: Any, inner: Any, esp_lines: list[Any], nat_t: bool, gre_key: bool,
                  allowance: int, gre_sized: bool = False) -> Iterator[str]:
    """gre_sized: only GRE enters the tunnel, sized by the inner MTU (kernel-gre): its own MTU may be larger."""
    wan, tunnel_mtu, inner_mtu = as_number(wan_mtu), as_number(tunnel), as_number(inner)
    if wan is None or tunnel_mtu is None or inner_mtu is None:
        return
    limit = tunnel_mtu_limit(wan - allowance, esp_lines, nat_t)
    if limit is None:
        return  # no proposal we can size: ipsec-crypto-allowlist reports it
    esp = "/".join(sorted({str(line) for line in esp_lines}))
    path = f"WAN MTU {wan}" + (f" minus {allowance} allowance" if allowance else "")
    path += f", esp={esp}" + (", NAT-T" if nat_t else "")
    if tunnel_mtu > limit and not gre_sized:
        yield (f"tunnel MTU {tunnel_mtu} exceeds {limit}, the largest packet ESP fits into one {path} packet: "
               f"ESP would fragment. Set the tunnel MTU to at most {limit} (the lab computes it from lab:wanMtu "
               "and lab:esp).")
    inner_limit = min(tunnel_mtu, limit) - gre_overhead(gre_key)
    if inner_mtu > inner_limit:
        yield (f"inner (br0) MTU {inner_mtu} exceeds {inner_limit}: GRE{' with key' if gre_key else ''} over "
               f"OVS adds {gre_overhead(gre_key)} bytes to the tunnel MTU. Set the inner MTU to at most "
               f"{inner_limit}.")


def check_mtu(args: StackValidationArgs, report: Report) -> None:
    allowance = setting(args, MTU_SCHEMA, "wanOverheadAllowance")
    resources = plan(args)
    tunnels = components(args, resources, TUNNEL, "tunnelMtu")
    nodes = components(args, resources, NODE, "tunnelMtu")
    labs = components(args, resources, LAB, "esp")
    for t in tunnels:
        if _declared_failure(args, t, report) or _in_tcp(t):
            continue
        ends = [t.get("hubEnd") or {}, t.get("spokeEnd") or {}]
        nat_t = t.get("natT") is not False
        gre_key = bool(t.get("greKey")) or any((t.get(p) or {}).get("key") is not None
                                               for p in ("hubPort", "spokePort"))
        for finding in _mtu_findings(t.get("wanMtu"), t.get("tunnelMtu"), t.get("innerMtu"),
                                     [end.get("esp") for end in ends], nat_t, gre_key, allowance,
                                     gre_sized=t.get("remedy") == KERNEL_GRE):
            report(f"{label_of(t)}: {finding}", t.urn)
    # Nodes carry the MTUs their payload sets; size them for the lab's ESP and the worst NAT-T/GRE key case.
    esp_lines = [lab.get("esp") for lab in labs] or [(t.get("spokeEnd") or {}).get("esp") for t in tunnels]
    nat_t = any(t.get("natT") is not False for t in tunnels) or not tunnels
    gre_key = any(bool(t.get("greKey")) for t in tunnels) or not tunnels
    for n in nodes:
        if _declared_failure(args, n, report) or _in_tcp(n):
            continue
        for finding in _mtu_findings(n.get("wanMtu"), n.get("tunnelMtu"), n.get("innerMtu"), esp_lines,
                                     nat_t, gre_key, allowance, gre_sized=n.get("remedy") == KERNEL_GRE):
            report(f"{label_of(n)}: {finding}", n.urn)
    # The libvirt network a node's WAN address lives on must carry the WAN MTU the tunnel MTU assumed.
    networks = [(net, [as_network(a) for a in net.get("addresses") or []]) for net in of_type(resources, NETWORK)]
    for n in nodes:
        wan_address, wan_mtu = as_address(n.get("wanAddress")), as_number(n.get("wanMtu"))
        if wan_address is None or wan_mtu is None:
            continue
        for net, subnets in networks:
            net_mtu = as_number(net.get("mtu")) or 1500  # libvirt's default
            if any(s is not None and wan_address in s for s in subnets) and net_mtu < wan_mtu:
                report(f"{label_of(net)} has MTU {net_mtu}, but {label_of(n)}'s tunnel MTU was computed for a WAN "
                       f"MTU of {wan_mtu}: set lab:wanMtu to {net_mtu} (or raise the network's MTU).", net.urn)


mtu_fits = stack_policy(
    "mtu-esp-never-fragments",
    "Tunnel and inner MTUs leave room for ESP, NAT-T and GRE on the WAN MTU, so ESP never fragments.",
    check_mtu, schema=MTU_SCHEMA)
