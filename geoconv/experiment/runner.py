"""Running one composed experiment: validate, seed, run the job, write ``metrics.json``.

The Hydra entry point (``experiments/run.py``) hands each job's config to :func:`run`,
which refuses a config that names code (a ``_target_`` outside :data:`ALLOWED_TARGETS`),
validates it before any work (:func:`geoconv.experiment.config.validate`), refuses to write over
another run's results, runs the job the config names (``job.name``, from the job registry),
and writes ``metrics.json`` atomically (:func:`geoconv._io.atomic_write`):
``{"metrics": {name: number}, "config": {...}, "status": "ok", "figures": [PNG names]}``, or ``"status": "failed"``
with the error when anything raised (the error is then re-raised, so Hydra marks the job
failed too), or ``"status": "skipped"`` with the reason when the config sets
``skip_inapplicable`` and its op cannot run as asked (:func:`geoconv.experiment.config.inapplicable`:
an op × grid × padding sweep's combination that does not exist, such as ``sphere_conv`` on HEALPix).

Non-finite numbers
------------------
A probe input (:func:`geoconv.data.synthetic.make_input`) that holds NaN or Inf is refused with a
:class:`NonFiniteInputError` naming the data kind and the count, before the job measures
anything: the run is ``failed``. A job whose *metrics* come out NaN or Inf (an
equivariance error relative to an all-zero output, a slope through a degenerate sweep) has
still run to the end, so its status stays ``ok``, but ``metrics.json`` lists those names
under ``"non_finite"``, the progress line says so, and the multirun report adds a note:
a NaN never passes silently as a number.

At the end of a multirun, :class:`ReportCallback` turns the sweep directory into
``report.md``, ``report.csv`` and ``summary.png``, prints the table, and ends the process with
status 1 when any job did not finish ``ok`` (``skipped`` jobs do not count).

Devices and failures
--------------------
:func:`resolve_device` checks the config's ``device`` against the machine before any work
(``cuda`` without CUDA is one line naming the devices that exist, in every job).
:func:`log_failure` is how ``experiments/run.py`` reports a failed job: one line on the
console, the traceback in the job's log file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from geoconv._io import atomic_write
from geoconv.data.synthetic import NonFiniteInputError
from geoconv.errors import GeoconvError, ParameterError
from geoconv.experiment.config import inapplicable, validate
from geoconv.experiment.jobs import get_job

log = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_TARGETS",
    "NonFiniteInputError",
    "ReportCallback",
    "available_devices",
    "check_targets",
    "log_failure",
    "resolve_device",
    "run",
    "seed_everything",
    "write_json",
]

ALLOWED_TARGETS: tuple[str, ...] = ("geoconv.experiment.runner.ReportCallback",)
"""The only ``_target_`` values a config may hold (the multirun report callback).

