"""Turn a Hydra multirun directory into one table: ``report.md``, ``report.csv`` and ``summary.png``.

:mod:`geoconv.experiment.sweep` reads the sweep (one :class:`Run` per job: its overrides, its
metrics, its status); this module renders and writes it:

- **Markdown** (:func:`markdown_table`, :func:`render_markdown`): one row per job, sorted by
  job number: the job number, the override keys whose value differs between jobs, the metric
  columns formatted with ``%.3g``, and the status. Override keys with the same value in every
  job are listed once above the table.
- **CSV** (:func:`render_csv`): every override key (varying first, then constant), every
  metric unformatted, then ``status`` and ``error`` in separate columns; the complete,
  machine-readable form of the report, whatever columns the Markdown table shows.
- **PNG** (:func:`plot_summary`, :mod:`geoconv.experiment.summary`): small multiples, one
  horizontal bar chart per headline metric with one bar per job.
- **Seeds** (:func:`seeds_table`, :func:`render_seeds_csv`): when ``seed`` varies and some
  configuration ran with several seeds, the jobs that differ only in ``seed`` are grouped
  (:mod:`geoconv.experiment.stats`): ``report.md`` leads with one row per configuration, each
  metric as ``mean ± std (n)`` with Welch's-test markers against the best configuration, then
  the per-job table; ``report_seeds.csv`` holds the statistics; the figure draws one bar per
  configuration with its standard deviation. ``report.csv`` keeps one row per job.

Which metric columns: fnmatch patterns given by the caller (``--metrics``), strictly (a
pattern matching nothing is an error); else the experiment's ``report_metrics``, read from
the jobs' saved configs, leniently (a configured column that no job produced, such as
``rotation/excess`` in a sweep over flat grids, is shown as ``n/a``); else every metric.

Every file is written atomically (:func:`geoconv._io.atomic_write`, re-exported here as
:func:`atomic_write`): to a temporary file in the same directory, then :func:`os.replace`, so
a crash leaves the previous report or none, never half of one.

Examples
--------
>>> import json, pathlib, tempfile
>>> sweep = pathlib.Path(tempfile.mkdtemp())
>>> for job, (op, ms) in enumerate([("conv", 1.25), ("gated_conv", 2.5)]):
...     (sweep / str(job) / ".hydra").mkdir(parents=True)
...     _ = (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(f"- op={op}\\n- seed=0\\n")
...     payload = {"metrics": {"fwd_ms": ms}, "config": {}, "status": "ok"}
...     _ = (sweep / str(job) / "metrics.json").write_text(json.dumps(payload))
>>> report = read_multirun(sweep)
>>> report.varying, report.constant
(('op',), {'seed': '0'})
>>> print(markdown_table(report))
| job | op         | fwd_ms | status |
|----:|------------|-------:|--------|
|   0 | conv       |   1.25 | ok     |
|   1 | gated_conv |    2.5 | ok     |
>>> import shutil; shutil.rmtree(sweep)
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geoconv._io import atomic_write
from geoconv.errors import GeoconvError
from geoconv.experiment.stats import (
    SIGNIFICANCE,
    SeedGroup,
    best_group,
    format_stats,
    is_configuration_key,
    seed_grouped,
    welch_test,
)
from geoconv.experiment.summary import plot_summary
from geoconv.experiment.sweep import (
    MISSING_REASON,
    Report,
    Run,
    Value,
    format_value,
    is_number,
    parse_override,
    read_multirun,
    read_run,
    select_metrics,
    varying_choices,
)
from geoconv.experiment.table import markdown_table as render_markdown_table

__all__ = [
    "MISSING_REASON",
    "Report",
    "Run",
    "Value",
    "WrittenReport",
    "atomic_write",
    "format_value",
    "markdown_table",
    "parse_override",
    "plot_summary",
    "read_multirun",
    "read_run",
    "render_csv",
    "render_markdown",
    "render_seeds_csv",
    "seeds_table",
    "select_metrics",
    "summary_lines",
    "varying_choices",
    "write_report",
]

_MAX_CELL = 120  # characters of an error message in a Markdown cell; the CSV keeps all of it


@dataclass(frozen=True)
class WrittenReport:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    report : Report
        The multirun as read.
    markdown, csv, figure : Path
        ``report.md``, ``report.csv`` and ``summary.png``.
    text : str
        The summary lines and the Markdown table, for printing.
    seeds_csv : Path or None
        ``report_seeds.csv``, one row per configuration, when the sweep repeats configurations
        over seeds; else ``None``.
    """

    report: Report
    markdown: Path
    csv: Path
    figure: Path
    text: str
    seeds_csv: Path | None = None


