"""Training on Lightning: the task module, the data module and the runner's ``train`` entry.

=========================  ===================================================================
name                       what it is
=========================  ===================================================================
``GeoconvTask``            LightningModule: a geoconv model, its loss, metrics and optimiser
``SignalDataModule``       LightningDataModule: the ``data`` group's train / val / test sets
``train``                  the runner entry (``job.name=train``): fit, test, flat metrics
``CheckpointError``        a checkpoint to resume from is missing or unreadable
``RunFinished``            the checkpoint to resume from has trained every epoch asked for
``TrainingDivergedError``  the loss became NaN or infinite (the message names the step)
``load_run``               a trained run back as a model (eval mode) and its config
``LoadedRun``              what :func:`load_run` returns
``RunLoadError``           a path that cannot give back a model; the message says what is missing
``predict_files``          a loaded run's predictions for map files, written like the inputs
``training_figures``       a trained run's curves, confusion matrix or predicted maps
=========================  ===================================================================

Importing this package is cheap: Lightning loads when :func:`train` first runs or a name
other than ``train`` is first used, so the runner can list ``train`` beside the probes
without every probe job paying for Lightning.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from geoconv.training.checkpoints import CheckpointError, RunFinished
    from geoconv.training.datamodule import DATA_KINDS, PROTOCOLS, EpochSampler, SignalDataModule
    from geoconv.training.engine import TRAINER_DEFAULTS, peak_memory_mb, resolve_checkpoint
    from geoconv.training.figures import training_figures
    from geoconv.training.module import OPTIMIZERS, SCHEDULERS, GeoconvTask, TrainingDivergedError
    from geoconv.training.predict import predict_files
    from geoconv.training.runs import LoadedRun, RunLoadError, load_run

__all__ = [
    "DATA_KINDS",
    "OPTIMIZERS",
    "PROTOCOLS",
    "SCHEDULERS",
    "TRAINER_DEFAULTS",
    "CheckpointError",
    "EpochSampler",
    "RunFinished",
    "GeoconvTask",
    "LoadedRun",
    "RunLoadError",
    "SignalDataModule",
    "TrainingDivergedError",
    "peak_memory_mb",
    "load_run",
    "predict_files",
    "resolve_checkpoint",
    "train",
    "training_figures",
]

_HOMES = {
    "DATA_KINDS": "datamodule",
    "PROTOCOLS": "datamodule",
    "EpochSampler": "datamodule",
    "SignalDataModule": "datamodule",
    "TRAINER_DEFAULTS": "engine",
    "CheckpointError": "checkpoints",
    "RunFinished": "checkpoints",
    "peak_memory_mb": "engine",
    "resolve_checkpoint": "engine",
    "OPTIMIZERS": "module",
    "SCHEDULERS": "module",
    "GeoconvTask": "module",
    "TrainingDivergedError": "module",
    "LoadedRun": "runs",
    "RunLoadError": "runs",
    "load_run": "runs",
    "predict_files": "predict",
    "training_figures": "figures",
}


def train(
    plain: dict[str, Any], device: torch.device, generator: torch.Generator, out_dir: Path
) -> dict[str, float | int]:
    """Train and test the config's model; see :func:`geoconv.training.engine.train`."""
    from geoconv.training.engine import train as run_training

    return run_training(plain, device, generator, out_dir)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"geoconv.training.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
