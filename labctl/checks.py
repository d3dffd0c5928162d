"""`verify`: the checks that prove a running lab works, as plain functions.

Each check looks at one node of a running stack and returns (passed,
evidence in a few words). The CLI's `verify` and the end-to-end tests run
the same functions through run_checks.
"""
from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from lablib import names
from lablib.remedies import AS_DEPLOYED, KERNEL_GRE, TCP
from labctl import certchecks, host, remedychecks
from labctl.fanout import THREADS
from labctl.node import TRANSIENT, esp_bytes, established_conns, peer_addresses, ping_loss, ping_loss_each, pings
from labctl.stack import LabStack

Outcome = tuple[bool, str]
CAPTURE_PINGS = 5
CHECK_PINGS = 3  # the ping checks' count (pings() resends a lost one within its deadline)
# A spoke pings this many other spokes at once. All at once, 8 spokes checked at once in a 16-spoke
# lab sent 120 ping streams (and their ARP floods, to every spoke) through the hub's one emulated
# vCPU: whole streams went unanswered, while each spoke's check alone passed (docs/performance.md).
PEERS_AT_ONCE = 4


@dataclass
class Result:
    node: str
    check: str
    passed: bool
    evidence: str
    seconds: float

    def line(self) -> str:
        return (f"{self.node:<8} {self.check:<16} {'pass' if self.passed else 'FAIL'}  "
                f"{self.evidence:<60} {self.seconds:5.1f} s")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def spoke_conn(spoke: str) -> str:
    return names.conn_name(spoke, names.HUB)


def ike_and_child_sa(lab: LabStack, spoke: str) -> Outcome:
    node, conn = lab.node(spoke), spoke_conn(spoke)
    status = node.run("ipsec status", check=False)
    ike = [line for line in status.splitlines() if f'"{conn}"' in line and "ESTABLISHED_IKE_SA" in line]
    child = conn in established_conns(node)
    return bool(ike) and child, f"{conn}: IKE SA {'up' if ike else 'missing'}, child SA {'up' if child else 'missing'}"


def nat_traversal(lab: LabStack, spoke: str) -> Outcome:
    """Behind NAT, ESP is encapsulated: in UDP 4500, or in TCP for a tcp spoke (remedychecks says more)."""
    xfrm = lab.node(spoke).run("ip xfrm state")
    tcp = lab.remedy(spoke) == TCP
    encap = "encap type espintcp" in xfrm if tcp else "encap type espinudp sport 4500 dport 4500" in xfrm
    behind_nat = bool(lab.node_info[spoke]["behindNat"])
    where = "behind NAT" if behind_nat else "routed"
    how = ("in TCP" if tcp else "in UDP 4500") if encap else "not encapsulated" if tcp else "not UDP-encapsulated"
    return encap or not behind_nat, f"{where}, ESP {how}"


def hub_side_address(lab: LabStack, spoke: str) -> str:
    """The address the hub sees the spoke at: the masquerade address (the hub WAN bridge's, or the
    uplink of the spoke's host when that is not the hub's) or the spoke's own."""
    spoke_host = lab.host_of(spoke)
    if not lab.node_info[spoke]["behindNat"]:
        return str(lab.info(spoke, "wanAddress"))
    if spoke_host is not None and spoke_host != lab.host_of(names.HUB):
        return str(spoke_host["uplink"])
    on = lab.host_uri(names.HUB)
    return host.bridge_address(host.wan_bridge(lab.name, names.HUB, on=on), on=on)


def hub_sees_spoke(lab: LabStack, spoke: str) -> Outcome:
    """The hub's SA points at the address hub_side_address predicts."""
    predicted = hub_side_address(lab, spoke)
    seen = peer_addresses(lab.node(names.HUB), names.conn_name(names.HUB, spoke))
    return seen == {predicted}, f"hub sees {', '.join(sorted(seen)) or 'nothing'}, plan says {predicted}"


def esp_counters(lab: LabStack, spoke: str) -> Outcome:
    node, conn = lab.node(spoke), spoke_conn(spoke)
    before = esp_bytes(node, conn)
    pings(node, lab.bridge_ip(names.HUB))
    after = esp_bytes(node, conn)
    grown = after[0] > before[0] and after[1] > before[1]
    return grown, f"in +{after[0] - before[0]} B, out +{after[1] - before[1]} B over 3 pings"


