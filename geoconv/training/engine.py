"""The training path of the runner: fit, test, and the metrics that go into ``metrics.json``.

:func:`train` has the signature of a job (:mod:`geoconv.experiment.jobs`), so ``job.name=train`` makes
:func:`geoconv.experiment.runner.run` train the config's model on the config's data instead of
probing it at initialisation. Everything Lightning writes stays inside the run directory::

    <run dir>/
      metrics.json              written by the runner (status ok / failed; lists the figures)
      training_curves.png       loss and accuracy (or IoU) per epoch, train and validation
      confusion_matrix.png      classification: on the protocol's own test set
      predictions.png           segmentation: input, true mask, predicted probability
      checkpoints/last.ckpt     every epoch (and epoch=<e>-step=<s>.ckpt, the newest one)
      logs/version_<k>/         CSV logs, one version per attempt (a resumed run adds one)
      tensorboard/              with trainer.tensorboard=true and tensorboard installed

Resuming
--------
``ckpt_path=last`` (top-level key; ``++ckpt_path=last`` while the config tree does not
declare it) with the same ``hydra.run.dir`` resumes from ``checkpoints/last.ckpt``; any
other value is a checkpoint file's path. A missing, unreadable or truncated file is a
:class:`CheckpointError` naming the path: never a silent restart from scratch (which is
what Lightning itself does for ``ckpt_path="last"`` when no checkpoint exists). Starting
afresh (``ckpt_path`` unset) in a directory that already holds checkpoints is refused too,
unless ``overwrite=true``. Checkpoints are written atomically (a temporary file beside
the checkpoint, then a rename: a kill at any point leaves the previous one whole) and read
with ``torch.load(weights_only=True)``: they hold only tensors and plain Python values. Resuming with a larger
``trainer.max_epochs`` trains on; a cosine schedule keeps the period it was saved with.
Resuming a run whose checkpoint has already trained ``trainer.max_epochs`` epochs trains
nothing: :func:`train` raises :class:`~geoconv.training.checkpoints.RunFinished` before
building anything, and the runner leaves that run's ``metrics.json`` as it was (or, when the
run never wrote its results, fails saying so). See :mod:`geoconv.training.checkpoints`.

Console and log
---------------
Lightning's lines appear once (through the root logger's handlers, which Hydra sets up), the
progress bar is drawn only when stdout is a terminal (``trainer.progress_bar=auto``; ``true``
forces it), and every run ends with one block of its test metrics. See
:mod:`geoconv.training.logs`.

On CPU the run is deterministic (``deterministic=True``, seeded by the top-level ``seed``
through ``lightning.seed_everything(seed, workers=True)``, batches ordered by
``seed + epoch``), so a run killed after a checkpoint and resumed reports the same
metrics and ends with the same weights as an uninterrupted one.

Several GPUs or nodes
---------------------
Lightning's own strategies, nothing home-made: ``trainer.strategy=ddp trainer.devices=4``
(and ``trainer.num_nodes=2`` on a cluster). ``trainer.precision=bf16-mixed`` on GPUs with
bfloat16 (Ampere and later). See ``conf/trainer/default.yaml``.

Metrics returned
----------------
``train/loss``, ``train/acc`` (or ``iou``, ``pixel_acc``), ``val/...`` at the last epoch;
``val/loss_start`` etc. before the first update; ``test/<metric>_<tag>`` for each test set
(``test/acc_nr``, ``test/acc_r`` for spherical digits) and ``test/<metric>`` for the
protocol's own test set; ``params``, ``epochs``, ``steps``; ``train/samples_per_s``
(samples per second in the training loop: loading, forward, backward and step, without
validation, checkpointing or the first batch's warm-up); ``peak_memory_mb`` and
``peak_memory_delta_mb`` (see :func:`peak_memory_mb`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import torch

from geoconv._checks import check_int
from geoconv.errors import ParameterError
from geoconv.nn.models import count_parameters
from geoconv.training.batchnorm import batch_norms, make_callback
from geoconv.training.checkpoints import (
    CheckpointError,
    RunFinished,
    atomic_checkpoint_io,
    check_compatible,
    epochs_done,
    read_checkpoint,
    resolve_checkpoint,
    stale_checkpoints,
)
from geoconv.training.datamodule import SignalDataModule, check_batch_size
from geoconv.training.figures import training_figures
from geoconv.training.logs import metrics_block, progress_bar_enabled, route_lightning_logs
from geoconv.training.module import GeoconvTask, check_optimizer, check_scheduler
from geoconv.training.runs import build_from_spec, model_spec

__all__ = [
    "TRAINER_DEFAULTS",
    "CheckpointError",
    "Fitted",
    "RunFinished",
    "fit",
    "peak_memory_mb",
    "resolve_checkpoint",
    "train",
]

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 1,
    "batch_size": 32,
    "lr": 1e-3,
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "scheduler": "none",
    "precision": "32-true",
    "strategy": "auto",
    "devices": "auto",
    "num_nodes": 1,
    "deterministic": "auto",
    "tensorboard": False,
    "log_every_n_steps": 10,
    "num_workers": 0,
    "val_fraction": 0.1,
    "progress_bar": "auto",
    "bn_recalibration": 0,
}
"""What :func:`train` uses for a ``trainer`` key the config leaves out (``conf/trainer/default.yaml``)."""

log = logging.getLogger(__name__)


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


# Lightning advertises its cloud logger on every Trainer; a job log is no place for it.
_LIGHTNING_INFO = logging.getLogger("lightning.pytorch.utilities.rank_zero")
if not any(isinstance(f, _NoAdverts) for f in _LIGHTNING_INFO.filters):
    _LIGHTNING_INFO.addFilter(_NoAdverts())


# -- measurements -----------------------------------------------------------------------------


class _Throughput(lightning.Callback):
    """Samples per second in the training loop, without validation and checkpointing.

    The first batch of an attempt is left out when later ones exist: it pays one-off costs
    (padding tables, lazy parameters, allocator warm-up) that would make the first job of a
    sweep look slower than the others.
    """

    def __init__(self) -> None:
        self.samples, self.seconds, self._mark = 0, 0.0, None
        self._first: tuple[int, float] | None = None

    def _now(self, trainer: lightning.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: lightning.Trainer, module: lightning.LightningModule) -> None:
        self._mark = self._now(trainer)

    def on_validation_end(self, trainer: lightning.Trainer, module: lightning.LightningModule) -> None:
        self._mark = self._now(trainer)

    def on_train_batch_end(
        self, trainer: lightning.Trainer, module: lightning.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = self._now(trainer)
        if self._mark is not None:
            samples, seconds = int(batch[0].shape[0]) * trainer.world_size, now - self._mark
            if self._first is None:
                self._first = (samples, seconds)
            else:
                self.samples += samples
                self.seconds += seconds
        self._mark = now

    @property
    def samples_per_s(self) -> float:
        samples, seconds = (self.samples, self.seconds) if self.samples else (self._first or (0, 0.0))
        return samples / seconds if seconds > 0 else float("nan")


def _reset_peak_memory(device: torch.device) -> float:
    """Reset the peak (see :func:`peak_memory_mb`) and return the memory in use now, in MiB."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    # Linux: writing 5 resets the process's peak resident set size (VmHWM) to the current one.
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return peak_memory_mb(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since the last reset, in MiB.

    On CUDA: ``torch.cuda.max_memory_allocated`` (tensors only). On the CPU: the process's
    peak resident set size (``VmHWM`` of ``/proc/self/status``, reset before training, so
    it covers fit and test; it includes the interpreter, torch and the data, a baseline of
    a few hundred MiB: :func:`train` also reports the rise over what was resident at the
    reset, ``peak_memory_delta_mb``, which is what the model's training adds). Without
    ``/proc`` (macOS), ``getrusage``'s ``ru_maxrss``, the peak over the whole process's
    life. ``tracemalloc`` is no use here: it sees Python's allocator, not the tensors' memory.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


# -- the trainer ------------------------------------------------------------------------------


def _settings(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The ``trainer`` group over the defaults, checked before anything is built."""
    given = dict(plain.get("trainer") or {})
    unknown = sorted(set(given) - set(TRAINER_DEFAULTS))
    if unknown:
        from geoconv.errors import unknown_name

        raise unknown_name("trainer key", unknown[0], TRAINER_DEFAULTS)
    settings = TRAINER_DEFAULTS | given
    settings["batch_size"] = check_batch_size(settings["batch_size"])
    settings["max_epochs"] = check_int("trainer.max_epochs", settings["max_epochs"], minimum=1)
    settings["log_every_n_steps"] = check_int("trainer.log_every_n_steps", settings["log_every_n_steps"], minimum=1)
    settings["num_nodes"] = check_int("trainer.num_nodes", settings["num_nodes"], minimum=1)
    settings["bn_recalibration"] = check_int("trainer.bn_recalibration", settings["bn_recalibration"], minimum=0)
    check_optimizer(settings["optimizer"])
    settings["scheduler"] = check_scheduler(settings["scheduler"])
    if not isinstance(settings["tensorboard"], bool):
        raise ParameterError(f"trainer.tensorboard must be true or false, got {settings['tensorboard']!r}")
    if not (settings["progress_bar"] == "auto" or isinstance(settings["progress_bar"], bool)):
        raise ParameterError(
            f"trainer.progress_bar must be auto (only on a terminal), true or false, got {settings['progress_bar']!r}"
        )
    if settings["deterministic"] not in ("auto", True, False, "warn"):
        value = settings["deterministic"]
        raise ParameterError(f"trainer.deterministic must be auto, true, false or warn, got {value!r}")
    return settings


def _accelerator(device: str, devices: Any) -> tuple[str, Any]:
    """Lightning's accelerator and devices for the config's top-level ``device``."""
    if device == "auto":
        return "auto", devices
    if device == "cpu":
        return "cpu", 1 if devices == "auto" else devices
    if device.startswith("cuda"):
        index = device.partition(":")[2]
        return "gpu", [int(index)] if index else devices
    if device == "mps":
        return "mps", 1 if devices == "auto" else devices
    raise ParameterError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")


def _loggers(settings: Mapping[str, Any], out_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = [CSVLogger(save_dir=out_dir, name="logs")]
    if settings["tensorboard"]:
        try:
            loggers.append(TensorBoardLogger(save_dir=out_dir, name="tensorboard"))
        except ModuleNotFoundError:
            log.info("trainer.tensorboard=true, but neither tensorboard nor tensorboardX is installed: CSV logs only")
    return loggers


@contextlib.contextmanager
def _restored_determinism() -> Iterator[None]:
    # Lightning turns deterministic algorithms on for the whole process; later work in the
    # same process (other jobs of a multirun, other tests) should not inherit that.
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _scalars(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if key.startswith(prefix) and not key.endswith("_step") and torch.as_tensor(value).numel() == 1
    }


def _consistency(model: torch.nn.Module, pair: tuple, batch_size: int, device: torch.device) -> float:
    """Zhang (2019): P[argmax f(T1 x) = argmax f(T2 x)] over the test set and two draws of T."""
    first, second = pair
    model = model.to(device).eval()
    agree = torch.zeros((), dtype=torch.long, device=device)
    with torch.no_grad():
        for start in range(0, len(first), batch_size):
            a = first.inputs[start : start + batch_size].to(device)
            b = second.inputs[start : start + batch_size].to(device)
            agree += (model(a).argmax(-1) == model(b).argmax(-1)).sum()
    return float(agree) / max(len(first), 1)


@dataclass(frozen=True)
class Fitted:
    """What :func:`fit` leaves in memory: the metrics, the trained task (its ``model``) and the data."""

    metrics: dict[str, float | int]
    task: GeoconvTask
    data: SignalDataModule


def train(
    plain: dict[str, Any], device: torch.device, generator: torch.Generator, out_dir: Path
) -> dict[str, float | int]:
    """Train the config's model on the config's data; test it; return flat metrics (the job).

    :func:`fit` with the job's signature; see there for the parameters.
    """
    del generator
    return fit(plain, device, out_dir).metrics


def fit(plain: dict[str, Any], device: torch.device, out_dir: Path) -> Fitted:
    """Train the config's model on the config's data; test it; return the metrics and the trained model.

    Parameters
    ----------
    plain : dict
        A validated config (:func:`geoconv.experiment.config.validate`): ``model``, ``op``, ``grid``,
        ``data`` (a training kind), ``trainer``, ``seed``, ``device`` and optionally
        ``ckpt_path`` and ``overwrite``.
    device : torch.device
        The runner's device; Lightning places the work itself from the config's ``device``
        (``auto``: Lightning's choice; ``cpu``; ``cuda[:N]``).
    out_dir : Path
        The run directory: checkpoints and logs go there.

    Returns
    -------
    Fitted
        ``metrics`` (the flat metrics listed in the module docstring), ``task`` (the trained
        :class:`GeoconvTask`; its ``model`` is what the last checkpoint holds) and ``data``.

    Raises
    ------
    GeoconvError
        Before any training, for a bad trainer setting (``batch_size`` < 1 first of all),
        data kind, checkpoint (:class:`CheckpointError`) or model/data mismatch;
        :class:`~geoconv.training.checkpoints.RunFinished` when the checkpoint to resume from
        has already trained ``trainer.max_epochs`` epochs (nothing to do: the runner leaves the
        run's results as they were);
        :class:`~geoconv.training.module.TrainingDivergedError` when the loss stops being finite.
    """
    out_dir = Path(out_dir)
    settings = _settings(plain)
    seed = int(plain.get("seed", 0))
    checkpoints = out_dir / "checkpoints"
    loaded = read_checkpoint(plain.get("ckpt_path"), out_dir)
    resume = loaded[0] if loaded is not None else None
    if loaded is not None and epochs_done(loaded[1]) >= settings["max_epochs"]:
        # Lightning would restore the finished fit, train nothing and report a partial set of
        # metrics (no train/ or val/ values, no throughput) over the run's real results.
        raise RunFinished(loaded[0], epochs_done(loaded[1]), settings["max_epochs"])
    # Under DDP the other processes rerun this; the launching process (rank 0) has checked.
    stale: list[Path] = []
    if resume is None and os.environ.get("LOCAL_RANK", "0") == "0":
        stale = stale_checkpoints(checkpoints, bool(plain.get("overwrite", False)))
    accelerator, devices = _accelerator(str(plain.get("device", "auto")), settings["devices"])
    data = SignalDataModule.from_config(plain)  # checks the data kind; builds nothing yet

    from lightning.pytorch.callbacks import ModelCheckpoint

    route_lightning_logs()  # the root logger is set up by now (Hydra does it before the job)
    throughput = _Throughput()
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    deterministic = on_cpu if settings["deterministic"] == "auto" else settings["deterministic"]
    with _restored_determinism(), warnings.catch_warnings():
        # The tiny data sets of quick runs make Lightning advise more workers on every loader.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*smaller than the logging interval.*")
        if resume is not None:  # the directory of the run being resumed holds its checkpoints, as it should
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
        # Lightning 2.6 on torch >= 2.10 warns about its own use of torch's pytree API.
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
        try:  # before the data are built, so a bad precision or strategy costs nothing
            trainer = lightning.Trainer(
                accelerator=accelerator,
                devices=devices,
                num_nodes=settings["num_nodes"],
                strategy=settings["strategy"],
                precision=settings["precision"],
                max_epochs=settings["max_epochs"],
                deterministic=deterministic,
                logger=_loggers(settings, out_dir),
                callbacks=[
                    ModelCheckpoint(dirpath=checkpoints, save_last=True, every_n_epochs=1),
                    throughput,
                ],
                plugins=[atomic_checkpoint_io()],
                log_every_n_steps=settings["log_every_n_steps"],
                enable_progress_bar=progress_bar_enabled(settings["progress_bar"]),
                enable_model_summary=False,
                # The validation pass before training (fresh runs) already checks the loop.
                num_sanity_val_steps=0,
                default_root_dir=out_dir,
            )
        except (ValueError, TypeError, RuntimeError) as err:
            raise ParameterError(
                f"Lightning rejected the trainer settings (precision={settings['precision']!r}, "
                f"strategy={settings['strategy']!r}, devices={devices!r}, device={plain.get('device')!r}): {err}"
            ) from err

        lightning.seed_everything(seed, workers=True, verbose=False)
        data.setup("fit")
        # Seeded again so the initial weights do not depend on how the data were made.
        lightning.seed_everything(seed, workers=True, verbose=False)
        classes = data.classes
        example = data.example()
        spec = model_spec(
            plain,
            task=data.task,
            input_shape=tuple(example[0].shape[1:]),
            outputs=classes if classes > 0 else 1,
            class_names=data.splits.class_names,
            standardize=data.splits.standardize,
        )
        model = build_from_spec(spec)
        task = GeoconvTask(
            model,
            task=data.task,
            optimizer=settings["optimizer"],
            lr=settings["lr"],
            weight_decay=settings["weight_decay"],
            momentum=settings["momentum"],
            scheduler=settings["scheduler"],
            max_epochs=settings["max_epochs"],
            test_tags=data.test_tags,
            spec=spec,
        )
        model.eval()
        with torch.no_grad():  # shapes and lazy parameters, in eval mode so no norm statistics move
            task.evaluate(*example)
        model.train()
        params = count_parameters(model)
        if settings["bn_recalibration"] and batch_norms(model):
            # First, so a checkpoint written at the same hook holds the recomputed statistics.
            trainer.callbacks.insert(0, make_callback(settings["bn_recalibration"]))
        if loaded is not None:
            check_compatible(*loaded, task)
            del loaded  # Lightning reads the file again; do not hold two copies

        exec_device = trainer.strategy.root_device
        resident = _reset_peak_memory(exec_device)

        for path in stale:  # overwrite=true starts over: no old epoch may pass for one of this run's
            path.unlink(missing_ok=True)
        if resume is None:
            log.info(f"training on {data.kind}: validation before the first step")
            trainer.validate(task, datamodule=data, verbose=False)
            task.start_metrics = {f"{k}_start": v for k, v in _scalars(trainer.callback_metrics, "val/").items()}
        else:
            log.info(f"resuming from {resume}")
        trainer.fit(task, datamodule=data, ckpt_path=resume, weights_only=True)
        fitted = _scalars(trainer.callback_metrics, "train/") | _scalars(trainer.callback_metrics, "val/")
        trainer.test(task, datamodule=data, verbose=False)
        tested = _scalars(trainer.callback_metrics, "test/")
        peak = peak_memory_mb(exec_device)
        consistency = data.splits.consistency if data.splits is not None else None
        if data.task == "classification" and consistency is not None:
            tested["test/consistency"] = _consistency(model, consistency(), settings["batch_size"], exec_device)

    primary = data.primary
    if primary:
        tested |= {key[: -len(primary) - 1]: value for key, value in tested.items() if key.endswith(f"_{primary}")}
    metrics: dict[str, float | int] = {**task.start_metrics, **fitted, **tested}
    metrics |= {
        "params": int(params),
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "train/samples_per_s": throughput.samples_per_s,
        "peak_memory_mb": peak,
        "peak_memory_delta_mb": max(peak - resident, 0.0),
    }
    grid = plain["grid"]
    splits = data.splits
    assert splits is not None
    # Curves, and a confusion matrix or predicted maps on the protocol's own test set; a
    # figure that fails is a logged warning, never a failed run (see training_figures).
    training_figures(
        out_dir,
        model=model,
        test_set=splits.tests.get(primary, next(iter(splits.tests.values()))),
        task=data.task,
        grid=grid["name"],
        size=grid["size"],
        class_names=splits.class_names,
        device=exec_device,
        batch_size=settings["batch_size"],
    )
    title = f"{data.kind} on {grid['name']} {grid['size']}, {metrics['epochs']} epoch(s)"
    log.info(metrics_block(metrics, title))
    return Fitted(metrics, task, data)
