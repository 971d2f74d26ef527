"""Reading a Hydra multirun: one :class:`Run` per job directory, and what varied between them.

A multirun such as ``python experiments/run.py -m op=conv,gated_conv grid=planar,healpix``
leaves one numbered directory per job (``0/``, ``1/``, ...) under its sweep directory. This
module reads each job's ``.hydra/overrides.yaml`` (what the job changed), its saved config
(``.hydra/config.yaml``, or the config in ``metrics.json``: the experiment's
``report_metrics``) and ``metrics.json`` (what it measured) into one :class:`Run`, and finds
the choices that varied between jobs (:func:`read_multirun`). :mod:`geoconv.experiment.report`
renders the result.

No job is ever dropped. A job's status is one of

- ``ok``: ``metrics.json`` says ``"status": "ok"``, or says no status at all (as entry points
  written before the status field did);
- ``failed``: ``metrics.json`` says ``"status": "failed"`` (its ``"error"`` is shown), or it is
  not a valid JSON object; such a file cannot come from a clean finish, since the entry point
  writes it atomically, so the job is reported as ``failed`` with the error
  ``unreadable metrics.json: ...`` instead of aborting the whole report;
- ``missing``: the job directory has no ``metrics.json`` (the job was killed, ran out of
  memory, or is still running), or a job number below the highest one has no directory at all.

- ``skipped``: the op cannot run as the sweep combined it (``sphere_conv`` on HEALPix; see
  :func:`geoconv.experiment.config.inapplicable`), under ``skip_inapplicable: true``; shown with
  the reason, not a failure of the sweep.

Any other ``status`` string in ``metrics.json`` is shown as it is and counts as not ok.

Examples
--------
>>> import json, pathlib, tempfile
>>> sweep = pathlib.Path(tempfile.mkdtemp())
>>> for job, (op, ms) in enumerate([("conv", 1.25), ("gated_conv", 2.5)]):
...     (sweep / str(job) / ".hydra").mkdir(parents=True)
...     _ = (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(f"- op={op}\\n- seed=0\\n")
...     payload = {"metrics": {"fwd_ms": ms}, "config": {"report_metrics": ["fwd_ms"]}, "status": "ok"}
...     _ = (sweep / str(job) / "metrics.json").write_text(json.dumps(payload))
>>> report = read_multirun(sweep)
>>> report.varying, report.constant, report.report_metrics
(('op',), {'seed': '0'}, ('fwd_ms',))
>>> [run.metrics["fwd_ms"] for run in report.runs]
[1.25, 2.5]
>>> import shutil; shutil.rmtree(sweep)
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from geoconv.errors import GeoconvError, closest_names

__all__ = [
    "MISSING_REASON",
    "Report",
    "Run",
    "Value",
    "finite",
    "format_value",
    "is_number",
    "parse_override",
    "read_multirun",
    "read_run",
    "select_metrics",
    "varying_choices",
]

Value = float | int | bool | str | None
"""A metric value as it came out of ``metrics.json``."""

MISSING_REASON = "killed or out of memory?"
"""Why a job directory without ``metrics.json`` is reported as missing."""

_JOB_NAME = re.compile(r"[0-9]+")


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or a float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (a bar can be drawn), else ``None``."""
    return float(value) if is_number(value) and math.isfinite(value) else None  # type: ignore[arg-type]


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
    report_metrics : tuple of str or None
        The ``report_metrics`` of the job's saved config (fnmatch patterns of the report's
        columns), or ``None`` when it has none.
    sweep : str
        Which sweep the job belongs to when a report reads several (its directory's name);
        ``""`` for a report of one sweep.
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
    report_metrics: tuple[str, ...] | None = None
    sweep: str = ""

    @property
    def name(self) -> str:
        """The job as the report names it: its number, prefixed by its sweep when there are several.

        >>> Run(3, Path("3")).name, Run(3, Path("b/3"), sweep="b").name
        ('3', 'b/3')
        """
        return f"{self.sweep}/{self.job}" if self.sweep else str(self.job)

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
        The multirun (sweep) directory; the first one when the report reads several.
    runs : tuple of Run
        One per job, sorted by job number (sweep by sweep, in the order given), none dropped.
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
    report_metrics : tuple of str
        The experiment's ``report_metrics`` (from the first job whose saved config has
        them): the report's default columns; empty when no job's config names any.
    directories : tuple of Path
        Every sweep directory read, in order; ``(directory,)`` when not given.
    """

    directory: Path
    runs: tuple[Run, ...]
    varying: tuple[str, ...]
    constant: dict[str, str]
    metric_names: tuple[str, ...]
    notes: tuple[str, ...] = ()
    report_metrics: tuple[str, ...] = ()
    directories: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.directories:
            object.__setattr__(self, "directories", (self.directory,))

    @property
    def title(self) -> str:
        """The sweeps' directory names, joined by `` + `` (one name for one sweep)."""
        return " + ".join(path.name for path in self.directories)

    def columns(self, metrics: Sequence[str] | None = None) -> tuple[str, ...]:
        """The metric columns of the report's table and figure.

        ``metrics`` (patterns a user typed) select strictly: a pattern matching nothing is an
        error (:func:`select_metrics`). Without them, the experiment's :attr:`report_metrics`
        select leniently (a configured column no job produced stays, as ``n/a``); without
        those, every metric.
        """
        if metrics:
            return select_metrics(self.metric_names, metrics)
        if self.report_metrics:
            return select_metrics(self.metric_names, self.report_metrics, strict=False)
        return self.metric_names

    def label(self, run: Run) -> str:
        """A short label for ``run``: its job number and varying choices.

        The last component of a dotted key is enough to tell ``grid.padding_mode=zeros`` from
        ``grid=healpix`` in a figure, and keeps the labels short.
        """
        parts = [f"{key.rsplit('.', 1)[-1]}={run.choices[key]}" for key in self.varying if key in run.choices]
        return f"{run.name}: " + ", ".join(parts) if parts else f"job {run.name}"


