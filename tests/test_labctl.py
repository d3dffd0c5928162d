"""The lab CLI's pure parts: impairment validation and rules, output parsing, bounds, verify's report.

What needs a running lab (the checks, impair on a VM, the drills) runs in
tests/e2e against the real one.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from pulumi import automation as auto

import labctl.cli as labctl_cli
from labctl import checks, host, impair
from labctl import stack as stacks
from labctl.cli import cli
from labctl import drills
from labctl.drills import DrillReport, boot_bound, drift, give_up_seconds, liveness_bound, redial_bound, revoke, time_recovery
from labctl.drills.recovery import outage_seconds
from labctl.node import TRANSIENT, established_conns, esp_bytes, peer_addresses, tunnel_up
from labctl.stack import LabStack, parse_overrides

TRAFFIC = """006 #4: "hub-spoke1"[1] 192.168.1.1, type=ESP, add_time=1764070000, inBytes=1680, outBytes=1680, maxBytes=2^63B, id='@spoke1'
006 #6: "hub-spoke2"[1] 192.168.3.10, type=ESP, add_time=1764070010, inBytes=0, outBytes=84, maxBytes=2^63B, id='@spoke2'
"""


class FakeNode:
    """Answers every command with the same text (what the parsers see from a VM)."""

    name = "hub"

    def __init__(self, out: str) -> None:
        self.out = out

    def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
        return self.out


def test_esp_counters_sum_every_child_sa_of_the_conn() -> None:
    """Seen on a mixed lab: a retry left an idle child SA first, the one carrying traffic second."""
    node = FakeNode("""006 #6: "spoke1-hub", type=ESP, add_time=1, inBytes=0, outBytes=0, maxBytes=2^63B, id='@hub'
