"""Turn a Hydra multirun directory into one table: ``report.md``, ``report.csv`` and ``summary.png``.

A multirun such as ``python experiments/run.py -m op=conv,gated_conv grid=planar,healpix``
leaves one numbered directory per job (``0/``, ``1/``, ...) under its sweep directory. This
module reads each job's ``.hydra/overrides.yaml`` (what the job changed) and ``metrics.json``
(what it measured) into one :class:`Run`, finds the choices that varied between jobs, and
renders them:

- **Markdown** (:func:`markdown_table`, :func:`render_markdown`): one row per job, sorted by
  job number: the job number, the override keys whose value differs between jobs, the metrics
  (all of them, or those matching fnmatch patterns) formatted with ``%.3g``, and the status.
  Override keys with the same value in every job are listed once above the table.
- **CSV** (:func:`render_csv`): every override key (varying first, then constant), every
  metric unformatted, then ``status`` and ``error`` in separate columns; the complete,
  machine-readable form of the report, whatever ``metrics`` selected for the Markdown table.
- **PNG** (:func:`plot_summary`): small multiples, one horizontal bar chart per headline
  metric with one bar per job; failed and missing jobs are marked in red.

No job is ever dropped. A job's status is one of

- ``ok``: ``metrics.json`` says ``"status": "ok"``, or says no status at all (as entry points
  written before the status field did);
- ``failed``: ``metrics.json`` says ``"status": "failed"`` (its ``"error"`` is shown), or it is
  not a valid JSON object; such a file cannot come from a clean finish, since the entry point
  writes it atomically, so the job is reported as ``failed`` with the error
  ``unreadable metrics.json: ...`` instead of aborting the whole report;
- ``missing``: the job directory has no ``metrics.json`` (the job was killed, ran out of
  memory, or is still running), or a job number below the highest one has no directory at all.

Any other ``status`` string in ``metrics.json`` is shown as it is and counts as not ok.

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
import fnmatch
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from geoconv._io import atomic_write
from geoconv.errors import GeoconvError, closest_names

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
    "select_metrics",
    "summary_lines",
    "varying_choices",
    "write_report",
]

Value = float | int | bool | str | None
"""A metric value as it came out of ``metrics.json``."""

MISSING_REASON = "killed or out of memory?"
"""Why a job directory without ``metrics.json`` is reported as missing."""

_JOB_NAME = re.compile(r"[0-9]+")
_MAX_CELL = 120  # characters of an error message in a Markdown cell; the CSV keeps all of it


@dataclass(frozen=True)
class Run:
    """One job of a multirun, as read from its directory.

    Attributes
    ----------
    job : int
        Hydra's job number (the directory name).
    path : Path
        The job directory (it may not exist for a ``missing`` job).
    choices : dict of str to str
        The job's command-line overrides, key to value as written (``{"op": "conv"}``).
    metrics : dict of str to Value
        Flat metric name to value; nested dictionaries are flattened with ``/``.
    status : str
        ``"ok"``, ``"failed"``, ``"missing"``, or another string the job wrote.
    error : str
        Why the job is not ok (``"ValueError: ..."``); empty for ``ok``.
    figures : tuple of Path
        The PNG files the job wrote, sorted.
    choices_known : bool
        False when the overrides could not be read (no job directory, or an unreadable
        ``overrides.yaml``); such a job does not count when deciding which keys vary.
    note : str
        What was wrong with ``overrides.yaml``, or ``""``.
    """

    job: int
    path: Path
    choices: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Value] = field(default_factory=dict)
    status: str = "ok"
    error: str = ""
    figures: tuple[Path, ...] = ()
    choices_known: bool = True
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether the job finished and reported ``ok``."""
        return self.status == "ok"

    @property
    def status_text(self) -> str:
        """The status with its reason, as shown in the Markdown table.

        >>> Run(3, Path("3"), status="failed", error="ValueError: boom").status_text
        'failed: ValueError: boom'
        >>> Run(4, Path("4"), status="missing", error=MISSING_REASON).status_text
        'missing (killed or out of memory?)'
        """
        if self.ok or not self.error:
            return self.status
        if self.status == "missing":
            return f"missing ({self.error})"
        return f"{self.status}: {self.error}"


