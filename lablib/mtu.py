"""Tunnel and overlay MTUs, computed so that ESP never has to fragment.

The original deployment lost 20-50 % of large packets because ESP packets
grew past the WAN MTU and the ADSL path dropped the fragments. Here the
tunnel interface MTU is the largest inner packet whose ESP packet still fits
the WAN MTU, and the OVS bridge MTU leaves room for GRE on top of that.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from lablib.crypto import OVERHEAD_BYTES, Proposal
from lablib.remedies import AS_DEPLOYED_MTUS, KERNEL_GRE

# Header sizes from ipsec.yaml (shared with the policy pack).
IPV4_HEADER = OVERHEAD_BYTES["ipv4_header"]
NAT_T_UDP_HEADER = OVERHEAD_BYTES["nat_t_udp_header"]
ESP_HEADER = OVERHEAD_BYTES["esp_header"]  # SPI + sequence number
ESP_TRAILER = OVERHEAD_BYTES["esp_trailer"]  # pad length + next header
GRE_HEADER = OVERHEAD_BYTES["gre_header"]
GRE_KEY = OVERHEAD_BYTES["gre_key"]
ETHERNET_HEADER = OVERHEAD_BYTES["ethernet_header"]  # OVS GRE ports carry whole Ethernet frames


@dataclass(frozen=True)
class MtuPlan:
    """The MTUs every site uses, and the overhead that explains them."""

    wan_mtu: int
    nat_t: bool
    gre_key: bool
    tunnel_mtu: int  # MTU of ipsec0 / the XFRM interface: largest packet into ESP
    inner_mtu: int  # MTU of br0: largest frame payload over GRE over ESP
    # br0's own MTU where it must take larger frames than the site sends (the hub of a lab with
    # as-deployed spokes: theirs); the site's routes on br0 keep inner_mtu. 0: inner_mtu.
    bridge_mtu: int = 0

    @property
    def bridge_device_mtu(self) -> int:
        return self.bridge_mtu or self.inner_mtu


def largest_esp_payload(wan_mtu: int, proposal: Proposal, nat_t: bool) -> int:
    """Largest inner IPv4 packet that ESP tunnel mode fits into wan_mtu unfragmented."""
    fixed = IPV4_HEADER + (NAT_T_UDP_HEADER if nat_t else 0) + ESP_HEADER
    room = wan_mtu - fixed - proposal.cipher.iv_bytes - proposal.esp_icv_bytes()
    padded = room - room % proposal.cipher.block_bytes
    return padded - ESP_TRAILER


def gre_overhead(gre_key: bool) -> int:
    """Bytes an OVS GRE port adds to an Ethernet payload."""
    return IPV4_HEADER + GRE_HEADER + (GRE_KEY if gre_key else 0) + ETHERNET_HEADER


def plan_mtu(wan_mtu: int, esp_proposals: list[Proposal], nat_t: bool, gre_key: bool) -> MtuPlan:
    """MTUs that hold for whichever ESP proposal the peers agree on."""
    if not esp_proposals:
        raise ValueError("at least one ESP proposal is needed")
    tunnel_mtu = min(largest_esp_payload(wan_mtu, p, nat_t) for p in esp_proposals)
    return MtuPlan(
        wan_mtu=wan_mtu,
        nat_t=nat_t,
        gre_key=gre_key,
        tunnel_mtu=tunnel_mtu,
        inner_mtu=tunnel_mtu - gre_overhead(gre_key),
    )


def plan_site_mtus(hub_wan: int, spoke_wans: Mapping[int, int], remedies: Mapping[int, str],
                   esp_proposals: list[Proposal], nat_t: bool, gre_key: bool) -> tuple[MtuPlan, dict[int, MtuPlan]]:
    """The hub's plan, and each spoke's where it is not the hub's (bridge_mtu aside: only the hub has
    one). spoke_wans: the spokes whose WAN MTU is not hub_wan (lab:wanMtu); remedies: the spokes
    whose remedy is not the computed MTU (lablib.remedies). br0 is one segment: every site but an
    as-deployed spoke gets the inner MTU that holds for all of them; a spoke's tunnel MTU fits its
    path to the hub (the smaller WAN of the two). An as-deployed spoke gets the WAN MTU on its tunnel
    and the WAN MTU minus GRE on br0, as the original deployment had (so does a tcp spoke, whose ESP
    in TCP never fragments); the hub's br0 then takes its
    frames. A kernel-gre spoke's tunnel keeps the WAN MTU too, its t0 and br0 the segment's MTU."""
    as_deployed = {n for n, remedy in remedies.items() if remedy in AS_DEPLOYED_MTUS}
    hub = plan_mtu(hub_wan, esp_proposals, nat_t, gre_key)
    paths = {n: plan_mtu(min(spoke_wans.get(n, hub_wan), hub_wan), esp_proposals, nat_t, gre_key)
             for n in {*spoke_wans, *remedies}}
    segment = min([hub.inner_mtu] + [p.inner_mtu for n, p in paths.items() if n not in as_deployed])
    spokes = {n: replace(path, wan_mtu=spoke_wans.get(n, hub_wan), inner_mtu=segment) for n, path in paths.items()}
    for n, remedy in remedies.items():
        wan = spoke_wans.get(n, hub_wan)
        if remedy == KERNEL_GRE:
            spokes[n] = replace(spokes[n], tunnel_mtu=wan)
        elif remedy in AS_DEPLOYED_MTUS:
            spokes[n] = replace(hub, wan_mtu=wan, tunnel_mtu=wan, inner_mtu=wan - gre_overhead(gre_key))
    widest = max([segment] + [spokes[n].inner_mtu for n in as_deployed])
    hub = replace(hub, inner_mtu=segment)
    return replace(hub, bridge_mtu=widest if widest > segment else 0), {n: p for n, p in spokes.items() if p != hub}
