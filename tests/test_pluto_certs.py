"""Certificate conns (issue 18) load into a real pluto of each libreswan version, with no warning.

As tests/test_pluto.py does for pre-shared keys, with the certificate payload
given the way each VM gets it (tests/pluto_tree.py: files at their paths, then
scripts with sh, pluto running in between), certificates from the real
providers:
- the hub: its user-data's files and compat step, pluto up (as at boot,
  without certificates); the PKI push (HubPki.files, then hub_pki(spec)'s
  up script), then every spoke's push (hub_side files, then its up script
  without OVS and MTU lines); the PKI push again after drift (its files
  gone) and once more as it is (NSS left alone: pluto holds the hub's key),
  then with a new certificate of the hub's (imported; each conn naming it
  loaded anew); every spoke's down script twice; the push of a CRL revoking
  spoke1 (revokedSpokes [1]; the lab-crl-enforce unit it starts runs under
  pluto_tree's systemd stand-in) while no conn is loaded, twice; the push
  lifting it (the unit stopped); then, the unit started again, hub-pki-down
  twice (the unit stopped), NSS left without the lab's entries;
- a spoke: its user-data's files, its runcmd up to `systemctl start` (the
  compat step, then lab-pki-import for a certificate spoke), what the ipsec
  unit runs before pluto, pluto, its conn.
Every step exits 0 and says nothing unexpected; pluto's log holds nothing but
test_pluto's LOAD_LOG lines about each conn, and nothing that sounds like
trouble. The kernel here has no XFRM interfaces: when one cannot be made, the
conns' `ipsec-interface=` line is left out (test_pluto proves pluto refuses it
for that reason only).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from harness import TEST_MASTER_SECRET, parse_lab
from lablib import names, payload
from lablib.config import LabSpec
from lablib.keys import derive_psk
from lablib.tunnel import spoke_tunnel
from pluto_tree import Pki, PlutoTree, Step, boot_files, make_pki
from test_pluto import ADDED, LOAD_LOG, SUITES, ipsec_steps, suite, unexpected  # noqa: F401 (suite: fixture)

VARIANTS: dict[str, dict[str, Any]] = {
    "cert-ecdsa-p256": {"auth": "cert", "certKey": "ecdsa-p256"},
    "cert-rsa-mixed": {"auth": "cert", "certKey": "rsa-2048", "pskSpokes": [2], "spokes": 2},
    "cert-vti-p384": {"auth": "cert", "certKey": "ecdsa-p384", "interfaceMode": "vti"},
}
# What pluto logs when it loads a certificate conn, besides LOAD_LOG: the key of leftcert= found in NSS.
CERT_LOAD = [r'"{conn}": loaded private key matching left certificate \'[\w-]+\'']
NSS_LIST = f"certutil -L -d {names.NSS_DB}"


def psk_of(spec: LabSpec, number: int) -> str | None:
    """A pre-shared key spoke's key; None for a certificate spoke (none may be needed)."""
    if spec.config.auth_of(number) == "cert":
        return None
    spoke = spec.plan.spokes[number - 1]
    return derive_psk(TEST_MASTER_SECRET, spec.plan.hub.ike_id, spoke.ike_id)


def no_xfrmi(files: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{**f, "content": re.sub(r"(?m)^\s*ipsec-interface=.*\n", "", f["content"])} for f in files]


def probe_xfrmi(tree: PlutoTree, spec: LabSpec) -> bool:
    """Make the XFRM interface as lab-network does (hub: interfaceMode's; both here alike)."""
    if spec.config.interface_mode != "xfrm":
        return True
    name = names.tunnel_interface("xfrm", spec.config.tunnel_mark)
    return tree.run("xfrmi", f"ip link add {name} type xfrm dev {names.WAN_INTERFACE} "
                             f"if_id {spec.config.tunnel_mark}\n").code == 0


def network(tree: PlutoTree, address: str, gateway: str = "") -> None:
    route = f"ip route add default via {gateway}\n" if gateway else ""
    assert tree.run("network", f"set -eu\nip addr add {address} dev {names.WAN_INTERFACE}\n{route}").code == 0


# Steps that only read: their output is the state, no message.
READS = ("status", "nss", "nss-again", "nss-down", "left", "enforcing")


def check_steps(steps: list[Step], conns: list[str], where: str) -> None:
    for step in steps:
        assert step.code == 0 and (step.name in READS or unexpected(step.out, conns, [ADDED]) == []), \
            f"{where} {step.name}: exit {step.code}:\n{step.out}"