Configs never name code: ops, models, probes, data kinds, optimisers and schedulers are
chosen by name from allow-lists. A ``_target_`` anywhere else in a job's config, or a Hydra
callback other than these, makes :func:`run` fail before any work. Hydra instantiates its
callbacks from the ``hydra`` node before a job starts, so for those the check cannot prevent
the instantiation: it makes the run fail loudly instead of succeeding (see ``experiments/run.py``).
"""


def check_targets(node: object, where: str = "") -> None:
    """Refuse any ``_target_`` in ``node`` (a config, mapping or list) not in :data:`ALLOWED_TARGETS`.

    Parameters
    ----------
    node : DictConfig, ListConfig, mapping, list or value
        The config to scan, recursively; interpolations are not resolved (an interpolated
        ``_target_`` is refused as it is written).
    where : str
        The key path of ``node``, for the message (``"hydra.callbacks"``).

    Raises
    ------
    GeoconvError
        Naming every offending key path and target, and the allowed targets.

    Examples
    --------
    >>> check_targets({"hydra": {"callbacks": {"report": {"_target_": "geoconv.experiment.runner.ReportCallback"}}}})
    >>> check_targets({"op": {"params": {"_target_": "os.system"}}})
    Traceback (most recent call last):
    ...
    geoconv.errors.GeoconvError: op.params._target_='os.system' is not allowed: configs do not name code; ...
    """
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    found: list[tuple[str, object]] = []

    def scan(value: object, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if key == "_target_" and item not in ALLOWED_TARGETS:
                    found.append((here, item))
                scan(item, here)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                scan(item, f"{path}[{index}]")

    scan(node, where)
    if found:
        listed = ", ".join(f"{path}={target!r}" for path, target in found)
        raise GeoconvError(
            f"{listed} is not allowed: configs do not name code; ops, models, probes, data, optimisers and "
            f"schedulers are chosen by name. Allowed _target_ values: {', '.join(ALLOWED_TARGETS)}"
        )


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices this machine can run on: ``cpu``, then ``cuda:0`` ... and ``mps`` when present.

    >>> available_devices()[0]
    'cpu'
    """
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def resolve_device(name: object) -> torch.device:
    """The torch device the config's ``device`` names, checked to exist here; ``auto`` picks CUDA when present.

    Checked before any work, so that a run asked for a device the machine lacks fails with
    one clear line (which devices exist), not deep inside the job with torch's own assertion.

    Parameters
    ----------
    name : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises
    ------
    ParameterError
        For another name, ``cuda`` without a usable CUDA device (torch built without CUDA,
        or no GPU visible), ``cuda:N`` beyond the device count, or ``mps`` without MPS; the
        message lists the devices that exist.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'; ...
    """
    here = f"devices here: {', '.join(available_devices())} (or device=auto)"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name) if isinstance(name, str) else None
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}; {here}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "no CUDA GPU is visible" if torch.backends.cuda.is_built() else "this torch was built without CUDA"
            raise ParameterError(f"device={name!r}, but {why}; {here}")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ParameterError(f"device={name!r}, but this machine has {count} CUDA device(s); {here}")
    if device.type == "mps" and not _mps_available():
        raise ParameterError(f"device={name!r}, but MPS (Apple's GPU backend) is not available; {here}")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch (all devices); return a CPU generator for inputs."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds code that uses numpy's global state
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _is_global_zero() -> bool:
    # Under DDP every process runs the job; only the first writes its results.
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (a temporary file in the same directory, then a rename), on rank 0 only."""
    if not _is_global_zero():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(payload, indent=2, default=float))


def _non_finite(metrics: Mapping[str, Any]) -> list[str]:
    return sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))


def _finished_metrics(target: Path) -> dict[str, Any] | None:
    """The metrics of ``target`` when it holds a finished (``ok``) run's results, else ``None``."""
    try:
        payload = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if isinstance(payload, dict) and payload.get("status") == "ok" and isinstance(payload.get("metrics"), dict):
        return payload["metrics"]
    return None


def _record_failure(target: Path, plain: dict[str, Any], err: BaseException) -> None:
    # Recorded before the error goes on, so a sweep's report lists this job as failed, with why.
    error = f"{type(err).__name__}: {err}"
    write_json(target, {"metrics": {}, "config": plain, "status": "failed", "error": error})


