"""The scale step's plot: time against spokes, with the floor and the goal above it.

    venv/bin/python tools/bench_plot.py [.lab/bench.json] [--out .lab/bench-scale.png]

`tools/bench.py --scale` writes it after its run; this redraws it from the JSON alone. The README
shows docs/bench-scale.svg, drawn this way (SVG: text, so the repository holds no binary).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import matplotlib

matplotlib.use("Agg")  # files only: no display on the lab machine
matplotlib.rcParams["svg.hashsalt"] = "bench-scale"  # an SVG's element ids the same on every redraw
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools.bench_lab import names  # noqa: E402
from tools.bench_scale import OVER_FLOOR_GOAL, scale_series  # noqa: E402

OUT = names.STATE_DIR / "bench-scale.png"


def plot_scale(figures: dict[str, Any], path: Path) -> Path:
    """Draw the measured sizes of figures (bench.json's document) into the PNG at path."""
    series = scale_series(figures)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(series["spokes"], series["up"], "o-", label="pulumi up -> all tunnels")
    floors = [(n, f) for n, f in zip(series["spokes"], series["floor"]) if f is not None]
    if floors:
        spokes, floor = zip(*floors)
        ax.plot(spokes, floor, "k--", label="floor: T1 x VMs / cores")
        ax.plot(spokes, [f * OVER_FLOOR_GOAL for f in floor], ":", color="grey",
                label=f"goal: {OVER_FLOOR_GOAL} x floor")
    verified = [(n, v) for n, v in zip(series["spokes"], series["verify"]) if v is not None]
    if verified:
        ax.plot(*zip(*verified), "s-", label="labctl verify")
    machine = figures.get("machine") or {}
    t1 = (figures.get("lab") or {}).get("t1_seconds")
    ax.set_title(f"Lab cost against its size ({machine.get('cores')} cores, T1 {t1} s, {machine.get('when')})",
                 fontsize=10)
    ax.set_xlabel("spokes")
    ax.set_ylabel("seconds")
    ax.set_xticks(series["spokes"])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The format follows the file's suffix; an SVG gets no date, so redrawing it changes nothing.
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return path


@click.command()
@click.argument("figures", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default=names.BENCH_FIGURES)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=OUT, show_default=True)
def main(figures: Path, out: Path) -> None:
    """Redraw the scale plot from a bench run's JSON."""
    click.echo(plot_scale(json.loads(figures.read_text()), out))


if __name__ == "__main__":
    main()
