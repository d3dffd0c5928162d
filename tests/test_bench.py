"""The benchmark's arithmetic: systemd durations, engine event logs, ratios."""
from __future__ import annotations

import json
from pathlib import Path

from tools.bench import create_times, ratios
from tools.bench_guest import _seconds
from tools.test_ratio import line


def test_systemd_durations_in_seconds() -> None:
    assert _seconds("2min 9.104s") == 129.1
    assert _seconds("812ms") == 0.8
    assert _seconds("7.391s") == 7.4


def test_create_times_per_resource_type(tmp_path: Path) -> None:
    def event(kind: str, urn: str, at: int, op: str = "create") -> str:
        typ = "libvirt:index/domain:Domain" if "domain" in urn else "libvirt:index/network:Network"
        return json.dumps({"timestamp": at, kind: {"metadata": {"op": op, "urn": urn, "type": typ}}})
    log = tmp_path / "events.json"
    log.write_text("\n".join([
        event("resourcePreEvent", "urn:domain-a", 10), event("resourcePreEvent", "urn:domain-b", 11),
        event("resOutputsEvent", "urn:domain-a", 15), event("resOutputsEvent", "urn:domain-b", 20),
        event("resourcePreEvent", "urn:net", 3), event("resOutputsEvent", "urn:net", 4),
        event("resourcePreEvent", "urn:domain-c", 3, op="same"), json.dumps({"timestamp": 1, "summaryEvent": {}}),
    ]))
    assert create_times(log) == {"Domain": {"count": 2, "longest_seconds": 9},
                                 "Network": {"count": 1, "longest_seconds": 1}}


def test_ratios_against_the_floor_and_t1() -> None:
    lab = {"t1_seconds": 40.0, "up_to_all_tunnels_seconds": 72.0, "add_spoke_seconds": 48.0,
           "memory": {"guest_mib": 512, "rss_mib": {"hub": 600.0, "spoke1": 700.0}},
           "goodput_mbps": {"overlay": 50.0, "wan": 200.0}}
    out = ratios({"machine": {"cores": 2}, "lab": lab})
    assert out["ci_floor_seconds"] == 60.0  # 3 one-vCPU VMs on 2 cores: T1 x 3 / 2
    assert out["ci_over_floor"] == 1.2
    assert ratios({"machine": {"cores": 4}, "lab": lab})["ci_floor_seconds"] == 40.0
    assert out["add_spoke_over_t1"] == 1.2
    assert out["rss_over_guest_max"] == round(700 / 512, 2)
    assert out["overlay_over_wan"] == 0.25


def test_a_second_image_gets_its_t1_beside_the_first() -> None:
    lab = {"suite": "bookworm", "t1_seconds": 90.0, "up_to_all_tunnels_seconds": 150.0, "add_spoke_seconds": 95.0}
    out = ratios({"machine": {"cores": 2}, "lab": lab, "lab-trixie": {"suite": "trixie", "t1_seconds": 60.0}})
    assert out["t1_trixie_over_t1_bookworm"] == 0.67


def test_make_test_closes_with_its_time_as_a_multiple_of_t1() -> None:
    assert line(1830, 90.0) == "make test: 30 min 30 s = 20.3 x T1 (T1 90 s, measured in this run; goal at most 15 x T1)"
    assert "no T1 measured" in line(60, None)
