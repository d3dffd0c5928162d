"""`drill fragments`: the original failure, replayed and then defeated.

The original deployment's ADSL path dropped 20-50 % of fragmented ESP. A
current guest kernel learns the path MTU of the XFRM path and fragments
before encryption, which hides the failure; to make the ESP packets
themselves fragment as they did there, both ends of the tunnel get the
WAN MTU on the tunnel interface, a br0 MTU that leaves room only for GRE,
the route to the peer's overlay address locked to the WAN MTU, and GRE
ports that do not set DF. Phase 2 puts the computed MTUs back.
"""
from __future__ import annotations

import re

import click

from lablib import names
from lablib.mtu import gre_overhead
from lablib.remedies import COMPUTED_MTU
from labctl import host, impair
from labctl.drills import DrillReport, Echo, pick_spoke, require_healthy
from labctl.node import Node, ping_loss
from labctl.stack import LabStack

MIN_LOSS_PCT = 20  # the low end of what the original deployment saw
DF_PINGS = 20


class End:
    """One end of the spoke's tunnel (the spoke or the hub) and what the drill changes there."""

    def __init__(self, lab: LabStack, site: str, peer: str) -> None:
        self.node: Node = lab.node(site)
        self.device = lab.info(site, "tunnelInterface")
        self.own = lab.info(site, "overlayAddress")
        self.peer = lab.info(peer, "overlayAddress")
        self.port = names.gre_port(peer)
        # The site's planned MTUs, which phase 2 and the end of the drill put back.
        self.tunnel_mtu, self.bridge_mtu = int(lab.info(site, "tunnelMtu")), lab.bridge_mtu(site)
        self.saved_route = self.node.run(f"ip -o route show {self.peer}/32").strip()  # exact match

    def set_mtus(self, tunnel_mtu: int, inner_mtu: int, lock: int | None) -> None:
        route = f"ip route replace {self.peer}/32 dev {self.device} src {self.own} mtu lock {lock}" if lock else (
            f"ip route replace {self.saved_route}" if self.saved_route else
            f"ip route del {self.peer}/32 dev {self.device} 2>/dev/null || true")
        self.node.run(f"ip link set {self.device} mtu {tunnel_mtu} && "
                      f"ovs-vsctl set interface {names.BRIDGE} mtu_request={inner_mtu} && {route} && "
                      "ip route flush cache")

    def set_gre_df(self, df: bool) -> None:
        """df_default=false as in the replay; true is OVS's default, so restoring removes the option."""
        self.node.run(f"ovs-vsctl remove interface {self.port} options df_default" if df else
                      f"ovs-vsctl set interface {self.port} options:df_default=false")


def dropped_fragments(lab: LabStack, spoke: str) -> int:
    rules = host.run("nft", "list", "table", "ip", names.impair_table(lab.name, spoke), check=False,
                     on=lab.host_uri(spoke))
    found = re.search(r"counter packets (\d+)", rules)
    return int(found.group(1)) if found else 0


def loss_text(received: int, sent: int) -> str:
    return f"{sent - received}/{sent} ({100 * (sent - received) / sent:.1f} %)" if sent else "none sent"


def computed_spokes(lab: LabStack) -> list[str]:
    """The spokes of the computed MTU (lablib/remedies.py), those behind NAT first (the ADSL sites were)."""
    spokes = [spoke for spoke in lab.serving if lab.remedy(spoke) == COMPUTED_MTU]
    return sorted(spokes, key=lambda spoke: not lab.node_info[spoke]["behindNat"])


