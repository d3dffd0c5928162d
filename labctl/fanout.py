"""One call per spoke, spokes at once: a check that SSHes into a booting VM waits 3-10 s per attempt,
and one spoke after the other made every poll of a large lab take that many times over.

Each spoke's calls run on a LabStack of its own (LabStack.site_fork): a Node's connection is
reopened and closed under its callers, so threads must not share one; and a poll every few seconds
keeps its connection instead of logging in again each round.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from labctl.stack import LabStack

# Calls at once. verify's threads each hold an SSH connection to their site and one to the hub (sshd's
# MaxStartups begins refusing at 10 unauthenticated at a time).
THREADS = 8

Result = TypeVar("Result")


def each_spoke(lab: LabStack, spokes: Sequence[str], call: Callable[[LabStack, str], Result],
               threads: int = THREADS) -> list[Result]:
    """call(the spoke's own LabStack, spoke) for every spoke, up to `threads` at once; the results in
    the order of `spokes`, and the first error in that order raised once all calls have ended."""
    forks = [(lab.site_fork(spoke), spoke) for spoke in spokes]
    if not forks:
        return []
    with ThreadPoolExecutor(max_workers=min(threads, len(forks)), thread_name_prefix="spokes") as pool:
        return list(pool.map(lambda fork_and_spoke: call(*fork_and_spoke), forks))