@dataclass(frozen=True)
class Report:
    """Every job of one multirun and what varied between them.

    Attributes
    ----------
    directory : Path
        The multirun (sweep) directory.
    runs : tuple of Run
        One per job, sorted by job number, none dropped.
    varying : tuple of str
        Override keys whose value differs between jobs (or that some jobs do not set), in
        order of first appearance.
    constant : dict of str to str
        Override keys set to the same value in every job.
    metric_names : tuple of str
        Every metric name of every job, in order of first appearance.
    notes : tuple of str
        Problems worth a line in the report that do not change a job's status
        (e.g. an unreadable ``overrides.yaml``, or an ok job with NaN or Inf metrics).
    """

    directory: Path
    runs: tuple[Run, ...]
    varying: tuple[str, ...]
    constant: dict[str, str]
    metric_names: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def label(self, run: Run) -> str:
        """A short label for ``run``: its job number and varying choices.

        The last component of a dotted key is enough to tell ``grid.padding_mode=zeros`` from
        ``grid=healpix`` in a figure, and keeps the labels short.
        """
        parts = [f"{key.rsplit('.', 1)[-1]}={run.choices[key]}" for key in self.varying if key in run.choices]
        return f"{run.job}: " + ", ".join(parts) if parts else f"job {run.job}"


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
    """

    report: Report
    markdown: Path
    csv: Path
    figure: Path
    text: str


# --------------------------------------------------------------------------------------------
# Reading


def parse_override(override: str) -> tuple[str, str]:
    """Split one Hydra command-line override into its key and value.

    The ``+``/``++`` prefixes (add, force-add) do not change what the job ran with, so they are
    dropped from the key; a deletion ``~key`` gets the value ``"(deleted)"``.

    Parameters
    ----------
    override : str
        One entry of ``.hydra/overrides.yaml``, such as ``"grid.padding_mode=zeros"``.

    Returns
    -------
    tuple of str
        ``(key, value)``; the value is the text after the first ``=``, as written.

    Examples
    --------
    >>> parse_override("grid.padding_mode=zeros")
    ('grid.padding_mode', 'zeros')
    >>> parse_override("++trainer.max_steps=10")
    ('trainer.max_steps', '10')
    >>> parse_override("~probe")
    ('probe', '(deleted)')
    """
    text = str(override).strip()
    deleted = text.startswith("~")
    key, sep, value = text.lstrip("~+").partition("=")
    if deleted:
        return key, "(deleted)"
    return key, value if sep else ""


def _flatten(metrics: Mapping[str, object], prefix: str = "") -> dict[str, Value]:
    flat: dict[str, Value] = {}
    for name, value in metrics.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{key}/"))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[key] = value
        else:
            # A list or another JSON value is not a number; keep it visible rather than lose it.
            flat[key] = json.dumps(value)
    return flat


def _read_choices(job_dir: Path) -> tuple[dict[str, str] | None, str]:
    """The job's overrides as ``{key: value}`` (``None`` when unreadable) and what went wrong."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None, f"job {job_dir.name}: no .hydra/overrides.yaml; choices blank"
    try:
        overrides = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"job {job_dir.name}: unreadable .hydra/overrides.yaml ({type(exc).__name__}); choices blank"
    if overrides is None:  # an empty file: a job without overrides
        return {}, ""
    if not isinstance(overrides, list):
        return None, f"job {job_dir.name}: .hydra/overrides.yaml is not a YAML list; choices blank"
    return dict(parse_override(item) for item in overrides), ""


