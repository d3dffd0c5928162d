"""Tunnel and overlay MTUs, computed so that ESP never has to fragment.

The original deployment lost 20-50 % of large packets because ESP packets
grew past the WAN MTU and the ADSL path dropped the fragments. Here the
tunnel interface MTU is the largest inner packet whose ESP packet still fits
the WAN MTU, and the OVS bridge MTU leaves room for GRE on top of that.
"""
from __future__ import annotations

from dataclasses import dataclass

from lablib.crypto import OVERHEAD_BYTES, Proposal

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
