"""What the end-to-end tests measured, in one file (.lab/e2e-figures.json) that tools/test_ratio.py reads.

The one-host and two-host modules run at the same time (make test), each writing its own key:
the file is read, merged and written under a lock so that neither loses the other's figures."""
from __future__ import annotations

import fcntl
import json
import time

from lablib import names


def record(key: str, figures: dict[str, object]) -> None:
    """Put figures under key, keeping what the other module wrote; stamped, so that a later run
    tells this run's figures from an earlier run's."""
    path = names.E2E_FIGURES
    path.parent.mkdir(exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        everything = json.loads(path.read_text()) if path.exists() else {}
        everything[key] = {**figures, "recorded_at": round(time.time())}
        path.write_text(json.dumps(everything, indent=2))
    print(f"{key} figures:", json.dumps(figures), flush=True)