def read_run(job_dir: str | os.PathLike[str], job: int | None = None) -> Run:
    """Read one job directory.

    Parameters
    ----------
    job_dir : path
        A job directory of a multirun (``<sweep_dir>/3``).
    job : int, optional
        The job number; the directory name when not given.

    Returns
    -------
    Run
        The job, with status ``ok``, ``failed`` or ``missing`` as the module docstring says;
        never raises for a broken job, whose problem becomes its status or its note.
    """
    path = Path(job_dir)
    number = int(path.name) if job is None else job
    if not path.is_dir():
        return Run(number, path, status="missing", error="no job directory", choices_known=False)
    read, note = _read_choices(path)
    choices, known = (read, True) if read is not None else ({}, False)
    figures = tuple(sorted(p for p in path.rglob("*.png") if ".hydra" not in p.relative_to(path).parts))
    common = {"choices": choices, "figures": figures, "choices_known": known, "note": note}
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        return Run(number, path, status="missing", error=MISSING_REASON, **common)
    try:
        payload = json.loads(metrics_path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        metrics = payload.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise ValueError(f"'metrics' should be an object, got {type(metrics).__name__}")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        return Run(number, path, status="failed", error=f"unreadable metrics.json: {exc}", **common)
    status = str(payload.get("status", "ok"))
    error = "" if status == "ok" else str(payload.get("error", "") or "")
    return Run(number, path, metrics=_flatten(metrics), status=status, error=error, **common)


def varying_choices(runs: Iterable[Run]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Split the override keys of ``runs`` into those that vary and those that do not.

    A key that some jobs set and others do not varies (the others ran with the config
    default). Jobs whose overrides could not be read (``choices_known`` false) are left out.

    Parameters
    ----------
    runs : iterable of Run
        The jobs.

    Returns
    -------
    varying : tuple of str
        Keys with more than one value, in order of first appearance.
    constant : dict of str to str
        Keys with one value in every job.

    Examples
    --------
    >>> runs = [Run(0, Path("0"), {"op": "conv", "seed": "0"}), Run(1, Path("1"), {"op": "pool", "seed": "0"})]
    >>> varying_choices(runs)
    (('op',), {'seed': '0'})
    """
    known = [run for run in runs if run.choices_known]
    keys: dict[str, None] = {}  # an ordered set
    for run in known:
        keys.update(dict.fromkeys(run.choices))
    varying: list[str] = []
    constant: dict[str, str] = {}
    for key in keys:
        values = {run.choices.get(key) for run in known}
        if len(values) == 1:
            # Every known job sets the key (a job without it would add None), so this is a str.
            constant[key] = values.pop() or ""
        else:
            varying.append(key)
    return tuple(varying), constant


def _job_dirs(directory: Path) -> dict[int, Path]:
    return {int(p.name): p for p in directory.iterdir() if p.is_dir() and _JOB_NAME.fullmatch(p.name)}


def _no_jobs_error(directory: Path) -> GeoconvError:
    message = (
        f"no job directories in '{directory}': expected a Hydra multirun (sweep) directory holding one "
        "numbered subdirectory per job (0/, 1/, ...), each with .hydra/overrides.yaml and, once the job "
        "finished, metrics.json"
    )
    if (directory / ".hydra").is_dir():
        message += "; this looks like a single run's directory, so pass the sweep directory of a multirun (-m)"
    else:
        sweeps = sorted(p.name for p in directory.iterdir() if p.is_dir() and _job_dirs(p))
        if sweeps:
            message += "; these subdirectories look like multirun directories: " + ", ".join(sweeps[:5])
    return GeoconvError(message)


def read_multirun(directory: str | os.PathLike[str]) -> Report:
    """Read every job of a multirun directory.

    Parameters
    ----------
    directory : path
        The sweep directory: numbered job directories and ``multirun.yaml``.

    Returns
    -------
    Report
        One :class:`Run` per job number from 0 to the highest one found, sorted; a number with
        no directory (a job that never started) is a ``missing`` run, so gaps show.

    Raises
    ------
    GeoconvError
        If ``directory`` does not exist, is not a directory, or holds no numbered job directory.
    """
    root = Path(directory)
    if not root.exists():
        raise GeoconvError(f"multirun directory '{root}' does not exist")
    if not root.is_dir():
        raise GeoconvError(f"multirun directory '{root}' is not a directory")
    found = _job_dirs(root)
    if not found:
        raise _no_jobs_error(root)
    runs = tuple(read_run(found.get(job, root / str(job)), job) for job in range(max(found) + 1))
    varying, constant = varying_choices(runs)
    names: dict[str, None] = {}  # an ordered set
    for run in runs:
        names.update(dict.fromkeys(run.metrics))
    notes = [run.note for run in runs if run.note]
    for run in runs:
        non_finite = [name for name, value in run.metrics.items() if _is_number(value) and not math.isfinite(value)]
        if run.ok and non_finite:
            shown = ", ".join(non_finite[:5]) + (", ..." if len(non_finite) > 5 else "")
            notes.append(f"job {run.job}: {len(non_finite)} non-finite metric(s) ({shown})")
    return Report(root, runs, varying, constant, tuple(names), tuple(notes))


def select_metrics(names: Sequence[str], patterns: Sequence[str] | None = None) -> tuple[str, ...]:
    """The metric names matching any of ``patterns`` (case-sensitive fnmatch), in their order.

    Parameters
    ----------
    names : sequence of str
        Every metric name.
    patterns : sequence of str, optional
        Glob patterns such as ``"*/fwd_bwd_ms"``; every name when ``None`` or empty.

    Returns
    -------
    tuple of str

    Raises
    ------
    GeoconvError
        If a pattern matches none of ``names`` (when there are any), naming the closest ones:
        a mistyped pattern should not quietly give a table without the column asked for.

    Examples
    --------
    >>> select_metrics(["conv/params", "conv/ms", "pool/ms"], ["*/ms"])
    ('conv/ms', 'pool/ms')
    """
    if not patterns:
        return tuple(names)
    for pattern in patterns:
        if names and not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            hint = closest_names(pattern, names)
            raise GeoconvError(
                f"metrics pattern {pattern!r} matches no metric"
                + (f"; did you mean {' or '.join(map(repr, hint))}?" if hint else "")
                + f" Metrics: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}"
            )
    return tuple(name for name in names if any(fnmatch.fnmatchcase(name, p) for p in patterns))


# --------------------------------------------------------------------------------------------
# Rendering


def format_value(value: Value) -> str:
    """Format a metric value for a table: integers in full, other numbers with ``%.3g``.

    Examples
    --------
    >>> [format_value(v) for v in (1234567, 0.000123456, 2.0, float("nan"), True, None, "n/a")]
    ['1234567', '0.000123', '2', 'nan', 'true', '', 'n/a']
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _cell(text: str, limit: int | None = None) -> str:
    """Make ``text`` safe inside a Markdown table cell: one line, no bare ``|``."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("|", "\\|")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (a bar can be drawn), else ``None``."""
    return float(value) if _is_number(value) and math.isfinite(value) else None  # type: ignore[arg-type]


def markdown_table(report: Report, metrics: Sequence[str] | None = None) -> str:
    """Render ``report`` as an aligned Markdown table, one row per job.

    Parameters
    ----------
    report : Report
        The multirun.
    metrics : sequence of str, optional
        fnmatch patterns selecting the metric columns (see :func:`select_metrics`); all when
        not given.

    Returns
    -------
    str
        Columns ``job``, the varying override keys, the selected metrics and ``status``;
        numeric columns right-aligned; a missing value is an empty cell.
    """
    names = select_metrics(report.metric_names, metrics)
    headers = ["job", *report.varying, *names, "status"]
    numeric = [True, *(False for _ in report.varying)]
    numeric += [all(_is_number(r.metrics[n]) for r in report.runs if r.metrics.get(n) is not None) for n in names]
    numeric.append(False)
    rows = [
        [
            str(run.job),
            *(_cell(run.choices.get(key, "")) for key in report.varying),
            *(_cell(format_value(run.metrics.get(name))) for name in names),
            _cell(run.status_text, _MAX_CELL),
        ]
        for run in report.runs
    ]
    headers = [_cell(h) for h in headers]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True))
        return "| " + " | ".join(padded) + " |"

    dashes = ("-" * (w + 1) + ":" if num else "-" * (w + 2) for w, num in zip(widths, numeric, strict=True))
    rule = "|" + "|".join(dashes) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def summary_lines(report: Report) -> list[str]:
    """One line counting the jobs by status, one naming the constant choices, and the notes."""
    counts: dict[str, int] = {}
    for run in report.runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines = [f"{len(report.runs)} jobs in `{report.directory}`: {tally}."]
    if report.constant:
        same = ", ".join(f"`{key}={value}`" for key, value in report.constant.items())
        lines.append(f"Same in every job: {same}.")
    lines += [f"Note: {note}." for note in report.notes]
    return lines


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
    parts = [f"# Report: {report.directory.name}", "", *summary_lines(report), ""]
    if figure:
        parts += [f"![summary of the headline metrics]({figure})", ""]
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
                run.job,
                *(run.choices.get(key, "") for key in keys),
                *("" if v is None else repr(v) if isinstance(v, float) else v for v in values),
                run.status,
                run.error,
            ]
        )
    return buffer.getvalue()


