"""Benchmark: time to plan the lab under Pulumi mocks (no engine, no VMs).

    venv/bin/python tools/bench_plan.py --spokes 100 --repeat 3
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.mockrun import stack_values, timed_plan  # noqa: E402


@click.command()
@click.option("--spokes", default=100, show_default=True, type=click.IntRange(1, 250))
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1, 20))
def main(spokes: int, repeat: int) -> None:
    """Plan SPOKES spokes REPEAT times; print the seconds per plan.

    CPU seconds are printed too: on a busy machine they vary less than wall time.
    """
    seconds, cpu = zip(*(timed_plan(stack_values({"spokes": spokes})) for _ in range(repeat)))
    click.echo(f"{spokes} spokes: plan under mocks "
               f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f}, "
               f"n={repeat}; CPU median {statistics.median(cpu):.2f} s)")


if __name__ == "__main__":
    main()
