"""Running one composed experiment: validate, seed, build, probe, write ``metrics.json``.

The Hydra entry point (``experiments/run.py``) hands each job's config to :func:`run`,
which validates it before any work (:func:`geoconv.config.validate`), refuses to write
over another run's results, runs the probe the config names (an allow-list,
:data:`PROBES`), and writes ``metrics.json`` atomically: ``{"metrics": {name: number},
"config": {...}, "status": "ok"}``, or ``"status": "failed"`` with the error when the
probe raised (the error is then re-raised, so Hydra marks the job failed too).

At the end of a multirun, :class:`ReportCallback` turns the sweep directory into
``report.md``, ``report.csv`` and ``summary.png`` and prints the table.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from geoconv.config import validate
from geoconv.errors import GeoconvError, ParameterError, unknown_name
from geoconv.grids import get_grid

__all__ = ["PROBES", "ReportCallback", "make_input", "resolve_device", "run", "seed_everything", "write_json"]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None


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
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(payload, handle, indent=2, default=float)
        temporary = handle.name
    os.replace(temporary, path)


def make_input(plain: dict[str, Any], device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """The probe input the ``data`` group describes, in the grid's layout, on ``device``."""
    data, grid = plain["data"], plain["grid"]
    if data["kind"] == "noise":
        shape = get_grid(grid["name"]).shape(data["batch"], data["channels"], grid["size"])
        return torch.randn(shape, generator=generator).to(device)
    if data["kind"] == "band_limited":
        from geoconv.grids.fields import BandLimitedField

        field = BandLimitedField.random(
            data["lmax"], batch=data["batch"], channels=data["channels"], generator=generator
        )
        return field.sample(grid["name"], grid["size"]).float().to(device)
    raise unknown_name("data kind", data["kind"], ("noise", "band_limited"))


def progress(message: str) -> None:
    """One timestamped progress line, flushed (long jobs show where they are)."""
    print(f"[geoconv {time.strftime('%H:%M:%S')}] {message}", flush=True)


ProbeRunner = Callable[[dict[str, Any], torch.device, torch.Generator, Path], dict[str, float]]


def _probes() -> dict[str, ProbeRunner]:
    from geoconv.benchmark import benchmark_probe
    from geoconv.experiments import locality_probe, rotation_probe, shift_probe, suite_probe
    from geoconv.training import train

    return {
        "shift": shift_probe,
        "locality": locality_probe,
        "rotation": rotation_probe,
        "suite": suite_probe,
        "train": train,
        "benchmark": benchmark_probe,
    }


PROBES = ("shift", "locality", "rotation", "suite", "train", "benchmark")
"""The probe names a config may choose (``probe.name``)."""


def run(cfg: DictConfig, out_dir: Path) -> dict[str, float | int]:
    """Run the experiment ``cfg`` and write its results into ``out_dir``.

    Raises
    ------
    GeoconvError
        For an invalid config (before any work), or when ``out_dir`` already holds
        another run's ``metrics.json`` and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    target = out_dir / "metrics.json"
    resuming = cfg.get("ckpt_path") is not None
    if target.exists() and not (cfg.get("overwrite", False) or resuming):
        raise GeoconvError(
            f"{target} already holds a run's results; choose another hydra.run.dir, pass overwrite=true, "
            "or resume a training run with ckpt_path=last"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    try:
        plain = validate(cfg)
        name = plain["probe"]["name"]
        if name not in PROBES:
            raise unknown_name("probe", name, PROBES)
        device = resolve_device(plain["device"])
        generator = seed_everything(plain["seed"])
        progress(
            f"{name} probe: op={plain['op']['name']} grid={plain['grid']['name']} "
            f"padding_mode={plain.get('padding_mode')} on {device}"
        )
        metrics = _probes()[name](plain, device, generator, out_dir)
    except BaseException as err:
        # Recorded before re-raising, so a sweep's report lists this job as failed, with why.
        error = f"{type(err).__name__}: {err}"
        write_json(target, {"metrics": {}, "config": plain, "status": "failed", "error": error})
        raise
    # Counts stay integers in metrics.json; everything else (tensors included) becomes a float.
    metrics = {key: value if isinstance(value, int) else float(value) for key, value in metrics.items()}
    write_json(target, {"metrics": metrics, "config": plain, "status": "ok"})
    progress(f"wrote {target} ({len(metrics)} metrics)")
    return metrics


def _hydra_callback_base() -> type:
    from hydra.experimental.callback import Callback

    return Callback


class ReportCallback(_hydra_callback_base()):  # type: ignore[misc]
    """At the end of a multirun: write the report of its sweep directory and print the table."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from geoconv.report import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        metrics = list(config.get("report_metrics") or []) or None
        try:
            written = write_report(sweep_dir, metrics=metrics)
        except GeoconvError as err:  # the jobs' own results are on disk whatever happens here
            print(f"no report for {sweep_dir}: {err}", file=sys.stderr)
            return
        print()
        print(written.text)
        print(f"\nreport.md, report.csv, summary.png and each job's figures are in {sweep_dir}")
