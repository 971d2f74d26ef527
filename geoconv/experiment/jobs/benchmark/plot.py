"""``benchmark.png``: fwd+bwd time against pixels, log-log, one panel per grid of the cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoconv.experiment.jobs.benchmark.metrics import finite
from geoconv.experiment.jobs.benchmark.rows import Row
from geoconv.viz import figure

__all__ = ["plot_times"]


def _series(rows: list[Row], grid: str, label: str) -> list[tuple[Any, Any]]:
    """(pixels, fwd+bwd ms) of the ``ok`` rows of ``label`` beside the cases on ``grid``."""
    return [
        (r["pixels"], r["fwdbwd_ms"])
        for r in rows
        if r.spec.group_grid == grid and r.spec.label == label and r.status == "ok" and finite(r["fwdbwd_ms"])
    ]


def plot_times(path: Path, rows: list[Row], title: str) -> Path:
    """fwd+bwd time against pixels, log-log, one panel per grid, the floors dashed; written atomically.

    A baseline that ran on another grid at about the case's pixel count is labelled with that grid.
    """
    grids = list(dict.fromkeys(r.spec.group_grid for r in rows))
    labels = list(dict.fromkeys(r.spec.label for r in rows if r.spec.label not in _FLOORS))

    def draw(canvas) -> None:
        import matplotlib

        palette = matplotlib.colormaps["tab20"].colors  # one colour per label, the same in every panel
        axes = canvas.subplots(1, max(len(grids), 1), squeeze=False)[0]
        for ax, grid in zip(axes, grids, strict=False):
            beside = [r for r in rows if r.spec.group_grid == grid]
            for label in dict.fromkeys(r.spec.label for r in beside):
                points = _series(rows, grid, label)
                if not points:
                    continue
                style = _FLOORS.get(label) or {"color": palette[labels.index(label) % len(palette)]}
                elsewhere = next((r.spec.grid for r in beside if r.spec.label == label and r.spec.grid != grid), None)
                name = label if elsewhere is None else f"{label} ({elsewhere}, ≈ pixels)"
                ax.loglog(*zip(*points, strict=True), marker="o", markersize=4, label=name, **style)
            ax.set_xlabel("pixels per channel")
            ax.set_ylabel("fwd+bwd time (ms)")
            ax.set_title(grid)
            # Below the panel: inside it the legend hid the lines.
            ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        canvas.suptitle(title, fontsize="small")

    return figure(path, draw, size=(4.8 * max(len(grids), 1), 6.4))


_FLOORS = {
    "floor": {"color": "black", "linestyle": "--"},
    "floor_transpose": {"color": "dimgray", "linestyle": ":"},
}
"""The floors' styles: dashed black (``nn.Conv2d``), dotted grey (``nn.ConvTranspose2d``)."""
