"""`hosts.sh start` after a run killed before its `stop`: empty namespaces are taken back, a
namespace with a process in it (another run's) is refused and left as it is.

CI once failed 14 two-host tests because a run killed at a session's end had left the three
namespaces, empty, and `start` refused them. These hosts have their own prefix and state
directory, so they never meet the two-host tests' hosts. Needs root: nothing is skipped.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.simhosts import HOSTS_SH

PREFIX = "gre-leftover"
NAMESPACES = [f"{PREFIX}-{h}" for h in ("ctl", "a", "b")]


def namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in listed.splitlines() if line.startswith(f"{PREFIX}-"))


@pytest.fixture
def hosts_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    assert os.geteuid() == 0, "hosts.sh needs root (network and mount namespaces)"
    env = {**os.environ, "LAB_HOSTS_PREFIX": PREFIX, "LAB_STATE": str(tmp_path)}
    try:
        yield env
    finally:
        subprocess.run([HOSTS_SH, "stop"], env=env, capture_output=True, timeout=180)
        assert namespaces() == []


def hosts_sh(env: dict[str, str], verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOSTS_SH, verb], env=env, capture_output=True, text=True, timeout=180)


def leave_empty_namespaces(state: Path) -> None:
    """What a run killed between `start` and `stop` leaves once its processes are gone."""
    for name in NAMESPACES:
        subprocess.run(["ip", "netns", "add", name], check=True)
    (state / "hosts" / "a").mkdir(parents=True)
    (state / "hosts" / "a" / "libvirtd.pid").write_text("999999\n")


def test_start_takes_back_the_empty_namespaces_of_a_killed_run(hosts_env: dict[str, str]) -> None:
    leave_empty_namespaces(Path(hosts_env["LAB_STATE"]))
    started = hosts_sh(hosts_env, "start")
    assert started.returncode == 0, started.stderr
    assert "taking back what a killed run left" in started.stderr
    assert hosts_sh(hosts_env, "status").returncode == 0


def test_start_refuses_namespaces_a_live_process_is_in(hosts_env: dict[str, str]) -> None:
    leave_empty_namespaces(Path(hosts_env["LAB_STATE"]))
    sleeper = subprocess.Popen(["ip", "netns", "exec", NAMESPACES[0], "sleep", "300"])
    try:
        refused = hosts_sh(hosts_env, "start")
        assert refused.returncode == 1
        assert "hosts in use by another run" in refused.stderr and str(sleeper.pid) in refused.stderr
        assert sleeper.poll() is None, "start ended another run's process"
        assert namespaces() == sorted(NAMESPACES)
    finally:
        sleeper.kill()
        sleeper.wait()
