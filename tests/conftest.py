import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# The program's packages (components, lablib, providers) import from the project root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# `make test` runs the one-host lab's module beside everything else (Makefile). The rest keeps this
# order: the unit tests first, the two-host lab (three VMs booting at once) last, so that its boot
# overlaps less of the one-host lab's own (the unit tests take about as long as that boot).
TWO_HOST_LAB = "tests/e2e/test_two_host_lab.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: (item.nodeid.startswith(TWO_HOST_LAB), item.nodeid.startswith("tests/e2e/")))


# `make test` sets this to the epoch second by which every test must have ended, so that a hang
# fails its test (with every thread's stack, from pytest-timeout) and ends the run with its summary
# while CI still listens, instead of CI's hard limit killing the run silently.
DEADLINE_VARIABLE = "LAB_TEST_DEADLINE"


def deadline_bound(timeout: float | None, deadline: float | None, now: float) -> float | None:
    """A test's timeout cut to what is left before the deadline (at least one second)."""
    if deadline is None:
        return timeout
    left = max(deadline - now, 1.0)
    return left if timeout is None or timeout <= 0 else min(timeout, left)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Around pytest-timeout's own wrapper: its timer gets the cut timeout; past the deadline no
    further test starts."""
    deadline = float(os.environ[DEADLINE_VARIABLE]) if os.environ.get(DEADLINE_VARIABLE) else None
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout") or 0)
    bound = deadline_bound(timeout, deadline, time.time())
    if bound != timeout:
        item.add_marker(pytest.mark.timeout(bound), append=False)
    yield
    if deadline is not None and time.time() >= deadline:
        item.session.shouldfail = f"the run's deadline ({DEADLINE_VARIABLE}) has passed: no further test starts"