def mtus(lab: LabStack, site: str) -> Outcome:
    """The site's own planned MTUs (a hub with as-deployed spokes has a wider br0: bridgeMtu)."""
    node, device = lab.node(site), lab.info(site, "tunnelInterface")
    planned = {device: int(lab.info(site, "tunnelMtu")), names.BRIDGE: lab.bridge_mtu(site)}
    found = {}
    for name in planned:
        match = re.search(r" mtu (\d+) ", node.run(f"ip -o link show {name}", check=False))
        found[name] = int(match.group(1)) if match else None
    return found == planned, ", ".join(f"{name} {found[name]} (plan {planned[name]})" for name in planned)


def gre_ports(lab: LabStack, site: str) -> Outcome:
    """The hub's bridge has an OVS GRE port to every spoke, a spoke's one to the hub (a kernel-gre
    spoke's: its kernel device t0)."""
    ports = set(lab.node(site).run(f"ovs-vsctl list-ports {names.BRIDGE}").split())
    if site == names.HUB:
        planned = {names.gre_port(spoke) for spoke in lab.spokes}
    else:
        kernel = lab.remedy(site) == KERNEL_GRE
        planned = {names.KERNEL_GRE_DEVICE if kernel else names.gre_port(names.HUB)}
    extra, missing = ports - planned, planned - ports
    detail = ", ".join(sorted(ports)) or "none"
    if extra or missing:
        detail += f"; missing {sorted(missing)}, unplanned {sorted(extra)}"
    return not extra and not missing, detail


def ping_from_hub(lab: LabStack, spoke: str) -> Outcome:
    received, sent = ping_loss(lab.node(names.HUB), lab.bridge_ip(spoke), count=CHECK_PINGS, resend=True)
    return received >= CHECK_PINGS, f"hub -> {lab.bridge_ip(spoke)}: {received}/{sent} answered"


def ping_spoke_to_spoke(lab: LabStack, spoke: str) -> Outcome:
    others = [other for other in lab.serving if other != spoke]
    if not others:
        return True, "only spoke: nothing to ping"
    each = ping_loss_each(lab.node(spoke), [lab.bridge_ip(other) for other in others], count=CHECK_PINGS,
                          at_once=PEERS_AT_ONCE)
    answers = {other: each[lab.bridge_ip(other)] for other in others}
    ok = all(received >= CHECK_PINGS for received, _sent in answers.values())
    return ok, ", ".join(f"-> {other} {r}/{s}" for other, (r, s) in answers.items()) + " (via hub)"


def dont_fragment_inner_mtu(lab: LabStack, spoke: str) -> Outcome:
    """DF pings of the spoke's br0 MTU pass, one byte more does not. An as-deployed spoke's fail
    (its GRE packets do not fit its tunnel's path: a black hole): reported as its hazard, not failed."""
    node, hub, inner = lab.node(spoke), lab.bridge_ip(names.HUB), int(lab.info(spoke, "innerMtu"))
    fits = pings(node, hub, count=3, size=inner)
    too_big = ping_loss(node, hub, count=1, size=inner + 1)[0] > 0
    evidence = f"DF {inner} B {'passes' if fits else 'fails'}, {inner + 1} B {'passes' if too_big else 'fails'}"
    if lab.remedy(spoke) == AS_DEPLOYED:
        return True, f"as-deployed, the hazard kept: {evidence}"
    return fits and not too_big, evidence


def esp_on_the_wire(lab: LabStack, spoke: str) -> Outcome:
    """Capture on the spoke's WAN bridge while the hub pings it: ESP in UDP 4500 only (a tcp spoke's:
    segments of its TCP stream to port 4500, which tcpdump does not decode as ESP)."""
    on = lab.host_uri(spoke)
    bridge = host.wan_bridge(lab.name, spoke, on=on)
    overlay = {lab.bridge_ip(site) for site in lab.node_info} | {lab.info(site, "overlayAddress")
                                                                  for site in lab.node_info}
    tcp = lab.remedy(spoke) == TCP
    answered, lines = host.capture(bridge, f"{'tcp' if tcp else 'udp'} port 4500 or proto 47 or icmp", on=on,
                                   during=lambda: pings(lab.node(names.HUB), lab.bridge_ip(spoke),
                                                        count=CAPTURE_PINGS))
    if tcp:
        esp = sum(bool(re.search(r"\.4500\b.* length [1-9]", line)) for line in lines)
    else:
        esp = sum("ESP(" in line for line in lines)
    clear = [line for line in lines if set(re.findall(r"\b(\d+\.\d+\.\d+\.\d+)(?:\.\d+)?\b", line)) & overlay]
    ok = answered and esp >= 2 * CAPTURE_PINGS and not clear
    return ok, (f"{bridge}: {esp} ESP-in-{'TCP' if tcp else 'UDP'}-4500, {len(clear)} overlay packets in the clear"
                f"{'' if answered else ', pings unanswered'}")