def run(cfg: DictConfig, out_dir: Path, *, callbacks: object = None) -> dict[str, float | int]:
    """Run the experiment ``cfg`` and write its results into ``out_dir``.

    Parameters
    ----------
    cfg : DictConfig
        The job's composed config (without the ``hydra`` node, as ``@hydra.main`` passes it).
    out_dir : Path
        The run directory.
    callbacks : DictConfig or mapping, optional
        The Hydra callbacks the job runs under (``HydraConfig.get().callbacks``); their
        ``_target_`` values are checked against :data:`ALLOWED_TARGETS` with the job's own.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``. Resuming (``ckpt_path``) a training run that
        has already trained all its epochs trains nothing and writes nothing: its
        ``metrics.json`` is left as it was, and its metrics are returned.

    Raises
    ------
    GeoconvError
        For a ``_target_`` not in :data:`ALLOWED_TARGETS` or an invalid config (both before
        any work), when ``out_dir`` already holds another run's ``metrics.json`` and
        ``overwrite`` is false, or when a finished training run is resumed whose results were
        never written (it was killed while testing, or failed): nothing to resume, nothing
        to report.
    """
    from geoconv.training.checkpoints import RunFinished  # no Lightning: a light import

    out_dir = Path(out_dir)
    target = out_dir / "metrics.json"
    resuming = cfg.get("ckpt_path") is not None
    if target.exists() and not (cfg.get("overwrite", False) or resuming):
        raise GeoconvError(
            f"{target} already holds a run's results; choose another hydra.run.dir, pass overwrite=true, "
            "or resume a training run with ckpt_path=last"
        )
    previous = _finished_metrics(target) if resuming else None
    out_dir.mkdir(parents=True, exist_ok=True)
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    try:
        check_targets(cfg)
        if callbacks is not None:
            check_targets(callbacks, "hydra.callbacks")
        reason = inapplicable(cfg) if cfg.get("skip_inapplicable", False) else None
        if reason is not None:  # a sweep's combination that does not exist: recorded, not failed
            write_json(target, {"metrics": {}, "config": plain, "status": "skipped", "error": reason})
            log.info(f"skipped: {reason}")
            return {}
        plain = validate(cfg)
        name = plain["job"]["name"]
        job = get_job(name)
        device = resolve_device(plain["device"])
        generator = seed_everything(plain["seed"])
        log.info(
            f"{name} job: op={plain['op']['name']} grid={plain['grid']['name']} "
            f"padding_mode={plain.get('padding_mode')} on {device}"
        )
        metrics = job(plain, device, generator, out_dir)
    except RunFinished as done:
        if previous is not None:  # a finished run resumed again: its results stay as they were
            log.info(f"{done}; {target} is left as it was ({len(previous)} metrics)")
            return previous
        failure = GeoconvError(
            f"{done}, but {target} holds no finished results (the run was interrupted after its last epoch, "
            "or failed); start over without ckpt_path and with overwrite=true"
        )
        _record_failure(target, plain, failure)
        raise failure from None
    except BaseException as err:
        _record_failure(target, plain, err)
        raise
    # Counts stay integers in metrics.json; everything else (tensors included) becomes a float.
    metrics = {key: value if isinstance(value, int) else float(value) for key, value in metrics.items()}
    result: dict[str, Any] = {"metrics": metrics, "config": plain, "status": "ok"}
    # The figures the job drew, so a reader (or a script) finds them without listing the folder.
    result["figures"] = sorted(str(path.relative_to(out_dir)) for path in out_dir.glob("*.png"))
    non_finite = _non_finite(metrics)
    if non_finite:  # finished, so ok; but a NaN must not pass for a measurement
        result["non_finite"] = non_finite
        log.info(f"warning: non-finite metrics {', '.join(non_finite)}")
    write_json(target, result)
    log.info(f"wrote {target} ({len(metrics)} metrics)")
    return metrics


def log_failure(err: BaseException, what: str) -> str:
    """Put the traceback of ``err`` into the job's log file only; return one line for the console.

    Hydra gives the root logger a console handler and a file handler (``<job dir>/<job
    name>.log``). A failed job's traceback belongs in that file, where it can be read after
    the fact; on the console, one line per failure says what failed and where the
    traceback is (a sweep of sixteen failed jobs is sixteen lines, not five hundred).

    Parameters
    ----------
    err : BaseException
        The error the job raised.
    what : str
        What failed (``"job 3 (op=conv, grid=planar)"``).

    Returns
    -------
    str
        ``"<what> failed: <ErrorType>: <message> (traceback in <log file>)"``, one line.

    Examples
    --------
    >>> log_failure(ValueError("no\\nway"), "job 3")  # doctest: +ELLIPSIS
    'job 3 failed: ValueError: no way...'
    """
    line = f"{what} failed: {type(err).__name__}: {' '.join(str(err).split())}"
    files = [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]
    if not files:
        return line
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, line, (), (type(err), err, err.__traceback__))
    for handler in files:
        handler.handle(record)
    return f"{line} (traceback in {files[0].baseFilename})"


