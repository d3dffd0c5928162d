"""lab-updown, every conn's leftupdown=, run by the real sh with pluto's variables, its commands
recorded by stand-ins for ip and ipsec on PATH (the route itself is proven in the VMs: verify's
overlay pings of the end-to-end labs go over it)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lablib import render

XFRMI = {"PLUTO_XFRMI_ROUTE": "yes", "PLUTO_VIRT_INTERFACE": "ipsec20", "PLUTO_PEER_CLIENT": "240.0.0.1/32"}


def run_updown(tmp_path: Path, verb: str, env: dict[str, str], *args: str) -> list[str]:
    """The commands lab-updown ran for verb, one line each: name and arguments."""
    script = tmp_path / "lab-updown"
    script.write_text(render.render_updown())
    log = tmp_path / "ran"
    for name in ("ip", "ipsec"):
        stand_in = tmp_path / name
        stand_in.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        stand_in.chmod(0o755)
    done = subprocess.run(["sh", str(script), *args], env={"PATH": f"{tmp_path}:{os.environ['PATH']}",
                                                           "PLUTO_VERB": verb, **env},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("verb", ["route-client", "route-host"])
def test_an_xfrm_conn_routed_puts_the_peer_on_its_ipsec_device(tmp_path: Path, verb: str) -> None:
    assert run_updown(tmp_path, verb, XFRMI) == ["ip -4 route replace 240.0.0.1/32 dev ipsec20"]


@pytest.mark.parametrize("verb", ["unroute-client", "unroute-host"])
def test_an_xfrm_conn_unrouted_takes_the_route_away(tmp_path: Path, verb: str) -> None:
    assert run_updown(tmp_path, verb, XFRMI) == ["ip -4 route del 240.0.0.1/32 dev ipsec20"]


@pytest.mark.parametrize("verb", ["prepare-client", "up-client", "down-client", "up-host", "down-host"])
def test_an_xfrm_conn_runs_nothing_else(tmp_path: Path, verb: str) -> None:
    assert run_updown(tmp_path, verb, XFRMI) == []


def test_any_other_conn_runs_libreswans_own_with_its_arguments(tmp_path: Path) -> None:
    vti = {"VTI_IFACE": "ipsec0", "PLUTO_PEER_CLIENT": "240.0.0.1/32"}
    assert run_updown(tmp_path, "route-client", vti, "--route", "yes") == ["ipsec _updown --route yes"]
