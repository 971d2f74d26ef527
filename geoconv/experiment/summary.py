"""The summary figure of a multirun: one bar chart per headline metric, one bar per job.

Drawn off screen and written atomically by :func:`geoconv.viz.figure`.

Examples
--------
>>> import json, pathlib, tempfile
>>> from geoconv.experiment.sweep import read_multirun
>>> sweep = pathlib.Path(tempfile.mkdtemp())
>>> for job, ms in enumerate([1.25, 2.5]):
...     (sweep / str(job)).mkdir()
...     _ = (sweep / str(job) / "metrics.json").write_text(json.dumps({"metrics": {"fwd_ms": ms}}))
>>> plot_summary(read_multirun(sweep), sweep / "summary.png").stat().st_size > 0
True
>>> import shutil; shutil.rmtree(sweep)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geoconv.experiment.sweep import Report, finite, format_value
from geoconv.viz import figure

__all__ = ["headline_metrics", "plot_summary"]


def headline_metrics(report: Report, metrics: Sequence[str] | None = None, max_panels: int = 6) -> tuple[str, ...]:
    """The metrics the figure draws: the report's columns (:meth:`Report.columns`) that some job has a
    finite value of, at most ``max_panels`` (at least one).

    A column no job has a number for (``rotation/excess`` in a sweep over flat grids) would be
    an empty panel: it is left out of the figure; the table still shows it as ``n/a``.
    """
    drawable = [name for name in report.columns(metrics) if any(finite(run.metrics.get(name)) for run in report.runs)]
    return tuple(drawable[: max(1, max_panels)])


def plot_summary(
    report: Report,
    path: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
    *,
    max_panels: int = 6,
) -> Path:
    """Draw the headline metrics of every job as small multiples of bar charts into a PNG.

    One panel per metric (:func:`headline_metrics`), one horizontal bar per job labelled by
    :meth:`Report.label`; jobs that are not ok carry their status in red instead of a bar, and
    a job that is ok but lacks the metric says ``n/a``. With nothing to draw, one empty panel
    says so. The file is written atomically.

    Parameters
    ----------
    report : Report
        The multirun.
    path : path
        The PNG file to write.
    metrics : sequence of str, optional
        fnmatch patterns for the headline metrics (strict); the report's default columns when
        not given.
    max_panels : int
        The most panels in the figure.

    Returns
    -------
    Path
        ``path``.
    """
    names = headline_metrics(report, metrics, max_panels)
    runs = report.runs
    positions = list(range(len(runs)))
    panels = max(1, len(names))

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
        for ax, name in zip(axes, names or (None,), strict=True):
            values = [run.metrics.get(name) if name else None for run in runs]
            drawn = [(y, x) for y, v in zip(positions, values, strict=True) if (x := finite(v)) is not None]
            if drawn:
                bars = ax.barh([y for y, _ in drawn], [x for _, x in drawn], color="tab:blue")
                ax.bar_label(bars, labels=[format_value(x) for _, x in drawn], padding=2, fontsize=8)
                ax.margins(x=0.2)  # room for the value labels
            left = ax.get_yaxis_transform()  # x in axes fraction, y in data: the text sits at the left edge
            for y, run, value in zip(positions, runs, values, strict=True):
                if not run.ok:
                    ax.text(0.02, y, run.status, transform=left, va="center", color="tab:red", fontweight="bold")
                elif name and finite(value) is None:
                    ax.text(0.02, y, "n/a" if value is None else format_value(value), transform=left, va="center")
            ax.set_title(name or "no metrics", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(positions, [report.label(run) for run in runs])
        axes[0].set_ylim(len(runs) - 0.5, -0.5)  # job 0 on top, as in the table
        for tick, run in zip(axes[0].get_yticklabels(), runs, strict=True):
            if not run.ok:
                tick.set_color("tab:red")
        fig.suptitle(f"{report.directory.name}: {sum(r.ok for r in runs)} of {len(runs)} jobs ok", fontsize=10)

    return figure(path, draw, size=(1.5 + 3.2 * panels, 1.2 + 0.32 * len(runs)))
