"""The benchmark's arithmetic: systemd durations, engine event logs, ratios, the scale table and plot."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tools.bench import main as bench_main
from tools.bench import ratios, table
from tools.bench_lab import create_times, json_errors
from tools.bench_plot import plot_scale
from tools.bench_scale import (broken_sizes, floor_seconds, hub_pushes, parse_hub_probe, parse_sizes, scale_rows,
                               scale_series, spoke_mix)
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
    assert line(1830, 90.0) == ("make test: 30 min 30 s = 20.3 x T1 (T1 90 s, measured in this run beside the "
                                "other run's load; goal at most 15 x T1)")
    assert "no T1 measured" in line(60, None)
    assert line(1830, 90.0, 61.0).endswith("; 30.0 x the T1 of the last `make bench` here (61.0 s)")
    assert line(60, None, 61.0).startswith("make test: 1 min 0 s; no T1 measured")


def scale_figures() -> dict[str, object]:
    """A run of sizes 1, 4 and 16 on 2 cores with T1 = 40 s, 16 spokes over its goal, a spoke added."""
    def size(spokes: int, up: float, verify: float) -> dict[str, object]:
        hub = {"used_mib": 120.0, "total_mib": 220.0, "rss_mib": 270.0, "pluto_cpu_seconds": 3.2,
               "pluto_cpu_share": 0.012}
        return {"spokes": spokes, "vms": spokes + 1, "up_to_all_tunnels_seconds": up, "hub": hub,
                "hub_push": {"median_seconds": 4, "longest_seconds": 9, "per_spoke_spread_seconds": 1.5},
                "verify": {"seconds": verify, "passed": True, "checks": 10 * spokes + 2, "failed": []}}
    lab = {"t1_seconds": 40.0, "up_to_all_tunnels_seconds": 72.0, "add_spoke_seconds": 44.0}
    return {"machine": {"cores": 2, "when": "2026-12-03 10:00 UTC"}, "lab": lab,
            "scale": {"sizes": {"1": size(1, 44.0, 20.0), "4": size(4, 110.0, 25.0), "16": size(16, 500.0, 50.0),
                                "8": {"spokes": 8, "error": "pulumi up failed: lab-ci-hub-side timed out"}},
                      "add_spoke": {"to_spokes": 16, "seconds": 48.0, "hub_push": {"longest_seconds": 6}}}}


def test_a_size_is_measured_against_t1_times_its_vms_per_core() -> None:
    assert floor_seconds(40.0, 17, 2) == 340.0  # 16 spokes and the hub on 2 cores
    assert floor_seconds(40.0, 2, 4) == 40.0  # fewer VMs than cores: one VM's time
    out = ratios(scale_figures())
    assert out["scale_1_floor_seconds"] == 40.0 and out["scale_1_over_floor"] == 1.1
    assert out["scale_4_floor_seconds"] == 100.0 and out["scale_4_over_floor"] == 1.1
    assert out["scale_16_over_floor"] == round(500 / 340, 2)
    assert "scale_8_over_floor" not in out  # failed before its tunnels
    assert out["scale_add_spoke_over_t1"] == 1.2 and out["scale_verify_16_over_1"] == 2.5


def test_the_scale_table_says_pass_or_fail_per_goal() -> None:
    figures = scale_figures()
    figures["ratios"] = ratios(figures)
    rows = dict(scale_rows(figures))
    assert rows["scale, 4 spoke(s): pulumi up -> all tunnels"] == "110.0 s (floor 100.0 s, x1.1 (pass: goal x1.3))"
    assert "x1.47 (FAIL: goal x1.3)" in rows["scale, 16 spoke(s): pulumi up -> all tunnels"]
    assert rows["scale, 8 spoke(s)"] == "FAILED: pulumi up failed: lab-ci-hub-side timed out"
    assert rows["scale: one spoke added to 16 -> its tunnel"] == "48.0 s (x1.2 (pass: goal x1.3) T1)"
    assert rows["scale: verify of 16 spokes / of 1"] == "x2.5 (FAIL: goal x2.0)"
    without_t1 = {**figures, "lab": {}}
    without_t1["ratios"] = ratios(without_t1)
    assert "floor" not in dict(scale_rows(without_t1))["scale, 4 spoke(s): pulumi up -> all tunnels"]
    assert "scale: no T1 in this run" in dict(scale_rows(without_t1))


def test_a_size_that_failed_or_failed_verify_is_broken() -> None:
    figures = scale_figures()
    assert broken_sizes(figures) == ["8 spokes: pulumi up failed: lab-ci-hub-side timed out"]
    figures["scale"]["sizes"]["4"]["verify"].update(passed=False, failed=["spoke3/ping-spokes"])
    assert broken_sizes(figures) == ["4 spokes: verify failed ['spoke3/ping-spokes']",
                                     "8 spokes: pulumi up failed: lab-ci-hub-side timed out"]
    assert broken_sizes({"lab": {}}) == []


def test_sizes_mix_and_the_hubs_pushes() -> None:
    assert parse_sizes("1,4,8,16") == [1, 4, 8, 16]
    for bad in ("", "4,4", "0,2", "a", "251"):
        with pytest.raises(click.BadParameter):
            parse_sizes(bad)
    refused = CliRunner().invoke(bench_main, ["--scale", "1,4,4"])
    assert refused.exit_code == 2 and "distinct spoke counts" in refused.output  # before any step runs
    assert spoke_mix(1) == {"spokes": 1, "routedSpokes": [], "vtiSpokes": []}
    assert spoke_mix(5)["routedSpokes"] == spoke_mix(5)["vtiSpokes"] == [2, 4]  # as ci: spoke2 routed, VTI
    side = "urn:pulumi:ci::lab::lab:index:Lab$lab:index:Tunnel$pulumi-python:dynamic:Resource::lab-{}-tunnel-hub-side"
    spans = {side.format("spoke1"): ("Resource", 100, 130), side.format("spoke2"): ("Resource", 100, 133),
             side.format("spoke3"): ("Resource", 101, 136), "urn:x::lab-hub": ("Domain", 90, 99)}
    pushes = hub_pushes(spans, start=90)
    assert pushes["seconds"] == {"lab-spoke1-tunnel-hub-side": 30, "lab-spoke2-tunnel-hub-side": 33,
                                 "lab-spoke3-tunnel-hub-side": 35}
    assert pushes["first_done_at"] == 40 and pushes["last_done_at"] == 46
    assert pushes["per_spoke_spread_seconds"] == 3.0 and pushes["median_seconds"] == 33
    assert hub_pushes({}) == {"count": 0}


def test_pluto_cpu_and_hub_memory_from_proc() -> None:
    stat = "812 (pluto) S 1 812 812 0 -1 4194560 900 0 0 0 250 70 0 0 20 0 2 0 3000 20000000 1500"
    probe = f"{stat}\n100\n150.00\nMemTotal:         225280 kB\nMemAvailable:     102400 kB\n"
    hub = parse_hub_probe(probe)
    assert hub["pluto_cpu_seconds"] == 3.2  # (250 + 70) ticks at 100 per second
    assert hub["pluto_alive_seconds"] == 120.0  # started 30 s after boot, 150 s up
    assert hub["pluto_cpu_share"] == round(3.2 / 120, 3)
    assert hub["used_mib"] == 120.0 and hub["total_mib"] == 220.0


def test_the_scale_plot_is_a_png(tmp_path: Path) -> None:
    figures = scale_figures()
    figures["ratios"] = ratios(figures)
    path = plot_scale(figures, tmp_path / "plots" / "bench-scale.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert scale_series(figures) == {"spokes": [1, 4, 16], "up": [44.0, 110.0, 500.0],
                                     "floor": [40.0, 100.0, 340.0], "verify": [20.0, 25.0, 50.0]}
    without_t1 = plot_scale({**figures, "lab": {}}, tmp_path / "no-t1.png")
    assert without_t1.read_bytes()[:4] == b"\x89PNG"


def test_the_readme_plot_is_an_svg_that_redraws_the_same(tmp_path: Path) -> None:
    """docs/bench-scale.svg is text (no binary in the repository), and carries no date."""
    figures = scale_figures()
    first = plot_scale(figures, tmp_path / "a.svg").read_text()
    assert first.lstrip().startswith("<?xml") and "<svg" in first and "dc:date" not in first
    assert plot_scale(figures, tmp_path / "b.svg").read_text() == first


def test_plan_under_mocks_against_the_machines_python_speed() -> None:
    """Issue 16's goal 4: min of 250-spoke plans over min of the reference loop, and its table row."""
    figures = {"plan": {"250": {"median_seconds": 8.0, "min_seconds": 7.5, "runs": [7.5, 8.0, 9.0]},
                        "reference": {"min_seconds": 2.5, "runs": [2.5, 2.6, 3.0]}}}
    figures["ratios"] = ratios(figures)
    assert figures["ratios"]["plan_250_over_reference"] == 3.0
    assert "x3.0 (goal x3)" in table(figures)
    assert "plan under mocks, reference" not in table(figures)


def test_a_failed_json_run_names_each_resource_error() -> None:
    """`pulumi up --json` streams its events on stdout and leaves stderr empty when it fails."""
    urn = "urn:pulumi:ci::lab::lab:index:LabNode$pulumi-python:dynamic:Resource::lab-spoke1-tunnel-hub-side"
    stream = "\n".join(json.dumps(event) for event in (
        {"sequence": 1, "timestamp": 1, "resourcePreEvent": {"metadata": {"op": "create", "urn": urn}}},
        {"sequence": 2, "timestamp": 2, "diagnosticEvent": {"urn": urn, "severity": "error",
                                                            "message": "hub not ready\n within 1800 s"}},
        {"sequence": 3, "timestamp": 3, "diagnosticEvent": {"severity": "info", "message": "noise"}},
    ))
    assert json_errors(stream + "\nnot json") == "lab-spoke1-tunnel-hub-side: hub not ready within 1800 s"
    assert json_errors("") == ""
