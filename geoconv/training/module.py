"""The LightningModule: one geoconv model, its loss, its metrics and its optimiser.

:class:`GeoconvTask` wraps any model built by :func:`geoconv.nn.build.build_model` and knows
two tasks:

==================  ========================  ======================  =========================
task                model output              loss                    metrics (per stage)
==================  ========================  ======================  =========================
``classification``  ``(B, classes)`` logits   cross-entropy           ``loss``, ``acc``
``segmentation``    ``(B, 1, *spatial)``      BCE with logits         ``loss``, ``iou``,
                    logits                                            ``pixel_acc``
==================  ========================  ======================  =========================

Metrics are exact over the whole epoch (sums of counts, reduced across processes under
DDP), not means of per-batch values, and are logged as ``train/<name>``, ``val/<name>``
and ``test/<name>_<tag>`` where ``tag`` names the test set (``nr``: unrotated, ``r``:
rotated; no suffix for a single test set). IoU is the land (positive) class's
intersection over union with predictions thresholded at logit 0 and targets at 0.5;
pixel accuracy counts every pixel once (on spherical grids pixels are not equal-area
everywhere: equirect over-counts the poles).

The optimiser comes from an allow-list by name (:data:`OPTIMIZERS`), never from a
``_target_``. A non-finite training loss raises :class:`TrainingDivergedError`, naming the
step, before the backward pass, so no non-finite update is ever applied or checkpointed.

Examples
--------
>>> import torch
>>> from geoconv.nn.models import Classifier
>>> task = GeoconvTask(Classifier("conv", 1, classes=3, widths=[4]), task="classification")
>>> x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
>>> loss, counts = task.evaluate(x, y)
>>> bool(torch.isfinite(loss)), sorted(counts)
(True, ['correct', 'loss_sum', 'samples'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning
import torch
import torch.nn.functional as F
from torch import nn

from geoconv.errors import GeoconvError, ParameterError, ShapeError, unknown_name

__all__ = ["OPTIMIZERS", "SCHEDULERS", "TASKS", "GeoconvTask", "TrainingDivergedError"]

OPTIMIZERS = ("adam", "adamw", "sgd")
"""Optimiser names a config may choose (``trainer.optimizer``)."""

SCHEDULERS = ("none", "cosine")
"""Learning-rate schedules a config may choose (``trainer.scheduler``)."""

TASKS = ("classification", "segmentation")
"""What a :class:`GeoconvTask` can learn."""


class TrainingDivergedError(GeoconvError):
    """The training loss became NaN or infinite; the message names the step.

    Attributes
    ----------
    step : int
        The global step (optimiser steps taken before the failing batch).
    epoch : int
        The epoch, counted from 0.
    """

    def __init__(self, message: str, *, step: int, epoch: int) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch


def check_optimizer(name: object) -> str:
    """Return ``name`` if it is one of :data:`OPTIMIZERS`, else raise naming the choices."""
    if name not in OPTIMIZERS:
        raise unknown_name("trainer.optimizer", name, OPTIMIZERS)
    return str(name)


def check_scheduler(name: object) -> str:
    """Return ``name`` (``None`` reads as ``"none"``) if it is one of :data:`SCHEDULERS`."""
    name = "none" if name is None else name
    if name not in SCHEDULERS:
        raise unknown_name("trainer.scheduler", name, SCHEDULERS)
    return str(name)


class GeoconvTask(lightning.LightningModule):
    """A geoconv model with its loss, metrics and optimiser, for ``lightning.Trainer``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, *spatial)`` inputs in the grid's layout to logits: ``(B, classes)``
        for classification, ``(B, 1, *spatial)`` for segmentation (no final sigmoid).
    task : str
        ``"classification"`` or ``"segmentation"``.
    optimizer : str
        ``"adam"``, ``"adamw"`` or ``"sgd"``.
    lr : float
        Learning rate (> 0).
    weight_decay : float
        Weight decay (>= 0); decoupled for ``adamw``.
    momentum : float
        Momentum of ``sgd`` (ignored by the others).
    scheduler : str
        ``"none"`` or ``"cosine"`` (cosine annealing to 0 over ``max_epochs``, stepped per epoch).
    max_epochs : int, optional
        The cosine schedule's period; the trainer's ``max_epochs`` when not given.
    test_tags : sequence of str
        The name of each test dataloader, in order (``("nr", "r")``); ``""`` for one unnamed set.
    spec : dict, optional
        The model spec (:func:`geoconv.training.runs.model_spec`) written into every
        checkpoint, so :func:`geoconv.load_run` can rebuild the model. A checkpoint without
        one holds weights only (``GeoconvTask.load_from_checkpoint`` cannot rebuild the
        model: it is not a hyperparameter; use :func:`geoconv.load_run`).

    Notes
    -----
    The module keeps ``start_metrics`` (the validation metrics before the first update,
    filled in by the engine) in its checkpoints, so a resumed run reports the same ones.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        task: str = "classification",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: str = "none",
        max_epochs: int | None = None,
        test_tags: Sequence[str] = ("",),
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise unknown_name("task", task, TASKS)
        if not (isinstance(lr, int | float) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
            raise ParameterError(f"trainer.lr must be a finite number > 0, got {lr!r}")
        if not (isinstance(weight_decay, int | float) and weight_decay >= 0):
            raise ParameterError(f"trainer.weight_decay must be a number >= 0, got {weight_decay!r}")
        self.model = model
        self.task = task
        self.optimizer_name = check_optimizer(optimizer)
        self.scheduler_name = check_scheduler(scheduler)
        self.lr, self.weight_decay, self.momentum = float(lr), float(weight_decay), float(momentum)
        self.max_epochs = max_epochs
        self.test_tags = tuple(test_tags)
        self.start_metrics: dict[str, float] = {}
        self.spec = spec
        # Plain numbers only, so the checkpoint loads with torch.load(weights_only=True); the
        # spec goes into the checkpoint once, under "geoconv" (on_save_checkpoint).
        self.save_hyperparameters(ignore=["model", "spec"])
        self._tallies: dict[str, dict[str, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- loss and counts --------------------------------------------------------------------

    def evaluate(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean loss of a batch and the counts its metrics are made of.

        Returns
        -------
        loss : torch.Tensor
            Scalar mean loss (what is optimised).
        counts : dict of str to torch.Tensor
            Sums over the batch (``loss_sum``, ``samples``, and ``correct`` for
            classification or ``intersection``, ``union``, ``correct_pixels``, ``pixels`` for
            segmentation), detached, to be added up over an epoch.
        """
        logits = self(x)
        batch = x.shape[0]
        if self.task == "classification":
            if logits.ndim != 2 or logits.shape[0] != batch:
                raise ShapeError(
                    f"a classification task needs (B, classes) logits, the model gave {tuple(logits.shape)}; "
                    "use model=classifier"
                )
            loss = F.cross_entropy(logits.float(), target)
            correct = (logits.argmax(dim=1) == target).sum()
            counts = {"correct": correct}
        else:
            if logits.shape != target.shape:
                raise ShapeError(
                    f"a segmentation task needs logits shaped like the masks {tuple(target.shape)}, the model "
                    f"gave {tuple(logits.shape)}; use a segmentation model (e.g. model=unet) with one output channel"
                )
            loss = F.binary_cross_entropy_with_logits(logits.float(), target.float())
            predicted, truth = logits > 0, target > 0.5
            counts = {
                "intersection": (predicted & truth).sum(),
                "union": (predicted | truth).sum(),
                "correct_pixels": (predicted == truth).sum(),
                "pixels": torch.tensor(truth.numel(), device=truth.device),
            }
        counts["loss_sum"] = loss.detach() * batch
        counts["samples"] = torch.tensor(batch, device=x.device)
        # float64 keeps pixel counts exact far past float32's 2**24; Apple's MPS has no float64.
        dtype = torch.float32 if x.device.type == "mps" else torch.float64
        return loss, {k: v.detach().to(dtype) for k, v in counts.items()}

    def _add(self, key: str, counts: dict[str, torch.Tensor]) -> None:
        tally = self._tallies.setdefault(key, {})
        for name, value in counts.items():
            tally[name] = tally[name] + value if name in tally else value

    def _metrics(self, counts: dict[str, torch.Tensor]) -> dict[str, float]:
        """Epoch metrics from summed counts (summed over processes first under DDP)."""
        names = sorted(counts)
        stacked = torch.stack([counts[n] for n in names])
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            stacked = trainer.strategy.reduce(stacked, reduce_op="sum")
        total = dict(zip(names, stacked.tolist(), strict=True))
        samples = max(total["samples"], 1.0)
        metrics = {"loss": total["loss_sum"] / samples}
        if self.task == "classification":
            metrics["acc"] = total["correct"] / samples
        else:
            # No land predicted and none present is a perfect score, not 0/0.
            metrics["iou"] = total["intersection"] / total["union"] if total["union"] > 0 else 1.0
            metrics["pixel_acc"] = total["correct_pixels"] / max(total["pixels"], 1.0)
        return metrics

    def _log_epoch(self, stage: str) -> None:
        for key in sorted(k for k in self._tallies if k.split(":")[0] == stage):
            tag = key.split(":", 1)[1]
            suffix = f"_{tag}" if tag else ""
            for name, value in self._metrics(self._tallies[key]).items():
                # Already summed over processes: sync_dist averages equal values (and quiets Lightning's advice).
                self.log(f"{stage}/{name}{suffix}", value, prog_bar=stage != "test" and name != "loss", sync_dist=True)
            del self._tallies[key]

    # -- Lightning hooks --------------------------------------------------------------------

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, target = batch
        loss, counts = self.evaluate(x, target)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"training loss is {loss.item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); stopped before applying it. "
                "Lower trainer.lr, check the inputs for NaN/Inf, or try trainer.precision=32-true. "
                "The checkpoints of earlier epochs are kept.",
                step=self.global_step,
                epoch=self.current_epoch,
            )
        self._add("train:", counts)
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=x.shape[0])
        return loss

    def on_train_epoch_start(self) -> None:
        self._tallies.pop("train:", None)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._add("val:", self.evaluate(*batch)[1])

    def on_validation_epoch_start(self) -> None:
        self._tallies.pop("val:", None)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        tag = self.test_tags[dataloader_idx] if dataloader_idx < len(self.test_tags) else str(dataloader_idx)
        self._add(f"test:{tag}", self.evaluate(*batch)[1])

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer_name == "adam":
            optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        elif self.optimizer_name == "adamw":
            optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            optimizer = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        if self.scheduler_name == "none":
            return optimizer
        period = self.max_epochs or (self.trainer.max_epochs if self.trainer is not None else None) or 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(period), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["geoconv"] = {"start_metrics": dict(self.start_metrics)}
        if self.spec is not None:
            checkpoint["geoconv"]["model"] = self.spec

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.start_metrics = dict(checkpoint.get("geoconv", {}).get("start_metrics", {}))
