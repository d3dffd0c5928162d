"""The run's deadline (tests/conftest.py, set by `make test`): a hang fails its test with the stacks,
and no further test starts, while CI still listens."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import DEADLINE_VARIABLE, deadline_bound

ROOT = Path(__file__).resolve().parents[1]


def test_a_timeout_is_cut_to_what_is_left() -> None:
    assert deadline_bound(1800, None, 100) == 1800
    assert deadline_bound(1800, 200, 100) == 100
    assert deadline_bound(30, 200, 100) == 30
    assert deadline_bound(None, 200, 100) == 100
    assert deadline_bound(1800, 50, 100) == 1


def test_a_hang_past_the_deadline_fails_and_ends_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.timeout(600)\n"
        "def test_hangs():\n    time.sleep(120)\n"
        "def test_never_starts():\n    pass\n")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                          "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=100,
                         env={**os.environ, DEADLINE_VARIABLE: str(time.time() + 3)})
    assert time.monotonic() - start < 60, run.stdout
    assert run.returncode == 1, run.stdout
    assert "Failed: Timeout (>" in run.stdout and "no further test starts" in run.stdout, run.stdout[-3000:]
    assert run.stdout.rstrip().splitlines()[-1].strip("= ").startswith("1 failed in"), run.stdout[-3000:]