def _cell(text: str, limit: int | None = None) -> str:
    """Make ``text`` safe inside a Markdown table cell: one line, no bare ``|``."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("|", "\\|")


def markdown_table(report: Report, metrics: Sequence[str] | None = None) -> str:
    """Render ``report`` as an aligned Markdown table, one row per job.

    Parameters
    ----------
    report : Report
        The multirun.
    metrics : sequence of str, optional
        fnmatch patterns selecting the metric columns, strictly (see :meth:`Report.columns`);
        the experiment's ``report_metrics`` when not given, else every metric.

    Returns
    -------
    str
        Columns ``job``, the varying override keys, the selected metrics and ``status``;
        numeric columns right-aligned (:func:`geoconv.experiment.table.markdown_table`). A job
        that finished without a metric shows ``n/a``; a job that did not finish, an empty cell.
    """
    names = report.columns(metrics)
    headers = [_cell(h) for h in ("job", *report.varying, *names, "status")]
    numeric = [True, *(False for _ in report.varying)]
    numeric += [all(is_number(r.metrics[n]) for r in report.runs if r.metrics.get(n) is not None) for n in names]
    numeric.append(False)

    def metric(run: Run, name: str) -> str:
        if name not in run.metrics and run.ok:
            return "n/a"
        return _cell(format_value(run.metrics.get(name)))

    rows = [
        [
            run.name,
            *(_cell(run.choices.get(key, "")) for key in report.varying),
            *(metric(run, name) for name in names),
            _cell(run.status_text, _MAX_CELL),
        ]
        for run in report.runs
    ]
    return render_markdown_table(headers, rows, numeric)


def summary_lines(report: Report) -> list[str]:
    """One line counting the jobs by status, one naming the constant choices, and the notes."""
    counts: dict[str, int] = {}
    for run in report.runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    where = ", ".join(f"`{path}`" for path in report.directories)
    lines = [f"{len(report.runs)} jobs in {where}: {tally}."]
    if report.constant:
        same = ", ".join(f"`{key}={value}`" for key, value in report.constant.items())
        lines.append(f"Same in every job: {same}.")
    lines += [f"Note: {note}." for note in report.notes]
    return lines


SEEDS_LEGEND = (
    f"Each row is one configuration over its seeds: mean ± std (n), the sample standard deviation over "
    f"the n jobs that finished (one job: its value). `^`: the best mean of its column (the highest, or "
    f"the lowest for losses, errors, times, memory and parameter counts); `*`: differs from it by more "
    f"than the seed noise (Welch's t-test, two-sided p < {SIGNIFICANCE:g}); unmarked: not "
    f"distinguishable from the best at these n, or not testable (fewer than 2 values)."
)
"""The line under the table of :func:`seeds_table` that says what its cells and markers mean."""


def _markers(groups: Sequence[SeedGroup], name: str) -> list[str]:
    """Per group, ``" ^"`` for the best mean of ``name``, ``" *"`` where Welch's test against the
    best gives p below :data:`SIGNIFICANCE`, else ``""``; none with fewer than two groups."""
    marks = [""] * len(groups)
    best = best_group(groups, name) if len(groups) > 1 else None
    if best is None:
        return marks
    marks[best] = " ^"
    reference = groups[best].values(name)
    for k, group in enumerate(groups):
        result = welch_test(group.values(name), reference) if k != best else None
        if result is not None and result.p < SIGNIFICANCE:
            marks[k] = " *"
    return marks


def _group_cell(group: SeedGroup, name: str) -> str:
    """The cell of metric ``name`` for ``group``: statistics of its numbers, else its other values."""
    stats = group.stats(name)
    if stats is not None:
        return format_stats(stats)
    finished = [run for run in group.runs if run.ok]
    if not finished:
        return ""
    shown = dict.fromkeys(format_value(run.metrics[name]) for run in finished if name in run.metrics)
    return _cell(" / ".join(shown)) if shown else "n/a"


def _status_tally(group: SeedGroup) -> str:
    return ", ".join(f"{n} {status}" for status, n in group.status_counts.items())


def seeds_table(report: Report, groups: Sequence[SeedGroup], metrics: Sequence[str] | None = None) -> str:
    """Render ``groups`` (:func:`geoconv.experiment.stats.seed_grouped`) as a Markdown table and its legend.

    Parameters
    ----------
    report : Report
        The multirun.
    groups : sequence of SeedGroup
        Its jobs grouped over ``seed``.
    metrics : sequence of str, optional
        fnmatch patterns selecting the metric columns, as for :func:`markdown_table`.

    Returns
    -------
    str
        Columns ``jobs``, the varying override keys but ``seed`` and the run controls
        (:data:`~geoconv.experiment.stats.RUN_CONTROL_KEYS`), ``seeds`` (jobs in the group), one
        ``mean ± std (n)`` column per metric with its markers, and the status counts; then a
        blank line and :data:`SEEDS_LEGEND`.

    Examples
    --------
    >>> accs = {"a": [0.80, 0.82, 0.84], "b": [0.60, 0.65, 0.70]}
    >>> runs = [
    ...     Run(3 * i + s, Path("."), {"variant": v, "seed": str(s)}, {"acc": x})
    ...     for i, (v, xs) in enumerate(accs.items())
    ...     for s, x in enumerate(xs)
    ... ]
    >>> report = Report(Path("sweep"), tuple(runs), ("variant", "seed"), {}, ("acc",))
    >>> print(seeds_table(report, seed_grouped(report)).split("\\n\\n")[0])
    | jobs  | variant | seeds |               acc | status |
    |-------|---------|------:|------------------:|--------|
    | 0,1,2 | a       |     3 | 0.82 ± 0.02 (3) ^ | 3 ok   |
    | 3,4,5 | b       |     3 | 0.65 ± 0.05 (3) * | 3 ok   |
    """
    names = report.columns(metrics)
    keys = [key for key in report.varying if is_configuration_key(key)]
    headers = [_cell(h) for h in ("jobs", *keys, "seeds", *names, "status")]
    numeric = [False, *(False for _ in keys), True, *(True for _ in names), False]
    marks = {name: _markers(groups, name) for name in names}
    rows = [
        [
            group.jobs,
            *(_cell(group.choices.get(key, "")) for key in keys),
            str(len(group.runs)),
            *(_group_cell(group, name) + marks[name][k] for name in names),
            _cell(_status_tally(group), _MAX_CELL),
        ]
        for k, group in enumerate(groups)
    ]
    return render_markdown_table(headers, rows, numeric) + "\n\n" + SEEDS_LEGEND


def render_seeds_csv(report: Report, groups: Sequence[SeedGroup]) -> str:
    """Render ``groups`` as CSV text: one row per configuration, statistics unformatted.

    Columns: ``jobs``, the override keys but ``seed`` (varying, then constant), ``seeds`` (the
    group's seeds, space-separated), then for every numeric metric ``<name>/mean``,
    ``<name>/std`` (sample, ddof = 1; empty for one value), ``<name>/n`` and
    ``<name>/p_vs_best`` (Welch's two-sided p against the best group; empty for the best
    group or where untestable), and ``status`` (the counts, ``"2 ok, 1 failed"``).
    """
    keys = [key for key in (*report.varying, *report.constant) if is_configuration_key(key)]
    names = [name for name in report.metric_names if any(group.values(name) for group in groups)]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    columns = [f"{name}/{part}" for name in names for part in ("mean", "std", "n", "p_vs_best")]
    writer.writerow(["jobs", *keys, "seeds", *columns, "status"])
    best = {name: best_group(groups, name) for name in names}
    for k, group in enumerate(groups):
        cells: list[object] = [group.jobs, *(group.choices.get(key, "") for key in keys), " ".join(group.seeds)]
        for name in names:
            stats = group.stats(name)
            reference = best[name]
            untested = reference is None or reference == k
            result = None if untested else welch_test(group.values(name), groups[reference].values(name))
            if stats is None:
                cells += ["", "", 0, ""]
            else:
                mean, std, n = stats
                cells += [repr(mean), "" if n < 2 else repr(std), n, "" if result is None else repr(result.p)]
        writer.writerow([*cells, _status_tally(group)])
    return buffer.getvalue()


def _link(target: Path, base: Path) -> str:
    rel = Path(os.path.relpath(target, base)).as_posix()
    # CommonMark allows spaces in a link destination only between angle brackets.
    return f"<{rel}>" if " " in rel else rel


def render_markdown(
    report: Report,
    metrics: Sequence[str] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    figure: str | None = "summary.png",
) -> str:
    """Render the whole ``report.md``: title, summary lines, summary figure, table, job figures.

    Parameters
    ----------
    report : Report
        The multirun.
    metrics : sequence of str, optional
        fnmatch patterns selecting the table's metric columns.
    out_dir : path, optional
        Where ``report.md`` will live, so that links to job figures are relative to it; the
        multirun directory when not given.
    figure : str or None
        File name of the summary figure next to ``report.md``; ``None`` leaves it out.

    Returns
    -------
    str
        Markdown text ending with a newline.
    """
    base = Path(out_dir) if out_dir is not None else report.directory
    parts = [f"# Report: {report.title}", "", *summary_lines(report), ""]
    if figure:
        parts += [f"![summary of the headline metrics]({figure})", ""]
    groups = seed_grouped(report)
    if groups is not None:
        parts += [seeds_table(report, groups, metrics), "", "## Every job", ""]
    parts += [markdown_table(report, metrics), ""]
    with_figures = [run for run in report.runs if run.figures]
    if with_figures:
        parts += ["## Figures", ""]
        for run in with_figures:
            links = ", ".join(f"[{p.relative_to(run.path).as_posix()}]({_link(p, base)})" for p in run.figures)
            parts.append(f"- {_cell(report.label(run))}: {links}")
        parts.append("")
    return "\n".join(parts)


def render_csv(report: Report) -> str:
    """Render ``report`` as CSV text: every choice and every metric, values unformatted.

    Columns: ``job``, the varying override keys, the constant ones, every metric, ``status``
    and ``error``. Floats are written with :func:`repr`, so they read back exactly; ``None`` and
    unset values are empty fields.
    """
    keys = [*report.varying, *report.constant]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["job", *keys, *report.metric_names, "status", "error"])
    for run in report.runs:
        values = [run.metrics.get(name) for name in report.metric_names]
        writer.writerow(
            [
                run.name,
                *(run.choices.get(key, "") for key in keys),
                *("" if v is None else repr(v) if isinstance(v, float) else v for v in values),
                run.status,
                run.error,
            ]
        )
    return buffer.getvalue()


def write_report(
    directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | None = None,
    headline: Sequence[str] | None = None,
    *,
    max_panels: int = 6,
) -> WrittenReport:
    """Read a multirun and write ``report.md``, ``report.csv`` and ``summary.png`` (and
    ``report_seeds.csv`` when configurations repeat over seeds).

    Parameters
    ----------
    directory : path or sequence of paths
        The multirun (sweep) directory, or several read as one report (an experiment run in
        parts, e.g. seed 0 and later seeds 1 and 2; :func:`~geoconv.experiment.sweep.read_multirun`).
    out : path, optional
        Where to write the three files (created if needed); ``directory`` when not given, and
        required with several directories (the combined report belongs to none of them).
        Existing report files there are replaced: a report is derived data.
    metrics : sequence of str, optional
        fnmatch patterns selecting the metric columns of the Markdown table; the
        experiment's ``report_metrics`` when not given (see the module docstring). The CSV
        always has every metric.
    headline : sequence of str, optional
        fnmatch patterns selecting the figure's panels; the table's columns when not given.
    max_panels : int
        The most panels in the figure.

    Returns
    -------
    WrittenReport

    Raises
    ------
    GeoconvError
        For a directory that is not a multirun, several directories without ``out``, or a
        pattern given here that matches no metric.
    """
    directories = [directory] if isinstance(directory, str | os.PathLike) else list(directory)
    if not directories:
        raise GeoconvError("write_report: expected at least one multirun directory, got none")
    if len(directories) > 1 and out is None:
        shown = ", ".join(f"'{path}'" for path in directories)
        raise GeoconvError(
            f"several multirun directories ({shown}) need an output directory (--out DIR): "
            "the combined report belongs to none of them, and each keeps its own report"
        )
    report = read_multirun(*directories)
    out_dir = Path(out) if out is not None else report.directory
    if out_dir.exists() and not out_dir.is_dir():
        raise GeoconvError(f"--out '{out_dir}' exists and is not a directory")
    # Validate every pattern before writing anything, so a typo leaves no partial set of files.
    report.columns(metrics)
    report.columns(headline)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_summary(report, out_dir / "summary.png", headline or metrics, max_panels=max_panels)
    csv_path = atomic_write(out_dir / "report.csv", render_csv(report))
    groups = seed_grouped(report)
    seeds_path = None
    if groups is not None:
        seeds_path = atomic_write(out_dir / "report_seeds.csv", render_seeds_csv(report, groups))
    else:
        # A report_seeds.csv from an earlier report of other runs would now describe nothing here.
        (out_dir / "report_seeds.csv").unlink(missing_ok=True)
    md_path = atomic_write(out_dir / "report.md", render_markdown(report, metrics, out_dir=out_dir))
    table = markdown_table(report, metrics) if groups is None else seeds_table(report, groups, metrics)
    text = "\n".join([*summary_lines(report), "", table])
    return WrittenReport(report, md_path, csv_path, figure, text, seeds_path)
