"""`verify`'s checks of a spoke's WAN and of what its remedy promises (lablib/remedies.py);
labctl/checks.py runs them with the others. An as-deployed spoke passes when its hazard is still in
place: it is declared."""
from __future__ import annotations

import re

from lablib import names
from lablib.remedies import AS_DEPLOYED, COMPUTED_MTU, KERNEL_GRE, TCP
from labctl import impair
from labctl.stack import LabStack

Outcome = tuple[bool, str]


def route_lock(lab: LabStack, spoke: str) -> int | None:
    """The MTU the spoke's route to the hub's overlay address is locked to, None if it is not."""
    route = lab.node(spoke).run(f"ip -o route get {lab.info(names.HUB, 'overlayAddress')}")
    found = re.search(r"\bmtu lock (\d+)", route)
    return int(found.group(1)) if found else None


def wan(lab: LabStack, spoke: str) -> Outcome:
    """The spoke's WAN link has its planned MTU (lab:spokeWans, else lab:wanMtu); the impairment in
    force is reported, and the declared one beside it where `impair` has changed it, not judged."""
    planned = lab.wan_mtu(spoke)
    link = lab.node(spoke).run(f"ip -o link show {names.WAN_INTERFACE}", check=False)
    found = re.search(r" mtu (\d+) ", link)
    mtu = int(found.group(1)) if found else None
    now, declared = impair.current(lab, spoke), lab.declared_wan(spoke)
    differs = "" if vars(now) == vars(declared) else f" (declared: {declared.describe()})"
    return mtu == planned, f"{names.WAN_INTERFACE} MTU {mtu} (plan {planned}); {now.describe()}{differs}"


def remedy(lab: LabStack, spoke: str) -> Outcome:
    """computed-mtu: the route to the hub is not locked (the tunnel MTU does the work); as-deployed:
    the route locked to the WAN MTU and the GRE port without DF, the failure kept; kernel-gre: t0 a
    gretap device of the planned br0 MTU on a br0 in OVS's userspace datapath; tcp: the MTUs as
    deployed, and the SAs in the TCP stream to the hub's port 4500 (`encap type espintcp`), with GRO
    off on the WAN NIC. That the stream starts with IKETCP on the wire is `drill remedies`' to see:
    it is said once, when the stream opens."""
    node, kind = lab.node(spoke), lab.remedy(spoke)
    lock, tunnel = route_lock(lab, spoke), int(lab.info(spoke, "tunnelMtu"))
    if kind == COMPUTED_MTU:
        return lock is None, f"computed MTU: route to the hub {'locked to ' + str(lock) if lock else 'not locked'}"
    locked = lock == tunnel
    lock_text = f"route to the hub locked to {lock} (plan {tunnel})"
    if kind == AS_DEPLOYED:
        df = node.run(f"ovs-vsctl get interface {names.gre_port(names.HUB)} options:df_default", check=False)
        no_df = df.strip().strip('"') == "false"
        return locked and no_df, f"as-deployed, the hazard kept: {lock_text}, GRE {'without' if no_df else 'WITH'} DF"
    if kind == TCP:
        return esp_in_tcp(lab, spoke, locked, lock_text)
    assert kind == KERNEL_GRE, kind
    device = names.KERNEL_GRE_DEVICE
    link = node.run(f"ip -d -o link show {device}", check=False)
    mtu = re.search(r" mtu (\d+) ", link)
    datapath = node.run(f"ovs-vsctl get bridge {names.BRIDGE} datapath_type").strip().strip('"')
    on_bridge = node.run(f"ovs-vsctl port-to-br {device}", check=False).strip() == names.BRIDGE
    planned = int(lab.info(spoke, "innerMtu"))
    ok = " gretap " in link and mtu is not None and int(mtu.group(1)) == planned and datapath == "netdev" \
        and on_bridge and locked
    return ok, (f"kernel-gre: {device} {'gretap' if ' gretap ' in link else 'NOT gretap'} MTU "
                f"{mtu.group(1) if mtu else 'none'} (plan {planned}){'' if on_bridge else ' NOT'} on "
                f"{names.BRIDGE} ({datapath} datapath), {lock_text}")


def esp_in_tcp(lab: LabStack, spoke: str, locked: bool, lock_text: str) -> Outcome:
    node, hub = lab.node(spoke), lab.info(names.HUB, "wanAddress")
    states = node.run("ip xfrm state").count("encap type espintcp")
    stream = node.run(f"ss -Htn state established '( dport = :{names.ESP_IN_TCP_PORT} )'", check=False)
    to_hub = f"{hub}:{names.ESP_IN_TCP_PORT}" in stream
    gro = re.search(r"^generic-receive-offload: (\w+)", node.run(f"ethtool -k {names.WAN_INTERFACE}"), re.MULTILINE)
    gro_off = gro is not None and gro.group(1) == "off"
    return locked and to_hub and states >= 2 and gro_off, (
        f"tcp: {states} SA(s) of encap espintcp (2 expected), {'a' if to_hub else 'NO'} TCP stream to "
        f"{hub}:{names.ESP_IN_TCP_PORT}, GRO {gro.group(1) if gro else 'unknown'} on {names.WAN_INTERFACE}, "
        f"{lock_text}")