def check_log(tree: PlutoTree, conns: list[str], where: str) -> None:
    log = tree.log()
    assert unexpected(log, conns, LOAD_LOG + CERT_LOAD) == [], f"{where}: " + "\n".join(log)
    for conn in conns:
        assert f'"{conn}": added IKEv2 connection' in log, f"{where} {conn}: " + "\n".join(log)


def nss_nicknames(listing: str) -> dict[str, str]:
    """certutil -L's table: nickname -> trust attributes."""
    rows = [re.fullmatch(r"(\S.*?)\s+(\S*,\S*,\S*)", line.strip()) for line in listing.splitlines()]
    return {row[1]: row[2] for row in rows if row}


def hub_run(suite: str, spec: LabSpec, pki: Pki, revoking: payload.HubPki, work: Path) -> None:
    plan, where = spec.plan, f"{suite} hub"
    sides = [payload.hub_side(spec, spoke_tunnel(spec, spoke)) for spoke in plan.spokes]
    conns = [side.end.conn_name for side in sides]
    hub_pki = payload.hub_pki(spec)
    revoked = [name for name in pki.credentials if name != names.HUB][:1]
    with PlutoTree(suite, work) as tree:
        network(tree, f"{plan.hub.wan_address}/{plan.hub.wan_subnet.prefixlen}")
        xfrmi = probe_xfrmi(tree, spec)
        check = len(tree.steps)
        tree.shim_systemd()
        files, runcmd = boot_files(payload.node_payload(spec, "test", plan.hub, None).user_data())
        tree.install("write_files", files)
        assert [c[0] for c in runcmd if c[0] not in ("systemctl", "sh", "ln")] == [names.LAB_IPSEC_COMPAT], where
        tree.run("compat", names.LAB_IPSEC_COMPAT + "\n")
        tree.start_pluto()
        tree.install("pki-files", pki.hub_files(hub_pki))
        tree.script("pki-up", hub_pki.up_script)
        if SUITES[suite] == 4:  # a new CA under a running 4.x pluto restarts it (lab-pki-import)
            assert "Pluto is shutting down" in tree.log(), f"{where}: the new CA did not restart pluto"
            tree.log_start = tree.log_size()  # the restarted pluto's start, as start_pluto skips the first
        for side, spoke in zip(sides, plan.spokes):
            files = side.files(psk_of(spec, spoke.number))
            tree.install(f"{side.end.conn_name}.files", files if xfrmi else no_xfrmi(files))
            tree.script(f"{side.end.conn_name}.up", ipsec_steps(side.up_script))
        status = tree.run("status", "ipsec whack --status\n")
        listed = tree.run("nss", NSS_LIST + "\n")
        # Drift: the pushed files gone, the CRL's marker too; the push puts them back (and imports
        # the same CRL again), and leaves NSS as it is (pluto holds the hub's key).
        tree.run("drift", f"rm {names.PKI_DIR}/*\n")
        tree.install("pki-files-again", pki.hub_files(hub_pki))
        tree.script("pki-up-again", hub_pki.up_script)
        tree.script("pki-up-unchanged", hub_pki.up_script)
        # A new certificate of the hub's: imported, and the conns naming it loaded anew.
        pki.renew(names.HUB)
        tree.install("pki-files-renewed", pki.hub_files(hub_pki))
        tree.script("pki-up-renewed", hub_pki.up_script)
        relisted = tree.run("nss-again", NSS_LIST + "\n")
        for side in sides:
            for again in ("", "-again"):
                tree.script(f"{side.end.conn_name}.down{again}", ipsec_steps(side.down_script))
        # A revocation pushed when the revoked spoke's conn is not loaded (as at a lab's first push).
        pki.revoke(*revoked)
        tree.install("pki-files-revoking", pki.hub_files(revoking))
        tree.script("pki-up-revoking", revoking.up_script)
        enforcing = tree.run("enforcing", f"cat /run/unit-{names.LAB_CRL_ENFORCE_UNIT}.pid\n")
        tree.script("pki-up-revoked", revoking.up_script)
        # The revocation lifted (the spoke back with a new certificate; the CRL as it was): the run
        # stops at once, or it would tear the spoke's new tunnel down.
        tree.install("pki-files-lifted", pki.hub_files(hub_pki))
        tree.script("pki-up-lifted", hub_pki.up_script)
        lifted = tree.run("lifted", f"! [ -e /run/unit-{names.LAB_CRL_ENFORCE_UNIT}.pid ]\n")
        tree.run("enforcing-again", f"systemd-run --unit={names.LAB_CRL_ENFORCE_UNIT} {names.LAB_CRL_ENFORCE}\n")
        tree.script("pki-down", hub_pki.down_script)
        tree.script("pki-down-again", hub_pki.down_script)
        enforced = tree.run("enforced", f"! [ -e /run/unit-{names.LAB_CRL_ENFORCE_UNIT}.pid ]\n")
        emptied = tree.run("nss-down", NSS_LIST + "\n")
        left = tree.run("left", f"ls {names.PKI_DIR} {names.IPSEC_DIR}\n")
        checkconfig = tree.run("checkconfig", f"ipsec addconn --config {names.IPSEC_CONF} --checkconfig\n")
    check_steps(tree.steps[check:], conns, where)
    assert checkconfig.out == "", where
    check_log(tree, conns, where)
    assert enforcing.code == 0 and enforced.code == 0, f"{where}: the push started lab-crl-enforce, the down stopped it"
    assert lifted.code == 0, f"{where}: the push lifting the revocation left lab-crl-enforce running"
    for side in sides:  # loaded by its push, then (a certificate's) anew for the hub's new certificate
        added = tree.log().count(f'"{side.end.conn_name}": added IKEv2 connection')
        assert added == (2 if side.end.uses_cert else 1), f"{where} {side.end.conn_name}"
    for side in sides:
        assert f'"{side.end.conn_name}":' in status.out, f"{where}: {status.out}"
    hub, ca = names.cert_nickname(names.HUB), names.CA_NICKNAME
    for listing in (listed, relisted):
        assert nss_nicknames(listing.out) == {hub: "u,u,u", ca: "CT,,"}, f"{where}:\n{listing.out}"
    assert hub not in nss_nicknames(emptied.out) and ca not in nss_nicknames(emptied.out), emptied.out
    assert not any(f"{conn}." in left.out for conn in conns) and "p12" not in left.out, left.out


