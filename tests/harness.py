"""What the fast tests share: the mock runner (tools/mockrun.py) and parse_lab."""
from __future__ import annotations

from typing import Any

from lablib.config import LabSpec, parse_config
from tools.mockrun import (PROJECT, ROOT, SECRET_SIG, TEST_MASTER_SECRET, Recorded, Run,  # noqa: F401
                           boot_files, load_stack, mock_secrets, project_config, run_program, ssh_private_key,
                           ssh_public_key, stack_values)


def parse_lab(**overrides: Any) -> LabSpec:
    """Validated config, address plan and MTUs for the defaults plus overrides (no Pulumi)."""
    return parse_config(stack_values(overrides, secrets=False), mock_secrets())