def plot_summary(
    report: Report,
    path: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
    *,
    max_panels: int = 6,
) -> Path:
    """Draw the headline metrics of every job as small multiples of bar charts into a PNG.

    One panel per metric, one horizontal bar per job labelled by :meth:`Report.label`; jobs
    that are not ok carry their status in red instead of a bar, and a job that is ok but lacks
    the metric says ``n/a``. The file is written atomically.

    Parameters
    ----------
    report : Report
        The multirun.
    path : path
        The PNG file to write.
    metrics : sequence of str, optional
        fnmatch patterns for the headline metrics; the first ``max_panels`` metrics when not
        given. Only the first ``max_panels`` matches are drawn.
    max_panels : int
        The most panels in the figure.

    Returns
    -------
    Path
        ``path``.
    """
    # Figure + FigureCanvasAgg rather than pyplot: no global backend switch, nothing registered
    # with pyplot's figure manager, so a notebook or a GUI session calling this is left as it was.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = select_metrics(report.metric_names, metrics)[: max(1, max_panels)]
    runs = report.runs
    labels = [report.label(run) for run in runs]
    panels = max(1, len(names))
    fig = Figure(figsize=(1.5 + 3.2 * panels, 1.2 + 0.32 * len(runs)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
    positions = list(range(len(runs)))
    for ax, name in zip(axes, names or (None,), strict=True):
        values = [run.metrics.get(name) if name else None for run in runs]
        drawn = [(y, x) for y, v in zip(positions, values, strict=True) if (x := _finite(v)) is not None]
        if drawn:
            bars = ax.barh([y for y, _ in drawn], [x for _, x in drawn], color="tab:blue")
            ax.bar_label(bars, labels=[format_value(x) for _, x in drawn], padding=2, fontsize=8)
            ax.margins(x=0.2)  # room for the value labels
        left = ax.get_yaxis_transform()  # x in axes fraction, y in data: the text sits at the left edge
        for y, run, value in zip(positions, runs, values, strict=True):
            if not run.ok:
                ax.text(0.02, y, run.status, transform=left, va="center", color="tab:red", fontweight="bold")
            elif name and _finite(value) is None:
                ax.text(0.02, y, "n/a" if value is None else format_value(value), transform=left, va="center")
        ax.set_title(name or "no metrics", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, labels)
    axes[0].set_ylim(len(runs) - 0.5, -0.5)  # job 0 on top, as in the table
    for tick, run in zip(axes[0].get_yticklabels(), runs, strict=True):
        if not run.ok:
            tick.set_color("tab:red")
    fig.suptitle(f"{report.directory.name}: {sum(r.ok for r in runs)} of {len(runs)} jobs ok", fontsize=10)
    target = Path(path)
    try:
        atomic_write(target, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        fig.clear()
    return target


# --------------------------------------------------------------------------------------------
# Writing


def write_report(
    directory: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | None = None,
    headline: Sequence[str] | None = None,
    *,
    max_panels: int = 6,
) -> WrittenReport:
    """Read a multirun and write ``report.md``, ``report.csv`` and ``summary.png``.

    Parameters
    ----------
    directory : path
        The multirun (sweep) directory.
    out : path, optional
        Where to write the three files (created if needed); ``directory`` when not given.
        Existing report files there are replaced: a report is derived data.
    metrics : sequence of str, optional
        fnmatch patterns selecting the metric columns of the Markdown table; the CSV always
        has every metric.
    headline : sequence of str, optional
        fnmatch patterns selecting the figure's panels; ``metrics`` when not given.
    max_panels : int
        The most panels in the figure.

    Returns
    -------
    WrittenReport

    Raises
    ------
    GeoconvError
        For a directory that is not a multirun, or a pattern that matches no metric.
    """
    report = read_multirun(directory)
    out_dir = Path(out) if out is not None else report.directory
    if out_dir.exists() and not out_dir.is_dir():
        raise GeoconvError(f"--out '{out_dir}' exists and is not a directory")
    # Validate every pattern before writing anything, so a typo leaves no partial set of files.
    select_metrics(report.metric_names, metrics)
    select_metrics(report.metric_names, headline)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_summary(report, out_dir / "summary.png", headline or metrics, max_panels=max_panels)
    csv_path = atomic_write(out_dir / "report.csv", render_csv(report))
    md_path = atomic_write(out_dir / "report.md", render_markdown(report, metrics, out_dir=out_dir))
    text = "\n".join([*summary_lines(report), "", markdown_table(report, metrics)])
    return WrittenReport(report, md_path, csv_path, figure, text)
