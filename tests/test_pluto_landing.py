"""Spokes that dial the hub at once: the landing conn keeps each one's half-open IKE SA (lablib/tunnel.py).

Per Debian suite (libreswan 4.10, 5.x): a hub and two pre-shared-key spokes, each a pluto in its own
root tree (tests/pluto_tree.py) and network namespace; the spokes' WAN links meet on a bridge in the
hub's namespace. The hub gets spoke1's and spoke2's hub sides as the hub push gives them (files,
then the up script, in that order); the spokes boot from their user-data. The conns are the rendered
ones without their route-based lines (this host's kernel has no XFRM interfaces), so only IKE SAs
matter here.

The race, made certain: the victim's namespace drops what it sends to UDP port 4500 (nftables, from
the host), so its IKE_SA_INIT (port 500) reaches the hub and its IKE_AUTH (port 4500: the conns force
NAT-T) does not. The victim dials; once the hub has answered it, the other spoke dials and gets in;
then the drop goes, and the victim's next IKE_AUTH retransmit reaches the hub.
- Without the landing conn (the spokes' conns only, as the push loaded them before it): the hub
  answered the victim on the other spoke's conn, the template pluto picks for a new peer (4.x: the
  newest loaded, 5.x: the oldest). The other spoke's IKE SA ends that half-open SA (uniqueids), and
  the victim's IKE_AUTH finds no IKE SA: no tunnel within LOST_SECONDS. This control shows the race
  is real here; if pluto picked otherwise, it would fail.
- With it (the push as rendered): the hub answers the victim on the landing conn, and both spokes'
  IKE SAs are up within DIAL_SECONDS.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import TEST_MASTER_SECRET, parse_lab
from lablib import names, payload
from lablib.config import LabSpec
from lablib.keys import derive_psk
from lablib.tunnel import spoke_tunnel
from pluto_tree import PlutoTree, boot_files
from test_pluto import SUITES, ipsec_steps, suite  # noqa: F401 (suite: fixture)
from test_pluto_ike import policy_only, wait_for

DIAL_SECONDS = 20  # for both IKE SAs to be up
LOST_SECONDS = 12  # without the landing, the victim is still out this long after its IKE_AUTH may pass
HOLD = "lab-landing-hold"  # the nftables table that holds the victim's IKE_AUTH back
# The spoke whose conn is not the template pluto picks for a new peer: 4.x picks the newest conn
# loaded (hub-spoke2, pushed last), 5.x the oldest (hub-spoke1).
VICTIM = {4: "spoke1", 5: "spoke2"}


def established(peer: str) -> re.Pattern[str]:
    return re.compile(rf"established IKE SA; authenticated peer using authby=secret and ID_FQDN '{re.escape(peer)}'")


def answered(conn: str, address: str) -> re.Pattern[str]:
    """The hub's answer to an IKE_SA_INIT, on conn: 4.10 `sent IKE_SA_INIT reply`, 5.x `... response to`."""
    return re.compile(rf'"{re.escape(conn)}"\[\d+\] {re.escape(address)} #\d+: sent IKE_SA_INIT (reply|response)')


@pytest.fixture
def star() -> Iterator[dict[str, str]]:
    """Three fresh network namespaces: hub, spoke1, spoke2; each spoke's names.WAN_INTERFACE is a veth
    whose peer is a port of the bridge names.WAN_INTERFACE in the hub's."""
    spaces = {site: f"lab-land-{os.getpid()}-{site}" for site in ("hub", "spoke1", "spoke2")}
    made = []

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True)

    try:
        for netns in spaces.values():
            ip("netns", "add", netns)
            made.append(netns)
        ip("-n", spaces["hub"], "link", "add", names.WAN_INTERFACE, "type", "bridge")
        ip("-n", spaces["hub"], "link", "set", names.WAN_INTERFACE, "up")
        for n, site in enumerate(("spoke1", "spoke2"), 1):
            ip("link", "add", f"p{n}", "netns", spaces["hub"], "type", "veth", "peer", "name", names.WAN_INTERFACE,
               "netns", spaces[site])
            ip("-n", spaces["hub"], "link", "set", f"p{n}", "master", names.WAN_INTERFACE, "up")
        yield spaces
    finally:
        for netns in made:
            subprocess.run(["ip", "netns", "del", netns], check=False)


def nft(netns: str, commands: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=commands, text=True, check=True)


def psk(spec: LabSpec, spoke: int) -> str:
    return derive_psk(TEST_MASTER_SECRET, spec.plan.hub.ike_id, spec.plan.spokes[spoke - 1].ike_id)


