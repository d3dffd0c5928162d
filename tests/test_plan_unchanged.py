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
# certificate import), and again for the hub sides' `instance` (the hub domain's ID: a hub VM made anew,
# its domain replaced or made again after the host lost it, gets its spokes' sides pushed again), and on
# 2026-12-06 for the management NIC's DHCP hostname left unused (use-hostname: false), and for the
# hub push's landing conn (lablib/tunnel.py: Landing; both stacks use pre-shared keys only), and for
# every conn's leftupdown= (the lab's own updown script, in every site's payload and each hub push). Both
# stacks name no file of the lab's cache, so the plan is the same on every machine.
DIGESTS = {
    ("dev", 2): "e82285d32c56f3b8c57aff5e284de74b4e25e024a67bc0c101b63a2a31792b9e",
    (None, 3): "c9772a8e4503d0671cd07e2d72eb9df968813138714a39e99934bfd004768885",
}


@pytest.mark.parametrize(("stack", "spokes"), list(DIGESTS))
def test_the_plan_of_a_stack_without_remedies_is_unchanged(stack: str | None, spokes: int) -> None:
    text = json.dumps(plan(run_program(stack_values({"spokes": spokes}, stack=stack))), indent=1, sort_keys=True)
    assert hashlib.sha256((text + "\n").encode()).hexdigest() == DIGESTS[(stack, spokes)]