006 #7: "spoke1-hub", type=ESP, add_time=2, inBytes=6904, outBytes=6736, maxBytes=2^63B, id='@hub'
""")
    assert esp_bytes(node, "spoke1-hub") == (6904, 6736)  # type: ignore[arg-type]


def test_trafficstatus_parsing_gives_conns_counters_and_peers() -> None:
    node = FakeNode(TRAFFIC)
    assert established_conns(node) == {"hub-spoke1", "hub-spoke2"}  # type: ignore[arg-type]
    assert esp_bytes(node, "hub-spoke2") == (0, 84)  # type: ignore[arg-type]
    assert peer_addresses(node, "hub-spoke1") == {"192.168.1.1"}  # type: ignore[arg-type]
    assert peer_addresses(node, "hub-spoke2") == {"192.168.3.10"}  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no child SA for hub-spoke3"):
        esp_bytes(node, "hub-spoke3")  # type: ignore[arg-type]


class CountingNode(FakeNode):
    """FakeNode that counts its commands, or fails each with a connection error."""

    def __init__(self, out: str, error: BaseException | None = None) -> None:
        super().__init__(out)
        self.commands, self.error = 0, error

    def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
        self.commands += 1
        if self.error is not None:
            raise self.error
        return self.out


def test_a_tunnel_poll_is_one_command_that_needs_payload_and_sa() -> None:
    """Every wait polls with it: one command per poll, not three (each costs the booting VM CPU)."""
    up = CountingNode("status: done\n" + TRAFFIC)
    assert tunnel_up(up, "hub-spoke2") and up.commands == 1  # type: ignore[arg-type]
    assert not tunnel_up(up, "hub-spoke3")  # type: ignore[arg-type]
    assert not tunnel_up(CountingNode("status: running\n" + TRAFFIC), "hub-spoke2")  # type: ignore[arg-type]
    for error in (OSError("connection refused"), EOFError(), TimeoutError("no exit status")):
        assert isinstance(error, TRANSIENT)
        assert not tunnel_up(CountingNode("", error), "hub-spoke2")  # type: ignore[arg-type]


def test_netem_arguments_and_read_back() -> None:
    wanted = impair.Impairment(delay_ms=50, jitter_ms=10, loss_pct=1.5, rate="2mbit", frag_drop_pct=30)
    assert wanted.netem_args == "delay 50ms 10ms loss 1.5% rate 2mbit"
    shown = "qdisc netem 8001: root refcnt 2 limit 1000 delay 50ms  10ms loss 1.5% rate 2Mbit\n"
    assert impair.Impairment(**impair.parse_netem(shown), frag_drop_pct=30) == wanted  # type: ignore[arg-type]
    assert impair.parse_netem("qdisc fq_codel 0: root refcnt 2 limit 10240p") == {}
    assert impair.Impairment().netem_args == "" and "fragments pass" in impair.Impairment().describe()


@pytest.mark.parametrize("fields, message", [
    ({"jitter_ms": 5}, "jitter needs a delay"),
    ({"delay_ms": 5, "jitter_ms": 9}, "more than the delay"),
])
def test_bad_jitter_is_refused(fields: dict[str, int], message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        impair.Impairment(**fields)


def test_fragment_rules_run_before_conntrack_defrag_and_replace_the_table() -> None:
    script = impair.fragment_rules("virbr2", "lab-ci-spoke1-impair", 30)
    assert script.startswith("table ip lab-ci-spoke1-impair {}\ndelete table ip lab-ci-spoke1-impair\n")
    assert "hook prerouting priority -500" in script  # conntrack reassembles at -400
    assert 'iifname "virbr2" ip frag-off & 0x3fff != 0 numgen random mod 10000 < 3000' in script
    assert "chain" not in impair.fragment_rules("virbr2", "t", 0)  # 0 % only removes the table


def test_blocked_udp_is_the_ike_ports_and_nft_takes_the_script() -> None:
    """nft itself checks the script (-c: nothing is changed): both rules in one chain."""
    script = impair.fragment_rules("virbr2", "lab-ci-spoke4-impair", 30, udp_blocked=True)
    assert 'iifname "virbr2" udp dport { 500, 4500 } counter drop comment "udp-blocked"' in script
    assert script.count("chain fragments") == 1 and "frag-drop 30" in script
    assert "udp" not in impair.fragment_rules("virbr2", "t", 30)
    checked = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert impair.Impairment(udp_blocked=True).describe().endswith("UDP to ports 500, 4500 blocked")


@pytest.mark.parametrize("args, message", [
    (["impair", "spoke1", "--loss", "140"], "'--loss': 140.0 is not in the range 0<=x<=100"),
    (["impair", "spoke1", "--frag-drop", "-1"], "'--frag-drop'"),
    (["impair", "spoke1", "--rate", "fast"], "'fast' is not a rate"),
    (["impair", "spoke1", "--rate", "0mbit"], "is not a rate"),
    (["impair", "spoke1", "--show", "--clear"], "one of them"),
    (["impair", "spoke1", "--delay", "5", "--clear"], "one of them"),
    (["impair", "spoke1"], "one of them"),
])
def test_bad_impairment_is_one_error_before_anything_changes(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                             message: str) -> None:
    def touched() -> None:
        raise AssertionError("the lab was touched")
    monkeypatch.setattr(host, "enter_lab_namespace", touched)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_unknown_config_key_names_the_allowed_ones() -> None:
    with pytest.raises(click.BadParameter, match="dpdDelay"):
        parse_overrides(("dpdDelai=5",))
    with pytest.raises(click.BadParameter, match="is not KEY=VALUE"):
        parse_overrides(("masterSecret=x",))
    assert parse_overrides(("spokes=3", "routedSpokes=[2]")) == {"lab:spokes": 3, "lab:routedSpokes": [2]}


def lab_with(**config: object) -> LabStack:
    nodes = {"hub": {"behindNat": False}, "spoke1": {"behindNat": True}, "spoke2": {"behindNat": False}}
    return LabStack("ci", {"nodes": nodes, "tunnelMtu": 1438, "innerMtu": 1396},
                    {"retransmitTimeout": 60, **config})


def test_drill_bounds_follow_the_liveness_delay_and_domain_type() -> None:
    assert liveness_bound(lab_with(dpdDelay=10)) == 120
    assert liveness_bound(lab_with(dpdDelay=30)) == 240
    assert redial_bound(lab_with(dpdDelay=10)) == 180
    assert boot_bound(lab_with(dpdDelay=10, domainType="qemu")) > boot_bound(lab_with(dpdDelay=10, domainType="kvm"))


def test_drill_bounds_follow_the_retransmit_timeout() -> None:
    assert liveness_bound(lab_with(dpdDelay=10, retransmitTimeout=30)) == 90
    assert redial_bound(lab_with(dpdDelay=10, retransmitTimeout=30)) == 120


@pytest.mark.parametrize(("timeout", "verdict"), [(10, 16), (16, 16), (17, 32), (30, 32), (60, 64), (600, 1024)])
def test_a_peer_is_given_up_at_the_first_retransmit_event_past_the_timeout(timeout: int, verdict: float) -> None:
    """pluto's retransmit events come 0.5, 1, 2, 4 ... s after the send (4.10's log: "will wait 0.5
    seconds", then 1, 2, 4, 8, 16); it checks the timeout at each."""
    assert give_up_seconds(lab_with(retransmitTimeout=timeout)) == verdict


