"""Drills that cut a site off and time how long the lab takes to heal by itself.

- outage: a spoke's WAN link goes down (libvirt's link state of its NIC)
  for longer than the IKE liveness timeout, then up again; the hub's pluto must keep running;
- redial: the spoke's post-NAT address changes, as after an ADSL
  reconnect (a second address on the hub's WAN bridge and an SNAT rule to
  it ahead of libvirt's masquerade, the spoke's conntrack entries deleted);
- reboot: the hub and one spoke or more reboot together, then the hub's ipsec service restarts.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence

import click

from lablib import names
from labctl import checks, host
from labctl.drills import (DrillReport, Echo, all_flow, boot_bound, give_up_seconds, liveness_bound, overlay_flows,
                           pick_spoke, redial_bound, require_healthy, settle_seconds, time_recovery)
from labctl.node import TRANSIENT, peer_addresses
from labctl.stack import LabStack


def outage(lab: LabStack, site: str | None, echo: Echo) -> DrillReport:
    spoke = pick_spoke(lab, site)
    require_healthy(lab)
    report = DrillReport("outage")
    on = lab.host_uri(spoke)
    domain, tap = lab.domain(spoke), host.wan_tap(lab.name, spoke, on=on)
    down_for = outage_seconds(lab)
    before = hub_ike_daemon(lab)
    echo(f"{spoke}'s WAN link ({tap}) down for {down_for} s")
    host.virsh("domif-setlink", domain, tap, "down", check=True, on=on)
    try:
        time.sleep(down_for)
    finally:
        host.virsh("domif-setlink", domain, tap, "up", check=True, on=on)
    report.figures.update({"site": spoke, "down_seconds": down_for})
    report.lines.append(f"{spoke}'s WAN was down for {down_for} s")
    time_recovery(report, f"{spoke} overlay traffic after the link came up",
                  lambda: overlay_flows(lab, spoke), liveness_bound(lab), echo, settle_seconds(lab))
    after = hub_ike_daemon(lab)
    if after != before:
        report.fail(f"the hub's pluto restarted during {spoke}'s outage (main PID, restarts: {before} -> {after}; "
                    "its journal says why: journalctl -u ipsec on the hub)")
    else:
        report.lines.append(f"the hub's pluto kept running (main PID {before[0]})")
    return report


def hub_ike_daemon(lab: LabStack) -> list[str]:
    """The hub's pluto as systemd knows it, [main PID, restarts]: one spoke's fault must leave it be
    (libreswan 5.2 aborted on a tcp spoke's failed stream: cloud-init/esp-in-tcp.j2)."""
    return lab.node(names.HUB).run("systemctl show -p MainPID -p NRestarts --value ipsec").split()


def outage_seconds(lab: LabStack) -> int:
    """Long enough for both ends to give the other up before the link comes back.

    Each end probes within 2 x dpdDelay of the last packet it got, and its verdict comes
    give_up_seconds after the first probe even if the link is back by then: the last retransmit
    went out before, into the outage (at 32 s of 64 with libreswan's default timeout). A hub that
    gives up this way deletes its SA without telling the spoke, which notices only a liveness cycle
    later (CI: traffic 1.2 s after an 80 s outage, then none).
    """
    return 3 * int(lab.config["dpdDelay"]) + round(give_up_seconds(lab))  # type: ignore[arg-type]


def redial(lab: LabStack, site: str | None, echo: Echo) -> DrillReport:
    spoke = pick_spoke(lab, site)
    if not lab.node_info[spoke]["behindNat"]:
        raise click.BadParameter(f"{spoke} is routed, not behind NAT: no public address to change",
                                 param_hint="--site")
    if lab.hosts:
        raise click.ClickException("redial re-addresses the hub's WAN bridge on the NAT box of the spoke: that "
                                   "is one machine only in a lab on one host (lab:hosts unset)")
    require_healthy(lab)
    report = DrillReport("redial")
    hub_bridge = host.wan_bridge(lab.name, names.HUB)
    old = host.bridge_address(hub_bridge)
    subnet = ipaddress.ip_interface(host.run("ip", "-4", "-o", "addr", "show", "dev", hub_bridge).split()[3]).network
    new = str(subnet.broadcast_address - 1)
    spoke_wan, hub_wan = lab.info(spoke, "wanAddress"), lab.info(names.HUB, "wanAddress")
    snat = ["-s", f"{spoke_wan}/32", "-d", f"{hub_wan}/32", "-j", "SNAT", "--to-source", new]
    hub_conn = names.conn_name(names.HUB, spoke)

    def seen_from(address: str) -> bool:
        return overlay_flows(lab, spoke) and peer_addresses(lab.node(names.HUB), hub_conn) == {address}

    echo(f"{spoke}'s public address {old} -> {new}")
    host.run("ip", "addr", "add", f"{new}/{subnet.prefixlen}", "dev", hub_bridge)
    try:
        host.run("iptables", "-t", "nat", "-I", "POSTROUTING", "1", *snat)
        forget_mappings(spoke_wan)
        time_recovery(report, f"{spoke} traffic flows from its new address", lambda: seen_from(new),
                      redial_bound(lab), echo, settle_seconds(lab))
    finally:
        host.run("iptables", "-t", "nat", "-D", "POSTROUTING", *snat, check=False)
        forget_mappings(spoke_wan)
        host.run("ip", "addr", "del", f"{new}/{subnet.prefixlen}", "dev", hub_bridge, check=False)
    echo(f"{spoke}'s public address back to {old}")
    time_recovery(report, f"{spoke} traffic flows from its old address again", lambda: seen_from(old),
                  redial_bound(lab), echo, settle_seconds(lab))
    report.figures.update({"site": spoke, "old_address": old, "new_address": new})
    return report


def forget_mappings(address: str) -> None:
    """Delete the NAT mappings of address (exit 1 just means there were none)."""
    host.run("conntrack", "-D", "-s", address, check=False)


def boot_id(lab: LabStack, site: str) -> str:
    return lab.node(site).run("cat /proc/sys/kernel/random/boot_id").strip()


def tunnels_back(lab: LabStack) -> bool:
    """Every spoke's SA, every planned GRE port and MTU, and overlay traffic: as before the fault."""
    try:
        if not all_flow(lab):
            return False
        for site in lab.node_info:
            for check in (checks.gre_ports, checks.mtus):
                if not check(lab, site)[0]:
                    return False
        return all(checks.ike_and_child_sa(lab, spoke)[0] for spoke in lab.serving)
    except RuntimeError:  # a command failed on a VM still starting its services
        return False


def reboot(lab: LabStack, sites: Sequence[str], echo: Echo) -> DrillReport:
    """The hub and the spokes reboot together: each VM boots once (two boots cost about one on two
    cores), the spokes dialling a hub that is still booting. A spoke that reboots while the hub keeps
    its old SAs is what `labctl rebuild` does (the end-to-end test rebuilds its added spoke). Spokes
    of different kinds reboot differently (an OVS kernel datapath or its userspace one, a kernel GRE
    device): the end-to-end test reboots two."""
    spokes = list(dict.fromkeys(pick_spoke(lab, site) for site in (sites or [None])))
    require_healthy(lab)
    report = DrillReport("reboot")
    victims = (names.HUB, *spokes)
    before = {victim: boot_id(lab, victim) for victim in victims}
    echo(f"rebooting {', '.join(victims)}")
    start = time.monotonic()
    for victim in victims:
        lab.node(victim).run("systemd-run --on-active=1 systemctl reboot")

    def rebooted_and_back() -> bool:
        try:
            if any(boot_id(lab, victim) == before[victim] for victim in victims):
                return False
        except (*TRANSIENT, RuntimeError):
            return False
        return tunnels_back(lab)

    time_recovery(report, f"{', '.join(victims)} rebooted: every tunnel and GRE port back", rebooted_and_back,
                  boot_bound(lab, len(victims)), echo, settle_seconds(lab), since=start)
    echo("restarting the hub's ipsec service")
    start = time.monotonic()
    lab.node(names.HUB).run("systemctl restart ipsec")
    time_recovery(report, "hub ipsec restart: every tunnel back", lambda: tunnels_back(lab),
                  liveness_bound(lab), echo, settle_seconds(lab), since=start)
    report.figures["site"] = ",".join(spokes)
    return report
