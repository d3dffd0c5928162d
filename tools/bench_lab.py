"""The lab helpers the benchmark drives, imported in one place.

tools/labctl.py and tools/probe.py are moving into the lab's CLI package:
when they do, only these imports change.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lablib import names  # noqa: E402
from tools.mockrun import run_program, stack_values  # noqa: E402
from tools.labctl import lab_nodes, pulumi, stack_config, stack_nodes  # noqa: E402
from tools.probe import Node, cloud_init_done, established_conns, wait_until  # noqa: E402

__all__ = ["ROOT", "names", "run_program", "stack_values", "lab_nodes", "pulumi", "stack_config",
           "stack_nodes", "Node", "cloud_init_done", "established_conns", "wait_until"]
