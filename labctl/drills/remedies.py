"""`drill remedies`: the field write-up's table of remedies, measured on every spoke at once.

Each spoke keeps the tunnel shape its stack declares (lablib/remedies.py):
the computed MTU through its VTI or XFRM interface, or as-deployed, the
original failure. The drill drops --drop % of every spoke's WAN fragments,
as the ADSL line did, and measures per spoke: pings of --size bytes without
DF (all spokes at once), don't-fragment pings of the spoke's br0 MTU, and TCP
goodput through the overlay (iperf3, one spoke after the other so that each
has the hub's CPU to itself), also under --light-loss % random loss (ESP in
TCP's weakness: TCP inside TCP). The bound: an as-deployed spoke loses at
least 20 % (the failure replayed), every other spoke nothing.
A tcp spoke's WAN also blocks UDP to the IKE ports for the whole drill, and
first its tunnel is dialled anew while its WAN is captured: it must come back
over TCP alone, its stream opening with RFC 8229's IKETCP prefix. The same
redial of one spoke of ESP in UDP must not bring its tunnel back while its UDP
is blocked (UDP_BLOCKED_SECONDS), and must once it is not. The redialled
tunnels then settle for 2 x dpdDelay before the pings, as every drill's recovery.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import click

from lablib import names
from lablib.remedies import AS_DEPLOYED, AS_DEPLOYED_MTUS, COMPUTED_MTU, TCP
from labctl import checks, host, impair
from labctl.drills import DrillReport, Echo, require_healthy, settle_seconds
from labctl.drills.fragments import MIN_LOSS_PCT, dropped_fragments, loss_text
from labctl.fanout import each_spoke
from labctl.node import goodput_mbps, ping_loss, tunnel_up, wait_until
from labctl.stack import LabStack

DF_PINGS = 10
GOODPUT_SECONDS = 5
IPERF_PORT = 5201  # the first spoke's iperf3 server on the hub; the next spoke's the next port
IKETCP = "IKETCP"  # RFC 8229: the first bytes an initiator sends on a new ESP-in-TCP stream
REDIAL_SECONDS = 120  # a tcp spoke's tunnel dialled anew over TCP (measured: about 10 s)
UDP_BLOCKED_SECONDS = 30  # how long a spoke of ESP in UDP is watched not to come back (it came back in 5 s unblocked)


@dataclass
class Column:
    """One spoke's figures."""

    spoke: str
    remedy: str
    mode: str
    mtus: str = ""
    pings: tuple[int, int] = (0, 0)  # (received, sent), as ping_loss gives them
    df_pings: tuple[int, int] = (0, 0)
    fragments_dropped: int = 0
    goodput: float = 0.0
    goodput_lossy: float = 0.0
    redial_seconds: float | None = None  # tcp: its tunnel back over TCP alone, UDP blocked; UDP: back once unblocked
    blocked_back: bool | None = None  # the spoke of ESP in UDP that had its UDP blocked: back before unblocked?
    iketcp_seen: bool | None = None  # tcp: the new stream opened with IKETCP on the wire

    @property
    def label(self) -> str:
        return f"{self.spoke} {self.remedy}" + (f" ({self.mode})" if self.remedy == COMPUTED_MTU else "")

    @property
    def loss_pct(self) -> float:
        received, sent = self.pings
        return 100 * (sent - received) / sent if sent else 100.0


def column(lab: LabStack, spoke: str) -> Column:
    interface = lab.info(spoke, "tunnelInterface")
    return Column(spoke=spoke, remedy=lab.remedy(spoke), mode="vti" if interface == names.VTI_INTERFACE else "xfrm",
                  mtus=f"{lab.wan_mtu(spoke)} / {lab.info(spoke, 'tunnelMtu')} / {lab.bridge_mtu(spoke)}")


