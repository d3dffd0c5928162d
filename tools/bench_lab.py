"""The lab helpers the benchmark drives, imported in one place (re-point here when the CLI moves)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from labctl.cli import stack_config  # noqa: E402
from labctl.node import Node, cloud_init_done, established_conns, wait_until  # noqa: E402
from labctl.stack import ssh_key  # noqa: E402
from lablib import names  # noqa: E402
from tools.mockrun import run_program, stack_values  # noqa: E402

__all__ = ["ROOT", "names", "run_program", "stack_values", "lab_nodes", "pulumi", "stack_config",
           "stack_nodes", "Node", "cloud_init_done", "established_conns", "wait_until"]


def pulumi(stack: str, *args: str) -> str:
    """The pulumi CLI on stack (scripts/pulumi.sh: the run project, local backend, namespace)."""
    result = subprocess.run([str(ROOT / "scripts" / "pulumi.sh"), stack, *args], text=True,
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"pulumi {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def stack_nodes(stack: str) -> dict[str, dict[str, object]]:
    return json.loads(pulumi(stack, "stack", "output", "nodes", "--json"))


def lab_nodes(stack: str) -> dict[str, Node]:
    return {name: Node(name, str(info["mgmtAddress"]), ssh_key()) for name, info in stack_nodes(stack).items()}