@pytest.mark.parametrize("landing", [True, False], ids=["landing", "without-landing"])
def test_spokes_dialling_at_once_both_get_in(suite: str, landing: bool, star: dict[str, str], tmp_path: Path) -> None:
    spec = parse_lab(spokes=2, routedSpokes=[1, 2])
    hub, spokes = spec.plan.hub, spec.plan.spokes
    tunnels = [spoke_tunnel(spec, spoke) for spoke in spokes]
    victim_name = VICTIM[SUITES[suite]]
    victim, other = sorted(spokes, key=lambda spoke: spoke.name != victim_name)
    with PlutoTree(suite, tmp_path / "hub", star["hub"]) as hub_tree, \
            PlutoTree(suite, tmp_path / "spoke1", star["spoke1"]) as spoke1_tree, \
            PlutoTree(suite, tmp_path / "spoke2", star["spoke2"]) as spoke2_tree:
        trees = {"spoke1": spoke1_tree, "spoke2": spoke2_tree}
        routes = "".join(f"ip route add {spoke.wan_address}/32 dev {names.WAN_INTERFACE}\n" for spoke in spokes)
        steps = [hub_tree.run("network", f"set -eu\nip addr add {hub.wan_address}/{hub.wan_subnet.prefixlen} "
                                         f"dev {names.WAN_INTERFACE}\n{routes}")]
        files, _ = boot_files(payload.node_payload(spec, "test", hub, None).user_data())
        steps += [hub_tree.install("write_files", files), hub_tree.run("compat", names.LAB_IPSEC_COMPAT),
                  hub_tree.start_pluto()]
        for n, tunnel in enumerate(tunnels, 1):
            side = payload.hub_side(spec, tunnel)
            pushed = policy_only(side.files(psk(spec, n)))
            if landing:
                steps += [hub_tree.install(f"hub-spoke{n}-files", pushed),
                          hub_tree.script(f"hub-spoke{n}-up", ipsec_steps(side.up_script))]
            else:  # the push before the landing: the conn and its secrets, loaded
                steps += [hub_tree.install(f"hub-spoke{n}-files", pushed),
                          hub_tree.run(f"hub-spoke{n}-up", f"ipsec whack --rereadsecrets\n"
                                                           f"ipsec addconn --config {names.IPSEC_CONF} "
                                                           f"{side.end.conn_name}\n")]
        for n, (spoke, tunnel) in enumerate(zip(spokes, tunnels), 1):
            tree = trees[spoke.name]
            steps.append(tree.run("network", f"set -eu\nip addr add {spoke.wan_address}/{spoke.wan_subnet.prefixlen} "
                                             f"dev {names.WAN_INTERFACE}\nip link set {names.WAN_INTERFACE} up\n"
                                             f"ip route add default via {hub.wan_address} dev {names.WAN_INTERFACE} "
                                             f"onlink\n"))
            files, _ = boot_files(payload.node_payload(spec, "test", spoke, tunnel).user_data(psk(spec, n)))
            steps += [tree.install("write_files", policy_only(files)), tree.run("compat", names.LAB_IPSEC_COMPAT),
                      tree.start_pluto(), tree.run("secrets", "ipsec whack --rereadsecrets\n"),
                      tree.run("load", f"ipsec addconn --config {names.IPSEC_CONF} {tunnel.spoke_end.conn_name}\n")]
        assert [(s.name, s.code) for s in steps if s.code] == [], "\n".join(f"{s.name}: {s.out}" for s in steps)

        def dial(spoke_name: str) -> None:
            tree, conn = trees[spoke_name], names.conn_name(spoke_name, names.HUB)
            assert tree.run("dial", f"ipsec whack --name {conn} --initiate --asynchronous\n").code == 0

        nft(star[victim.name], f"add table inet {HOLD}\n"
                               f"add chain inet {HOLD} out {{ type filter hook output priority 0; }}\n"
                               f"add rule inet {HOLD} out udp dport 4500 drop\n")
        dial(victim.name)
        template = names.LANDING_CONN if landing else names.conn_name(names.HUB, other.name)
        wait_for(hub_tree, answered(template, str(victim.wan_address)), 0, DIAL_SECONDS)
        dial(other.name)
        wait_for(hub_tree, established(other.ike_id), 0, DIAL_SECONDS)
        nft(star[victim.name], f"delete table inet {HOLD}\n")
        in_at = time.monotonic()
        if landing:
            wait_for(hub_tree, established(victim.ike_id), 0, DIAL_SECONDS)
        else:
            with pytest.raises(AssertionError, match="no /established"):
                wait_for(hub_tree, established(victim.ike_id), 0, LOST_SECONDS - (time.monotonic() - in_at))
