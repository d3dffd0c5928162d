"""The two simulated libvirt hosts of scripts/hosts.sh, as the two-host tests use them."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from lablib import names

HOSTS_SH = str(names.PROJECT_DIR / "scripts" / "hosts.sh")


def hosts(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([HOSTS_SH, *args], text=True, capture_output=True, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"hosts.sh {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


@contextmanager
def running_hosts() -> Iterator[dict[str, str]]:
    """Hosts a and b started, their `hosts.sh env` as a dict; stopped (and nothing left) afterwards."""
    assert os.geteuid() == 0, "the two-host tests need root (network and mount namespaces)"
    hosts("start")
    try:
        yield dict(line.split("=", 1) for line in hosts("env").stdout.splitlines())
    finally:
        hosts("stop")
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "gre-host-" not in left, left
        assert not (names.STATE_DIR / "hosts").exists()
