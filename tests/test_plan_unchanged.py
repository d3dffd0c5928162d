"""Existing stacks plan exactly as before a change that must not touch them (the remedies of issue 20
added keys whose defaults change nothing): the whole plan under mocks, every resource and prop, as
tools/plan_dump.py prints it, against its digest. A change that is meant to alter the plan updates
the digest, and its commit says why:

    venv/bin/python tools/plan_dump.py --spokes 2 --stack dev | sha256sum
"""
from __future__ import annotations

import hashlib
import json

import pytest

from tools.mockrun import run_program, stack_values
from tools.plan_dump import plan

# Recorded at 3e87789, before lab:asDeployedSpokes and lab:spokeWans existed; updated on 2026-12-05 for
# the first boot's runcmd (ipsec stopped only if running, lab-network enabled by its link, after the
# certificate import). Both stacks name no file of the lab's cache, so the plan is the same on every machine.
DIGESTS = {
    ("dev", 2): "91a581b03a38969c850b2bb2bd8b54ba9f50ba2bc2dc445487d83ebe5a0a7f65",
    (None, 3): "a498f63f590970a7750870e545b65982937bfd3326a78dcb3c8f1f9424691f0a",
}


@pytest.mark.parametrize(("stack", "spokes"), list(DIGESTS))
def test_the_plan_of_a_stack_without_remedies_is_unchanged(stack: str | None, spokes: int) -> None:
    text = json.dumps(plan(run_program(stack_values({"spokes": spokes}, stack=stack))), indent=1, sort_keys=True)
    assert hashlib.sha256((text + "\n").encode()).hexdigest() == DIGESTS[(stack, spokes)]