def run(lab: LabStack, site: str | None, drop_pct: float, count: int, size: int, echo: Echo) -> DrillReport:
    computed = computed_spokes(lab)
    spoke = pick_spoke(lab, site or (computed[0] if computed else None))
    if spoke not in computed:
        raise click.BadParameter(f"{spoke}'s remedy is {lab.remedy(spoke)} (lablib/remedies.py): the drill sets "
                                 "the original failure on a spoke of the computed MTU and puts it back; pick one "
                                 f"({', '.join(computed) or 'this lab has none'})", param_hint="--site")
    wan_mtu = lab.wan_mtu(spoke)
    tunnel_mtu, inner_mtu = int(lab.info(spoke, "tunnelMtu")), int(lab.info(spoke, "innerMtu"))
    replay_inner = wan_mtu - gre_overhead(bool(lab.config["greKey"]))
    if not inner_mtu < size <= replay_inner:
        raise click.BadParameter(f"{size} must be more than the inner MTU {inner_mtu} (so the computed MTU "
                                 f"has to fragment it) and at most {replay_inner} (WAN MTU minus GRE)",
                                 param_hint="--size")
    require_healthy(lab)
    report = DrillReport("fragments")
    ends = [End(lab, spoke, names.HUB), End(lab, names.HUB, spoke)]
    found_impairment = impair.current(lab, spoke)
    hub_bridge = lab.bridge_ip(names.HUB)
    node = lab.node(spoke)
    columns: dict[str, dict[str, str]] = {}
    try:
        echo(f"phase 1, as originally deployed: tunnel MTU {wan_mtu}, br0 {replay_inner}")
        impair.apply(lab, spoke, impair.Impairment(frag_drop_pct=drop_pct))
        for end in ends:
            end.set_mtus(wan_mtu, replay_inner, lock=None)
        # DF traffic (TCP, ping's default) with the wrong MTU: the kernel learns the XFRM path's MTU,
        # the GRE packet does not fit, and OVS cannot tell the sender: a black hole, no fragment at all.
        df_1 = ping_loss(node, hub_bridge, DF_PINGS, size, dont_fragment=True)
        echo(f"  then the route to the peer locked to MTU {wan_mtu} and GRE without DF: ESP fragments")
        for end in ends:
            end.set_mtus(wan_mtu, replay_inner, lock=wan_mtu)
            end.set_gre_df(False)
        loss_1 = ping_loss(node, hub_bridge, count, size, dont_fragment=False, interval=0.1)
        columns["as deployed"] = {"MTU tunnel / br0": f"{wan_mtu} / {replay_inner}",
                                  f"pings of {size} B lost": loss_text(*loss_1),
                                  f"DF pings of {size} B lost": loss_text(*df_1),
                                  "fragments dropped on the WAN": str(dropped_fragments(lab, spoke))}
        echo(f"phase 2, computed MTU: tunnel {tunnel_mtu}, br0 {inner_mtu}")
        restore_mtus(ends)
        impair.apply(lab, spoke, impair.Impairment(frag_drop_pct=drop_pct))  # counter back to 0
        loss_2 = ping_loss(node, hub_bridge, count, size, dont_fragment=False, interval=0.1)
        df_2 = ping_loss(node, hub_bridge, DF_PINGS, inner_mtu, dont_fragment=True)
        columns["computed MTU"] = {"MTU tunnel / br0": f"{tunnel_mtu} / {inner_mtu}",
                                   f"pings of {size} B lost": loss_text(*loss_2),
                                   f"DF pings of {size} B lost": f"{loss_text(*df_2)} at {inner_mtu} B",
                                   "fragments dropped on the WAN": str(dropped_fragments(lab, spoke))}
    finally:
        restore_mtus(ends)
        impair.apply(lab, spoke, found_impairment)
    pct_1 = 100 * (loss_1[1] - loss_1[0]) / loss_1[1]
    pct_2 = 100 * (loss_2[1] - loss_2[0]) / loss_2[1]
    report.figures.update({"site": spoke, "frag_drop_pct": drop_pct, "pings": count, "size": size,
                           "loss_as_deployed_pct": round(pct_1, 1), "loss_computed_mtu_pct": round(pct_2, 1),
                           "df_loss_as_deployed_pct": round(100 * (df_1[1] - df_1[0]) / df_1[1], 1),
                           "df_loss_computed_mtu_pct": round(100 * (df_2[1] - df_2[0]) / df_2[1], 1)})
    report.lines.append(f"{spoke}'s WAN drops {drop_pct:g} % of its IP fragments; {count} pings "
                        f"{spoke} -> hub br0 without DF, {DF_PINGS} with DF")
    report.lines.append(f"{'':32}{'as deployed':>24}{'computed MTU':>28}")
    for row in columns["as deployed"]:
        report.lines.append(f"{row:32}{columns['as deployed'][row]:>24}{columns['computed MTU'][row]:>28}")
    if pct_1 < MIN_LOSS_PCT:
        report.fail(f"as deployed, only {pct_1:.1f} % lost: the failure did not replay (expected >= {MIN_LOSS_PCT} %)")
    if pct_2 > 0:
        report.fail(f"with the computed MTU {pct_2:.1f} % lost: the fix does not hold")
    return report


def restore_mtus(ends: list[End]) -> None:
    for end in ends:
        end.set_gre_df(True)
        end.set_mtus(end.tunnel_mtu, end.bridge_mtu, lock=None)