Check = Callable[[LabStack, str], Outcome]
# (name, check, which nodes it runs on): spoke checks also look at the hub's side of the tunnel.
# "spokes": the spokes the hub serves; "cert": sites with a certificate; "revoked": spokes whose
# certificate the hub refuses (their tunnel checks give way to that one).
CHECKS: list[tuple[str, Check, str]] = [
    ("ike-child-sa", ike_and_child_sa, "spokes"),
    ("nat-t", nat_traversal, "spokes"),
    ("hub-sees", hub_sees_spoke, "spokes"),
    ("esp-counters", esp_counters, "spokes"),
    ("mtu", mtus, "all"),
    ("gre-ports", gre_ports, "all"),
    ("ping-from-hub", ping_from_hub, "spokes"),
    ("ping-spokes", ping_spoke_to_spoke, "spokes"),
    ("df-inner-mtu", dont_fragment_inner_mtu, "spokes"),
    ("wan", remedychecks.wan, "spokes"),
    ("remedy", remedychecks.remedy, "spokes"),
    ("esp-on-wire", esp_on_the_wire, "spokes"),
    ("certificate", certchecks.certificate, "cert"),
    ("refused", certchecks.refused, "revoked"),
]


def run_check(lab: LabStack, name: str, check: Check, site: str) -> Result:
    """One check, timed; an error (SSH down, command failed) is a failure with its message as evidence."""
    start = time.monotonic()
    try:
        passed, evidence = check(lab, site)
    except (*TRANSIENT, RuntimeError, subprocess.SubprocessError) as error:
        passed, evidence = False, f"error: {str(error).splitlines()[0][:120] if str(error) else type(error).__name__}"
    return Result(site, name, passed, evidence, round(time.monotonic() - start, 1))


def site_checks(lab: LabStack, site: str) -> list[tuple[str, Check]]:
    """The checks of one site, in the order verify runs and prints them."""
    holds = {"all": True, "spokes": site in lab.serving, "cert": lab.certificate(site) is not None,
             "revoked": site in lab.revoked_spokes}
    return [(name, check) for name, check, scope in CHECKS if holds[scope]]


def run_checks(lab: LabStack, only: str | None = None, threads: int = THREADS) -> Iterator[Result]:
    """Every check on every node (or only on node `only`), one Result each, in site order.

    Sites are checked at once, up to `threads` of them (each site's checks in order on one
    thread): a check mostly waits on its VMs, and one node after the other took 104 s for
    4 spokes. Each thread has its own LabStack (own SSH connections, the hub's included);
    a site's results come out as soon as those of the sites before it have.
    """
    sites = [site for site in lab.node_info if not only or site == only]
    done: dict[str, queue.SimpleQueue[Result | None]] = {site: queue.SimpleQueue() for site in sites}
    own = threading.local()
    forks: list[LabStack] = []

    def check_site(site: str) -> None:
        try:
            if not hasattr(own, "lab"):
                own.lab = lab.fork()
                forks.append(own.lab)
            for name, check in site_checks(own.lab, site):
                done[site].put(run_check(own.lab, name, check, site))
        finally:
            done[site].put(None)

    pool = ThreadPoolExecutor(max_workers=max(1, min(threads, len(sites))), thread_name_prefix="verify")
    try:
        futures = {site: pool.submit(check_site, site) for site in sites}
        for site in sites:
            while (result := done[site].get()) is not None:
                yield result
            futures[site].result()  # what run_check does not turn into a failed Result stops verify
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for fork in forks:
            fork.close()


def summary(results: list[Result], seconds: float) -> str:
    """One line; `seconds` is verify's wall time (checks of different sites overlap, so their
    own times add up to more)."""
    failed = [f"{r.node}/{r.check}" for r in results if not r.passed]
    if failed:
        return f"{len(failed)} of {len(results)} checks FAILED ({', '.join(failed)}) in {seconds:.0f} s"
    return f"all {len(results)} checks passed in {seconds:.0f} s"