@pytest.mark.parametrize("timeout", [10, 30, 60])
def test_outage_outlasts_both_ends_liveness_verdicts(timeout: int) -> None:
    """Each end probes within 2 x dpdDelay and gives the peer up at its verdict: the link comes back after both."""
    for dpd in (1, 10, 30):
        lab = lab_with(dpdDelay=dpd, retransmitTimeout=timeout)
        assert outage_seconds(lab) > 2 * dpd + give_up_seconds(lab) >= 2 * dpd + timeout


def answers(*verdicts: bool) -> Callable[[], bool]:
    """A check that gives these verdicts in turn, then keeps the last; sleeps cost no time."""
    queue = list(verdicts)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def test_a_recovery_that_does_not_hold_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI: traffic flowed 1.2 s after an outage, then the hub's late liveness verdict cut it."""
    clock = [0.0]  # a fake clock that sleeps advance (drills and labctl.node share the time module)
    monkeypatch.setattr(time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    report = DrillReport("outage")
    took = time_recovery(report, "back", answers(True, False, False, True, True), 120, print, settle=20)
    assert took == 22.0 and report.passed  # held at 0 s but lost by 20 s; back at 22 s (one poll), and held
    assert "held at 0.0 s, lost again within 20 s" in report.lines[0]
    steady = DrillReport("outage")
    assert time_recovery(steady, "back", answers(True), 120, print, settle=20) == 0.0


def failing_refresh(on_event: Callable[[auto.EngineEvent], None]) -> None:
    """A refresh that ends with an engine error on one resource, as the CLI reports it."""
    urn = "urn:pulumi:ci::lab::libvirt:index/cloudInitDisk:CloudInitDisk::lab-spoke1-seed"
    diagnostic = auto.DiagnosticEvent(message="error: while retrieving remote ISO\n", color="never",
                                      severity="error", urn=urn)
    on_event(auto.EngineEvent(sequence=1, timestamp=0, diagnostic_event=diagnostic))
    raise auto.errors.CommandError(auto.CommandResult(stdout="", stderr="", code=1))


def test_a_failed_pulumi_operation_names_each_resource_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI: the drift drill's refresh ended with two resources errored, and the test output
    cut the CommandError short before saying which."""
    class Stack:
        def refresh(self, on_output: object, on_event: Callable[[auto.EngineEvent], None]) -> None:
            failing_refresh(on_event)
    monkeypatch.setattr(drift, "open_stack", lambda name: Stack())
    errors = ["lab-spoke1-seed: error: while retrieving remote ISO"]
    assert drift.engine_step("ci", "refresh") == ({}, errors)
    monkeypatch.setattr(drift, "isolated", lambda seconds, what, function, *args: function(*args))
    report = DrillReport("drift")
    assert drift._engine("ci", "refresh", report) is None and not report.passed
    assert report.lines == [f"FAIL: pulumi refresh failed: {errors[0]}"]


def test_unknown_site_is_refused_with_the_known_ones() -> None:
    with pytest.raises(click.BadParameter, match="'spoke9' is not a site of stack ci; sites: hub, spoke1, spoke2"):
        lab_with().check_site("spoke9")


def test_verify_summary_names_every_failure() -> None:
    results = [checks.Result("spoke1", "mtu", True, "ipsec20 1438", 0.4),
               checks.Result("spoke2", "esp-on-wire", False, "3 in the clear", 3.1)]
    assert checks.summary(results, 3.6) == "1 of 2 checks FAILED (spoke2/esp-on-wire) in 4 s"
    assert checks.summary(results[:1], 0.4) == "all 1 checks passed in 0 s"
    assert "FAIL" in results[1].line() and "spoke2" in results[1].line()


def test_sites_on_a_remote_host_are_reached_through_it() -> None:
    """With a hosts output, a site on a qemu+ssh host is reached through that host (its URI); a site
    on the local host (qemu:///system) and any site of a one-host lab, where the CLI runs."""
    remote = "qemu+ssh://root@172.31.0.2/system?keyfile=/k&knownhosts=/h"
    lab = lab_with()
    lab.outputs["hosts"] = [{"name": "a", "uri": "qemu:///system", "uplink": "172.31.0.1", "sites": ["hub", "spoke2"]},
                            {"name": "b", "uri": remote, "uplink": "172.31.0.2", "sites": ["spoke1"]}]
    assert [lab.host_uri(site) for site in ("hub", "spoke1", "spoke2")] == ["", remote, ""]
    assert lab.host_of("spoke1")["uplink"] == "172.31.0.2"
    lab.node_info["spoke1"]["mgmtAddress"] = "10.10.0.3"
    assert lab.node("spoke1").jump_uri == remote
    assert lab_with().host_uri("spoke1") == "" and lab_with().hosts == []


def test_hub_sees_a_nat_spoke_on_another_host_from_that_hosts_uplink() -> None:
    class Hub:
        def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
            return '"hub-spoke1"[1] 172.31.0.2, type=ESP, add_time=1, inBytes=1, outBytes=1, id=\'@spoke1\'\n'

    lab = lab_with()
    lab.outputs["hosts"] = [{"name": "a", "uri": "qemu:///system", "uplink": "172.31.0.1", "sites": ["hub"]},
                            {"name": "b", "uri": "qemu+ssh://root@172.31.0.2/system", "uplink": "172.31.0.2",
                             "sites": ["spoke1"]}]
    lab._nodes["hub"] = Hub()  # type: ignore[assignment]
    assert checks.hub_sees_spoke(lab, "spoke1") == (True, "hub sees 172.31.0.2, plan says 172.31.0.2")


def test_the_revoke_drill_counts_refusals_on_the_conn_pluto_landed_the_spoke_on() -> None:
    """A 4.10 hub answered routed spoke2 on spoke4's template and refused its certificate there
    (drill revoke, 2026-12-06); a refusal of spoke1's address or another line is not spoke2's."""
    log = ('"hub-spoke4"[7] 192.168.3.10 #17: NSS: ERROR: IPsec certificate CN=lab-ci CA invalid: '
           'SEC_ERROR_REVOKED_CERTIFICATE: Peer\'s Certificate has been revoked.\n'
           '"hub-spoke4"[7] 192.168.3.10 #17: NSS: end certificate invalid\n'
           '"hub-spoke2"[2] 192.168.3.10 #11: responder established IKE SA\n'
           '"hub-spoke1"[3] 172.31.0.9 #4: NSS: end certificate invalid\n')

    class Hub:
        def run(self, command: str, timeout: float = 30, check: bool = True) -> str:
            return log

    lab = lab_with()
    lab.node_info["spoke2"]["wanAddress"] = "192.168.3.10"
    lab._nodes["hub"] = Hub()  # type: ignore[assignment]
    assert revoke.hub_refusals(lab, "spoke2", 0) == 2


def test_drills_run_together_check_the_lab_once_before_any_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each drill breaks its spoke at once: the others' own health check would see it broken."""
    probed: list[str] = []
    monkeypatch.setattr(drills, "overlay_flows", lambda lab, spoke: probed.append(spoke) or True)
    lab = lab_with()

    def drill(name: str) -> Callable[[], DrillReport]:
        def run() -> DrillReport:
            drills.require_healthy(lab)  # what every drill does first
            return DrillReport(name)
        return run
    reports = drills.together(lab, [drill("fragments"), drill("outage")])
    assert [r.drill for r in reports] == ["fragments", "outage"] and sorted(probed) == ["spoke1", "spoke2"]
    drills.require_healthy(lab)  # outside together: checked again
    assert sorted(probed) == ["spoke1", "spoke1", "spoke2", "spoke2"]


def test_up_waits_for_overlay_traffic_not_only_ipsec(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 17: with the hub's GRE port for spoke2 deleted, its SA came up and `up` said all tunnels
    were up. Now spoke2 must also get a GRE ping answered; the ping is tried only once its IPsec is up."""
    clock = [0.0]
    monkeypatch.setattr(time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    tried: list[tuple[str, str]] = []

    def stages(ipsec: set[str], gre: set[str]) -> list[labctl_cli.Stage]:
        return [labctl_cli.Stage(f"{name} done", name, lambda own, spoke, name=name, ok=ok:
                                 tried.append((name, spoke)) or spoke in ok)
                for name, ok in (("ipsec", ipsec), ("gre", gre))]

    class Lab:
        spokes = serving = ["spoke1", "spoke2", "spoke3"]
        revoked_spokes: list[str] = []
        node_info: dict[str, object] = {}
        hosts: list[object] = []

        def nodes(self) -> dict[str, object]:
            return {}

        def site_fork(self, site: str) -> Lab:
            return self

    monkeypatch.setattr(labctl_cli, "ready_stages", lambda lab: stages({"spoke1", "spoke2"}, {"spoke1"}))
    with pytest.raises(click.ClickException, match=r"spoke2 \(no gre\), spoke3 \(no ipsec\)$"):
        labctl_cli.wait_for_tunnels(Lab(), timeout=60)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "spoke1: gre done" in out and "spoke2: ipsec done" in out and "all 3" not in out
    assert tried.count(("ipsec", "spoke2")) == tried.count(("gre", "spoke1")) == 1  # passed: not checked again
    assert ("gre", "spoke2") in tried and ("gre", "spoke3") not in tried
    monkeypatch.setattr(labctl_cli, "ready_stages", lambda lab: stages(set(Lab.spokes), set(Lab.spokes)))
    labctl_cli.wait_for_tunnels(Lab(), timeout=60)  # type: ignore[arg-type]
    assert "all 3 tunnels up and carrying overlay traffic after 0 s" in capsys.readouterr().out


def test_the_overlay_stage_pings_the_hubs_bridge_from_the_spoke(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = lab_with()
    lab.node_info["hub"]["bridgeAddress"] = "10.20.0.1/24"
    pinged: list[str] = []
    monkeypatch.setattr(labctl_cli, "overlay_flows", lambda lab, spoke: pinged.append(spoke) or True)
    ipsec, gre = labctl_cli.ready_stages(lab)
    assert ipsec.done == "tunnel to hub established"  # the line tests/e2e/test_two_host_lab.py reads
    assert gre.waiting_for == "GRE ping to the hub's br0 10.20.0.1"
    assert gre.check(lab, "spoke2") and pinged == ["spoke2"]


def test_set_plain_value_keeps_an_array_an_array_and_every_other_key(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """drill revoke sets lab:revokedSpokes so: Pulumi refuses the string the Automation API writes."""
    monkeypatch.setattr(stacks, "PROJECT", tmp_path)
    secure = {"secure": "v1:abc"}
    (tmp_path / "Pulumi.ci.yaml").write_text(yaml.safe_dump(
        {"encryptionsalt": "v1:salt", "config": {"lab:spokes": 2, "lab:masterSecret": secure}}))
    stacks.set_plain_value("ci", "revokedSpokes", [2])
    written = yaml.safe_load((tmp_path / "Pulumi.ci.yaml").read_text())
    assert written == {"encryptionsalt": "v1:salt",
                       "config": {"lab:spokes": 2, "lab:masterSecret": secure, "lab:revokedSpokes": [2]}}


@pytest.mark.parametrize("written", [[2, 1], "[2, 1]"])
def test_plain_config_reads_an_array_as_a_list_whichever_way_it_was_written(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, written: object) -> None:
    """set_plain_value writes a YAML list, `pulumi config set --path`/set_config a string: both read back typed."""
    monkeypatch.setattr(stacks, "PROJECT", tmp_path)
    (tmp_path / "Pulumi.ci.yaml").write_text(yaml.safe_dump(
        {"config": {"lab:spokes": "3", "lab:revokedSpokes": written, "lab:vtiSpokes": []}}))
    config = stacks.plain_config("ci")
    assert (config["spokes"], config["revokedSpokes"], config["vtiSpokes"]) == (3, [2, 1], [])


@pytest.mark.parametrize("as_json", [True, False])
def test_a_drill_with_json_prints_the_document_alone_on_stdout(monkeypatch: pytest.MonkeyPatch,
                                                              as_json: bool) -> None:
    """Progress lines go to stderr with --json, so that stdout parses (the two-host test reads it)."""
    def run(lab: LabStack, echo: Callable[[str], None]) -> DrillReport:
        echo("adding spoke3 to stack ci")
        return DrillReport("interrupt", figures={"total_seconds": 3}, lines=["run 1: ended by itself"])
    monkeypatch.setattr(host, "enter_lab_namespace", lambda stack: None)
    monkeypatch.setattr(stacks, "load", lambda stack: lab_with())
    monkeypatch.setattr(labctl_cli.interrupt, "run", run)
    result = CliRunner().invoke(cli, ["drill", "interrupt", "ci", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    if as_json:
        assert yaml.safe_load(result.stdout) == {"drill": "interrupt", "passed": True, "figures": {"total_seconds": 3},
                                                 "lines": ["run 1: ended by itself"]}
        assert result.stderr == "adding spoke3 to stack ci\n"
    else:
        assert result.stdout.splitlines() == ["adding spoke3 to stack ci", "run 1: ended by itself",
                                              "drill interrupt: passed"]