def run(lab: LabStack, drop_pct: float, count: int, size: int, light_loss_pct: float, echo: Echo) -> DrillReport:
    spokes = lab.serving
    inner = {spoke: int(lab.info(spoke, "innerMtu")) for spoke in spokes}
    deployed = [spoke for spoke in spokes if lab.remedy(spoke) in AS_DEPLOYED_MTUS]
    largest = max([inner[spoke] for spoke in spokes if spoke not in deployed], default=0)
    smallest = min([inner[spoke] for spoke in deployed], default=9000)
    if not largest < size <= smallest:
        raise click.BadParameter(f"{size} must be more than the br0 MTU of every spoke with a remedy (the largest "
                                 f"is {largest}), so that each remedy has to handle a packet too large for its "
                                 f"tunnel, and at most the br0 MTU of every spoke of as-deployed MTUs "
                                 f"({smallest}), so that their ESP packets are larger than the WAN",
                                 param_hint="--size")
    require_healthy(lab)
    report = DrillReport("remedies")
    columns = {spoke: column(lab, spoke) for spoke in spokes}
    found = dict(zip(spokes, each_spoke(lab, spokes, impair.current)))
    hub, hub_bridge = lab.node(names.HUB), lab.bridge_ip(names.HUB)
    tcp = [spoke for spoke in spokes if lab.remedy(spoke) == TCP]

    def wan(spoke: str, loss_pct: float = 0) -> impair.Impairment:
        return impair.Impairment(loss_pct=loss_pct, frag_drop_pct=drop_pct, udp_blocked=spoke in tcp)
    try:
        echo(f"every spoke's WAN drops {drop_pct:g} % of its IP fragments"
             + (f"; {', '.join(tcp)}'s blocks UDP to the IKE ports" if tcp else ""))
        each_spoke(lab, spokes, lambda fork, spoke: impair.apply(fork, spoke, wan(spoke)))
        for spoke in tcp:
            echo(f"{spoke}: its tunnel dialled anew, over TCP alone, its WAN captured")
            columns[spoke].redial_seconds, columns[spoke].iketcp_seen = redial_over_tcp(lab, spoke)
        udp = next((spoke for spoke in spokes if lab.remedy(spoke) == COMPUTED_MTU), None)
        if tcp and udp:
            echo(f"{udp}: its UDP blocked too and its tunnel dialled anew: it must stay down {UDP_BLOCKED_SECONDS} s")
            columns[udp].blocked_back, columns[udp].redial_seconds = redial_without_udp(lab, udp, wan(udp))
        if tcp:
            # As every drill's recovery: a redialled spoke's pings wait until each end has probed the
            # other. A keying attempt timed out under the block can still make a second child SA
            # just after the tunnel is back (seen with retransmitTimeout 15), and the switch loses a ping.
            echo(f"tunnels dialled anew: {settle_seconds(lab)} s (2 x dpdDelay) for them to settle")
            time.sleep(settle_seconds(lab))
        echo(f"{count} pings of {size} B without DF and {DF_PINGS} DF pings of each spoke's br0 MTU, all spokes at once")

        def pings(fork: LabStack, spoke: str) -> None:
            node, inner = fork.node(spoke), int(fork.info(spoke, "innerMtu"))
            columns[spoke].pings = ping_loss(node, hub_bridge, count, size, dont_fragment=False, interval=0.1)
            columns[spoke].df_pings = ping_loss(node, hub_bridge, DF_PINGS, inner, dont_fragment=True)
            columns[spoke].fragments_dropped = dropped_fragments(fork, spoke)
        each_spoke(lab, spokes, pings)
        for index, spoke in enumerate(spokes):
            echo(f"TCP goodput {spoke} -> hub, {GOODPUT_SECONDS} s, then with {light_loss_pct:g} % random loss")
            port = IPERF_PORT + index
            columns[spoke].goodput = goodput_mbps(lab.node(spoke), hub, hub_bridge, GOODPUT_SECONDS, port)
            impair.apply(lab, spoke, wan(spoke, light_loss_pct))
            columns[spoke].goodput_lossy = goodput_mbps(lab.node(spoke), hub, hub_bridge, GOODPUT_SECONDS, port)
    finally:
        each_spoke(lab, spokes, lambda fork, spoke: impair.apply(fork, spoke, found[spoke]))
    table(report, list(columns.values()), drop_pct, count, size, light_loss_pct)
    return report


def redial_over_tcp(lab: LabStack, spoke: str) -> tuple[float | None, bool]:
    """(seconds until the spoke's tunnel is back, None if not within REDIAL_SECONDS; whether its new
    TCP stream to the hub opened with IKETCP), its IKE SA torn down and started again."""
    node, conn = lab.node(spoke), checks.spoke_conn(spoke)

    def redial() -> float | None:
        node.run(f"ipsec whack --name {conn} --terminate; ipsec whack --name {conn} --initiate --asynchronous")
        try:
            return wait_until(f"{spoke}'s tunnel over TCP", lambda: tunnel_up(node, conn), REDIAL_SECONDS,
                              interval=2, progress=lambda _: None)
        except TimeoutError:
            return None
    seconds, lines = host.capture(host.wan_bridge(lab.name, spoke, on=lab.host_uri(spoke)),
                                  f"tcp dst port {names.ESP_IN_TCP_PORT}", redial, on=lab.host_uri(spoke),
                                  payload=True, seconds=REDIAL_SECONDS)
    return seconds, any(IKETCP in line for line in lines)


