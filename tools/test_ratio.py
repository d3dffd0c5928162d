"""The closing line of `make test`: how long it took, as a multiple of T1 measured in the same run.

    venv/bin/python tools/test_ratio.py START_EPOCH

T1 (one lab VM, from its domain's start to its tunnel) comes from the two-host
end-to-end test of this run (.lab/e2e-figures.json, recorded after START_EPOCH),
which takes it the way `make bench` does: the spoke it adds to the running lab
(spoke4, in `drill interrupt`'s last run). The one-host lab runs beside it, so
that VM boots with the other cores busy: an in-run T1 is longer than the bench's.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lablib import names  # noqa: E402

GOAL = 15  # a cold `make test` at most 15 x T1 (it fits CI's 90 minutes on a slow machine)


def figures(path: Path, key: str) -> dict[str, object]:
    """One part of a figures file (e2e or bench); empty when the file or the part is missing."""
    return (json.loads(path.read_text()) if path.exists() else {}).get(key) or {}


def t1_of_run(since: float) -> float | None:
    """T1 from this run's end-to-end figures; None if the run recorded none (or an older run did)."""
    found = figures(names.E2E_FIGURES, "two_hosts")
    return found.get("t1_seconds") if found.get("recorded_at", 0) >= since else None  # type: ignore[return-value]


def bench_t1() -> float | None:
    """T1 of the last `make bench` in this checkout, if any: the reference, taken with the machine idle."""
    return figures(names.BENCH_FIGURES, "lab").get("t1_seconds")  # type: ignore[return-value]


def line(seconds: float, t1: float | None, bench: float | None = None) -> str:
    """The closing line. The in-run T1 boots while the other pytest run loads the machine, so it
    varies from run to run (140 s and 189 s on one machine, one hour apart) and flatters the ratio;
    the bench's T1, where there is one, is the figure to judge by."""
    took = f"make test: {int(seconds // 60)} min {int(seconds % 60)} s"
    if not t1:
        took += "; no T1 measured in this run (the end-to-end test did not get to add a spoke)"
    else:
        took += (f" = {seconds / t1:.1f} x T1 (T1 {t1:.0f} s, measured in this run beside the other run's load; "
                 f"goal at most {GOAL} x T1)")
    if bench:
        took += f"; {seconds / bench:.1f} x the T1 of the last `make bench` here ({bench:.1f} s)"
    return took


if __name__ == "__main__":
    start = float(sys.argv[1])
    print(line(time.time() - start, t1_of_run(start), bench_t1()))
