import sys
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