def redial_without_udp(lab: LabStack, spoke: str, restore: impair.Impairment) -> tuple[bool, float | None]:
    """(whether the spoke's tunnel came back while its UDP to the IKE ports was blocked, seconds
    until it is back once restore is in force again), its IKE SA torn down and started again."""
    node, conn = lab.node(spoke), checks.spoke_conn(spoke)
    impair.apply(lab, spoke, replace(restore, udp_blocked=True))
    node.run(f"ipsec whack --name {conn} --terminate; ipsec whack --name {conn} --initiate --asynchronous")
    try:
        wait_until(f"{spoke}'s tunnel with UDP blocked", lambda: tunnel_up(node, conn), UDP_BLOCKED_SECONDS,
                   interval=2, progress=lambda _: None)
        came_back = True
    except TimeoutError:
        came_back = False
    impair.apply(lab, spoke, restore)
    try:
        back = wait_until(f"{spoke}'s tunnel with UDP again", lambda: tunnel_up(node, conn), REDIAL_SECONDS,
                          interval=2, progress=lambda _: None)
    except TimeoutError:
        back = None
    return came_back, back


def table(report: DrillReport, columns: list[Column], drop_pct: float, count: int, size: int,
          light_loss_pct: float) -> None:
    """The figures as rows by columns (one per spoke), the JSON figures, and the verdicts."""
    rows = {
        "WAN / tunnel / br0 MTU": [c.mtus for c in columns],
        f"pings of {size} B lost": [loss_text(*c.pings) for c in columns],
        "DF pings of br0 MTU lost": [loss_text(*c.df_pings) for c in columns],
        "fragments dropped on the WAN": [str(c.fragments_dropped) for c in columns],
        "TCP goodput, Mbit/s": [f"{c.goodput:g}" for c in columns],
        f"... with {light_loss_pct:g} % loss": [f"{c.goodput_lossy:g}" for c in columns],
    }
    if any(c.remedy == TCP for c in columns):
        rows["UDP blocked: tunnel back"] = [udp_blocked_cell(c) for c in columns]
        rows["stream opens with IKETCP"] = ["-" if c.remedy != TCP else "yes" if c.iketcp_seen else "NO"
                                           for c in columns]
    width = max(24, *(len(c.label) + 2 for c in columns))
    report.lines.append(f"every WAN drops {drop_pct:g} % of its IP fragments; {count} pings per spoke -> hub br0")
    report.lines.append(f"{'':30}" + "".join(f"{c.label:>{width}}" for c in columns))
    report.lines.extend(f"{row:30}" + "".join(f"{cell:>{width}}" for cell in cells) for row, cells in rows.items())
    report.figures.update({"frag_drop_pct": drop_pct, "pings": count, "size": size, "light_loss_pct": light_loss_pct,
                           "spokes": {c.spoke: {**asdict(c), "loss_pct": round(c.loss_pct, 1)} for c in columns}})
    for c in columns:
        if c.remedy == AS_DEPLOYED and c.loss_pct < MIN_LOSS_PCT:
            report.fail(f"{c.spoke} is as-deployed but lost only {c.loss_pct:.1f} %: the failure did not replay "
                        f"(expected >= {MIN_LOSS_PCT} %)")
        if c.remedy != AS_DEPLOYED and c.loss_pct > 0:
            report.fail(f"{c.spoke} ({c.remedy}) lost {c.loss_pct:.1f} %: the remedy does not hold")
        if c.remedy == TCP and c.redial_seconds is None:
            report.fail(f"{c.spoke} (tcp) did not get its tunnel back within {REDIAL_SECONDS} s with UDP blocked")
        if c.blocked_back:
            report.fail(f"{c.spoke} ({c.remedy}) got its tunnel back with its UDP to the IKE ports blocked: "
                        "the block does not hold, so the tcp spoke's redial proves nothing")
        if c.blocked_back is False and c.redial_seconds is None:
            report.fail(f"{c.spoke} ({c.remedy}) did not get its tunnel back within {REDIAL_SECONDS} s of its UDP "
                        "being unblocked")
        if c.remedy == TCP and not c.iketcp_seen:
            report.fail(f"{c.spoke} (tcp): no TCP stream to port {names.ESP_IN_TCP_PORT} opening with {IKETCP} "
                        "was seen on its WAN")


def udp_blocked_cell(c: Column) -> str:
    """The tcp spoke: back over TCP after so long; the spoke of ESP in UDP: not back while blocked."""
    if c.remedy == TCP:
        return "no" if c.redial_seconds is None else f"{c.redial_seconds:.0f} s, over TCP"
    if c.blocked_back is None:
        return "-"
    if c.blocked_back:
        return "YES (block failed)"
    return f"not in {UDP_BLOCKED_SECONDS} s" + (f"; {c.redial_seconds:.0f} s unblocked" if c.redial_seconds else "")