def _hydra_callback_base() -> type:
    from hydra.experimental.callback import Callback

    return Callback


def check_seed_list(config: DictConfig) -> None:
    """Raise when a multirun's seeds are an empty list: the command line's ``seed=`` or the sweeper's.

    A sweep over ``seed`` with no value would launch every job only for each to fail its
    config check; one error before any job is what the user needs. The command line wins over
    the sweeper's ``params`` (Hydra's rule), so it is checked first.

    >>> from omegaconf import OmegaConf
    >>> check_seed_list(OmegaConf.create({"hydra": {"overrides": {"task": ["seed=0,1"]}, "sweeper": {}}}))
    >>> check_seed_list(OmegaConf.create({"hydra": {"overrides": {"task": ["seed="]}, "sweeper": {}}}))
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: seed is an empty list (seed=): a multirun needs at least one seed, e.g. seed=0,1,2
    """
    hydra = config.get("hydra") or {}
    task = list((hydra.get("overrides") or {}).get("task") or [])
    given = [item.split("=", 1)[1] for item in task if item.split("=", 1)[0].lstrip("+~") == "seed" and "=" in item]
    if given:
        value, where = given[-1], "seed="
    else:
        params = (hydra.get("sweeper") or {}).get("params") or {}
        if "seed" not in params:
            return
        value, where = params["seed"], "hydra.sweeper.params.seed="
    text = "" if value is None else str(value).strip()
    if text in ("", "[]", "''", '""') or not any(part.strip() for part in text.strip("[]").split(",")):
        raise ParameterError(
            f"seed is an empty list ({where}{'' if value is None else value}): a multirun needs at least one seed, "
            "e.g. seed=0,1,2"
        )


class ReportCallback(_hydra_callback_base()):  # type: ignore[misc]
    """At the end of a multirun: write and print its report, and fail the process when a job failed.

    The report (:func:`geoconv.experiment.report.write_report`) takes its columns from the
    experiment's ``report_metrics`` in the jobs' saved configs; a configured column that no
    job produced is shown as ``n/a``. When any job did not finish ``ok`` (failed, or killed
    before writing ``metrics.json``), one line names them and the process exits with status 1
    (raising :class:`SystemExit`, which Hydra lets through), so a script or scheduler running
    the sweep sees the failure. ``conf/config.yaml`` installs this callback for every multirun.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse an empty seed list before any job starts (``seed=`` or ``hydra.sweeper.params.seed=``).

        Hydra turns a callback's exception into a warning and goes on, so the error is printed
        here and the process exits with status 1 (:class:`SystemExit` passes through Hydra).
        """
        try:
            check_seed_list(config)
        except GeoconvError as err:
            print(f"{type(err).__name__}: {err}", file=sys.stderr)
            raise SystemExit(1) from None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from geoconv.experiment.report import read_multirun, write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            written = write_report(sweep_dir)
        except GeoconvError as err:  # the jobs' own results are on disk whatever happens here
            print(f"no report for {sweep_dir}: {err}", file=sys.stderr)
            try:
                runs = read_multirun(sweep_dir).runs
            except GeoconvError:
                raise SystemExit(1) from None
        else:
            runs = written.report.runs
            print()
            print(written.text)
            print(f"\nreport.md, report.csv, summary.png and each job's figures are in {sweep_dir}")
        bad = [run for run in runs if not run.ok and run.status != "skipped"]  # skipped: see config.inapplicable
        if bad:
            jobs = ", ".join(f"{run.name} ({run.status})" for run in bad)
            print(
                f"{len(bad)} of {len(runs)} jobs did not finish ok: {jobs}; the report's status column says why, "
                f"each job's log in {sweep_dir}/<job> has the traceback",
                file=sys.stderr,
            )
            raise SystemExit(1)