def spoke_run(suite: str, spec: LabSpec, pki: Pki, number: int, work: Path) -> None:
    spoke = spec.plan.spokes[number - 1]
    tunnel = spoke_tunnel(spec, spoke)
    cert, conn, where = pki.credentials.get(spoke.name), tunnel.spoke_end.conn_name, f"{suite} {spoke.name}"
    user_data = payload.node_payload(spec, "test", spoke, tunnel).user_data(psk_of(spec, number), cert)
    files, runcmd = boot_files(user_data)
    ran = []
    with PlutoTree(suite, work) as tree:
        network(tree, f"{spoke.wan_address}/{spoke.wan_subnet.prefixlen}", str(spoke.wan_gateway))
        xfrmi = probe_xfrmi(tree, spec)
        check = len(tree.steps)
        tree.install("write_files", files if xfrmi else no_xfrmi(files))
        for command in runcmd:
            if command[0] != "systemctl":
                ran.append(command[0])
                tree.run(command[0], shlex.join(command) + "\n")
            elif "ipsec.service" in command and command[1] == "start":
                tree.start_pluto()  # the unit's ExecStartPre, then pluto and its --autoall (below)
                tree.run("secrets", "ipsec whack --rereadsecrets\n")
                tree.run(f"{conn}.load", f"ipsec addconn --config {names.IPSEC_CONF} {conn}\n")
        listed = tree.run("nss", NSS_LIST + "\n")
    check_steps(tree.steps[check:], [conn], where)
    check_log(tree, [conn], where)
    assert f"{conn}.load" in [step.name for step in tree.steps], f"{where}: no `systemctl start ipsec.service`"
    nicknames = nss_nicknames(listed.out)
    if cert is None:
        assert ran == ["sh", names.LAB_IPSEC_COMPAT, "ln"] and spoke.name not in nicknames, where
    else:
        assert ran == ["sh", names.LAB_IPSEC_COMPAT, names.LAB_PKI_IMPORT, "ln"], where
        assert nicknames == {spoke.name: "u,u,u", names.CA_NICKNAME: "CT,,"}, f"{where}:\n{listed.out}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_certificate_conns_load_on_hub_and_spokes_without_a_warning(suite: str, variant: str,
                                                                    tmp_path: Path) -> None:
    spec = parse_lab(**VARIANTS[variant])
    pki = make_pki(spec)
    revoking = payload.hub_pki(parse_lab(**VARIANTS[variant], revokedSpokes=[1]))
    hub_run(suite, spec, pki, revoking, tmp_path / "hub")
    for spoke in spec.plan.spokes:
        spoke_run(suite, spec, pki, spoke.number, tmp_path / spoke.name)
