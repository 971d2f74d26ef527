"""The summary figure of a multirun: one bar chart per headline metric, one bar per job.

When the sweep repeats configurations over seeds (:func:`geoconv.experiment.stats.seed_grouped`),
one bar per configuration instead: its mean over seeds, with the sample standard deviation as an
error bar.

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

from geoconv.experiment.stats import SeedGroup, format_stats, seed_grouped
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
    :meth:`Report.label`; jobs that are not ok carry their status instead of a bar (red; grey when skipped), and
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
    groups = seed_grouped(report)
    if groups is None:
        labels = [report.label(run) for run in report.runs]
        failed = [None if run.ok else run.status for run in report.runs]
    else:
        labels = [_group_label(report, group) for group in groups]
        failed = [None if any(r.ok for r in group.runs) else "/".join(group.status_counts) for group in groups]

    def cell(k: int, name: str) -> tuple[float | None, float, str]:
        """Bar length, error bar and the text shown for row ``k``: the value, or why none."""
        if groups is None:
            value = report.runs[k].metrics.get(name)
            x = finite(value)
            return x, 0.0, "n/a" if value is None else format_value(value if x is None else x)
        stats = groups[k].stats(name)
        if stats is None:
            return None, 0.0, "n/a"
        return stats[0], stats[1] if stats[2] > 1 else 0.0, format_stats(stats)

    positions = list(range(len(labels)))
    panels = max(1, len(names))

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
        for ax, name in zip(axes, names or (None,), strict=True):
            cells = [cell(k, name) if name else (None, 0.0, "") for k in positions]
            drawn = [(y, x, err, text) for y, (x, err, text) in zip(positions, cells, strict=True) if x is not None]
            if drawn:
                bars = ax.barh(
                    [d[0] for d in drawn],
                    [d[1] for d in drawn],
                    xerr=[d[2] for d in drawn] if groups is not None else None,
                    color="tab:blue",
                    capsize=3,
                )
                ax.bar_label(bars, labels=[d[3] for d in drawn], padding=2, fontsize=8)
                ax.margins(x=0.2)  # room for the value labels
            left = ax.get_yaxis_transform()  # x in axes fraction, y in data: the text sits at the left edge
            for y, status, (x, _, text) in zip(positions, failed, cells, strict=True):
                if status is not None:
                    ax.text(0.02, y, status, transform=left, va="center", color=_colour(status), fontweight="bold")
                elif name and x is None:
                    ax.text(0.02, y, text, transform=left, va="center")
            ax.set_title(name or "no metrics", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(positions, labels)
        axes[0].set_ylim(len(labels) - 0.5, -0.5)  # job 0 on top, as in the table
        for tick, status in zip(axes[0].get_yticklabels(), failed, strict=True):
            if status is not None:
                tick.set_color(_colour(status))
        runs = report.runs
        skipped = sum(r.status == "skipped" for r in runs)
        title = f"{report.title}: {sum(r.ok for r in runs)} of {len(runs)} jobs ok"
        title += f", {skipped} skipped (the op does not run there)" if skipped else ""
        if groups is not None:
            title += f", {len(groups)} configurations, mean ± std over seeds"
        fig.suptitle(title, fontsize=10)

    return figure(path, draw, size=(1.5 + 3.2 * panels, 1.2 + 0.32 * len(labels)))


def _group_label(report: Report, group: SeedGroup) -> str:
    """``"jobs 0,5: op=conv (2 ok of 2)"``: the group's jobs, its varying choices but the seed, its count."""
    # group.choices has no seed: the group is all the seeds of one configuration.
    parts = [f"{key.rsplit('.', 1)[-1]}={group.choices[key]}" for key in report.varying if key in group.choices]
    ok = sum(run.ok for run in group.runs)
    return f"jobs {group.jobs}: " + ", ".join(parts) + f" ({ok} ok of {len(group.runs)})"


def _colour(status: str) -> str:
    """Red for a job that failed or is missing; grey for one skipped by design (``skip_inapplicable``)."""
    return "tab:gray" if status == "skipped" else "tab:red"