# --------------------------------------------------------------------------------------------


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


def _patterns(value: object) -> tuple[str, ...] | None:
    """``report_metrics`` as a tuple of patterns, or ``None`` when it is not a list of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _saved_report_metrics(job_dir: Path, payload: object) -> tuple[str, ...] | None:
    """The ``report_metrics`` of the job's saved config: ``.hydra/config.yaml`` (Hydra writes it
    before the job starts, so a killed job has it too), else the config in ``metrics.json``."""
    with_config = job_dir / ".hydra" / "config.yaml"
    try:
        saved = yaml.safe_load(with_config.read_text(encoding="utf-8")) if with_config.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        saved = None
    for config in (saved, payload.get("config") if isinstance(payload, dict) else None):
        if isinstance(config, dict) and config.get("report_metrics") is not None:
            return _patterns(config["report_metrics"])
    return None


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
        configured = _saved_report_metrics(path, None)
        return Run(number, path, status="missing", error=MISSING_REASON, **common, report_metrics=configured)
    try:
        payload = json.loads(metrics_path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        metrics = payload.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise ValueError(f"'metrics' should be an object, got {type(metrics).__name__}")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        configured = _saved_report_metrics(path, None)
        error = f"unreadable metrics.json: {exc}"
        return Run(number, path, status="failed", error=error, **common, report_metrics=configured)
    status = str(payload.get("status", "ok"))
    error = "" if status == "ok" else str(payload.get("error", "") or "")
    configured = _saved_report_metrics(path, payload)
    return Run(number, path, metrics=_flatten(metrics), status=status, error=error, **common, report_metrics=configured)


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


def _read_sweep(root: Path, sweep: str = "") -> tuple[Run, ...]:
    """Every job of one sweep directory, from 0 to the highest number found (gaps as ``missing``)."""
    if not root.exists():
        raise GeoconvError(f"multirun directory '{root}' does not exist")
    if not root.is_dir():
        raise GeoconvError(f"multirun directory '{root}' is not a directory")
    found = _job_dirs(root)
    if not found:
        raise _no_jobs_error(root)
    runs = (read_run(found.get(job, root / str(job)), job) for job in range(max(found) + 1))
    return tuple(replace(run, sweep=sweep) for run in runs)


def _sweep_names(roots: Sequence[Path]) -> list[str]:
    """Short names telling the sweeps apart: their directory names, or their paths when those repeat."""
    # Resolved, so that `sweep` and `./sweep` or an absolute spelling count as the same directory.
    resolved = [root.resolve() for root in roots]
    if len(set(resolved)) < len(roots):
        repeated = sorted({str(root) for root, real in zip(roots, resolved, strict=True) if resolved.count(real) > 1})
        raise GeoconvError(f"multirun directories: each may be given once, got {', '.join(repeated)} more than once")
    names = [root.name for root in roots]
    return names if len(set(names)) == len(names) else [str(root) for root in roots]


def read_multirun(directory: str | os.PathLike[str], *more: str | os.PathLike[str]) -> Report:
    """Read every job of a multirun directory, or of several as one report.

    Several directories are for one experiment run in parts, e.g. seed 0 first and seeds 1 and 2
    later: the report then names each job ``<sweep>/<job>`` (the directory's name), and jobs
    that differ only in ``seed`` are grouped across the sweeps as within one.

    Parameters
    ----------
    directory : path
        The sweep directory: numbered job directories and ``multirun.yaml``.
    *more : path
        Further sweep directories read into the same report.

    Returns
    -------
    Report
        One :class:`Run` per job number from 0 to the highest one found, sorted; a number with
        no directory (a job that never started) is a ``missing`` run, so gaps show.

    Raises
    ------
    GeoconvError
        If a directory does not exist, is not a directory, holds no numbered job directory, or
        is given twice.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for sweep, seed in [("first", 0), ("later", 1)]:
    ...     (base / sweep / "0" / ".hydra").mkdir(parents=True)
    ...     _ = (base / sweep / "0" / ".hydra" / "overrides.yaml").write_text(f"- op=conv\\n- seed={seed}\\n")
    ...     _ = (base / sweep / "0" / "metrics.json").write_text(json.dumps({"metrics": {"acc": 0.5 + seed}}))
    >>> report = read_multirun(base / "first", base / "later")
    >>> [run.name for run in report.runs], report.varying
    (['first/0', 'later/0'], ('seed',))
    >>> import shutil; shutil.rmtree(base)
    """
    roots = [Path(directory), *(Path(path) for path in more)]
    sweeps = _sweep_names(roots) if more else [""]
    runs = tuple(run for root, sweep in zip(roots, sweeps, strict=True) for run in _read_sweep(root, sweep))
    varying, constant = varying_choices(runs)
    names: dict[str, None] = {}  # an ordered set
    for run in runs:
        names.update(dict.fromkeys(run.metrics))
    notes = [run.note for run in runs if run.note]
    for run in runs:
        non_finite = [name for name, value in run.metrics.items() if is_number(value) and not math.isfinite(value)]
        if run.ok and non_finite:
            shown = ", ".join(non_finite[:5]) + (", ..." if len(non_finite) > 5 else "")
            notes.append(f"job {run.name}: {len(non_finite)} non-finite metric(s) ({shown})")
    configured = next((run.report_metrics for run in runs if run.report_metrics is not None), ())
    return Report(roots[0], runs, varying, constant, tuple(names), tuple(notes), configured, tuple(roots))


def select_metrics(
    names: Sequence[str], patterns: Sequence[str] | None = None, *, strict: bool = True
) -> tuple[str, ...]:
    """The metric names matching any of ``patterns`` (case-sensitive fnmatch), in their order.

    Parameters
    ----------
    names : sequence of str
        Every metric name.
    patterns : sequence of str, optional
        Glob patterns such as ``"*/fwd_bwd_ms"``; every name when ``None`` or empty.
    strict : bool
        What a pattern matching no name means. ``True`` (patterns a user typed): an error,
        since a mistyped pattern should not quietly give a table without the column asked
        for. ``False`` (an experiment's configured ``report_metrics``, some of which only
        some grids produce): the pattern stays a column of its own, after the matches, so
        that a report shows it as ``n/a``.

    Returns
    -------
    tuple of str

    Raises
    ------
    GeoconvError
        If ``strict`` and a pattern matches none of ``names`` (when there are any), naming the
        closest ones.

    Examples
    --------
    >>> select_metrics(["conv/params", "conv/ms", "pool/ms"], ["*/ms"])
    ('conv/ms', 'pool/ms')
    >>> select_metrics(["conv/ms"], ["rotation/excess", "conv/ms"], strict=False)
    ('conv/ms', 'rotation/excess')
    """
    if not patterns:
        return tuple(names)
    unmatched = [pattern for pattern in patterns if not any(fnmatch.fnmatchcase(name, pattern) for name in names)]
    if unmatched and names and strict:
        pattern = unmatched[0]
        hint = closest_names(pattern, names)
        raise GeoconvError(
            f"metrics pattern {pattern!r} matches no metric"
            + (f"; did you mean {' or '.join(map(repr, hint))}?" if hint else "")
            + f" Metrics: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}"
        )
    matched = tuple(name for name in names if any(fnmatch.fnmatchcase(name, p) for p in patterns))
    return matched if strict else matched + tuple(dict.fromkeys(unmatched))
