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

# Recorded at 3e87789, before lab:asDeployedSpokes and lab:spokeWans existed. Both stacks name no file
# of the lab's cache, so the plan is the same on every machine.
DIGESTS = {
    ("dev", 2): "01564c423a6e65d669c56ad07efa9181d81f84a4199cd3a6b5d660a72ea5c533",
    (None, 3): "0bc6d4e3a0615739a9d50bdc00678ae38b37dc21c91527a777b6c95a5b77f367",
}


@pytest.mark.parametrize(("stack", "spokes"), list(DIGESTS))
def test_the_plan_of_a_stack_without_remedies_is_unchanged(stack: str | None, spokes: int) -> None:
    text = json.dumps(plan(run_program(stack_values({"spokes": spokes}, stack=stack))), indent=1, sort_keys=True)
    assert hashlib.sha256((text + "\n").encode()).hexdigest() == DIGESTS[(stack, spokes)]
