r"""Batch-norm statistics recomputed at the current weights ("precise BN"), after every training epoch.

A batch norm's running statistics are an exponential average over the last few hundred
steps, taken while the weights moved. When the weights still move fast, the averages lag
them, and eval mode (which uses them) computes another function than train mode: on a mostly
empty sphere the lag shifts every sample's features the same way, and a classifier can
collapse to one class in eval mode. Recomputing the statistics as an exact average over
training batches at the final weights of the epoch (Wu & Johnson 2021, "Rethinking 'Batch' in
BatchNorm", section 3) removes the lag, so the validation, the checkpoint and the test all see
statistics that belong to the weights they are used with.

:func:`recalibrate_batch_norm` does it for any model; :class:`BatchNormRecalibration` is the
Lightning callback the training engine installs when the model has batch norms
(``trainer.bn_recalibration``: the number of training batches, 0 to switch it off).

Examples
--------
>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
>>> batches = [torch.randn(8, 2) for _ in range(3)]
>>> recalibrate_batch_norm(model, batches)
3
>>> features = model[0](torch.cat(batches)).detach()
>>> torch.allclose(model[1].running_mean, features.mean(0), atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

import torch
from torch import nn

__all__ = ["BatchNormRecalibration", "batch_norms", "recalibrate_batch_norm"]


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module, batches: Iterable[Any], device: torch.device | str | None = None, limit: int | None = None
) -> int:
    r"""Replace every batch norm's running statistics by their exact average over ``batches``.

    Each layer's statistics are reset and accumulated with ``momentum=None`` (torch's
    cumulative average: the mean of the per-batch means and of the unbiased per-batch
    variances) in train mode, without gradients; momentum and mode are restored after. Layers
    other than batch norms are untouched, and so is every parameter.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its forward takes one batch of inputs.
    batches : iterable
        Input tensors, or ``(inputs, targets, ...)`` tuples whose first item is used.
    device : torch.device or str, optional
        Where the inputs go (the model's device); ``None`` leaves them where they are.
    limit : int, optional
        Use at most this many batches.

    Returns
    -------
    int
        The number of batches used (0 when the model has no batch norm: nothing is run).
    """
    norms = batch_norms(model)
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    try:
        for batch in islice(batches, limit):
            inputs = batch[0] if isinstance(batch, list | tuple) else batch
            model(inputs if device is None else inputs.to(device))
            used += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(training)
    return used


class BatchNormRecalibration:
    """A Lightning callback: :func:`recalibrate_batch_norm` once per training epoch, before its validation.

    Lightning validates at the end of a training epoch *before* ``on_train_epoch_end``, so the
    statistics are recomputed when that validation starts (and at the epoch's end when there is
    no validation); the checkpoint, written after, holds them, and so does the model that is
    tested. The batches are the first ``batches`` of the data module's
    ``recalibration_dataloader()`` (a fixed seeded order, no global random state), so a resumed
    run recomputes the same statistics. Under DDP each process uses its own batches. Built as a
    subclass of ``lightning.Callback`` by :func:`make_callback`.
    """

    def __init__(self, batches: int) -> None:
        self.batches = batches
        self._done_epoch: int | None = None

    def _recalibrate(self, trainer: Any, module: Any) -> None:
        if self._done_epoch == trainer.current_epoch:
            return
        loader = trainer.datamodule.recalibration_dataloader()
        with torch.inference_mode(False), torch.no_grad():
            recalibrate_batch_norm(module, loader, module.device, limit=self.batches)
        self._done_epoch = trainer.current_epoch

    def on_validation_epoch_start(self, trainer: Any, module: Any) -> None:
        if trainer.training or getattr(trainer.state, "fn", None) == "fit":
            self._recalibrate(trainer, module)

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        self._recalibrate(trainer, module)


def make_callback(batches: int) -> Any:
    """The :class:`BatchNormRecalibration` callback as a ``lightning.Callback`` (Lightning imported here)."""
    import lightning

    class _Callback(BatchNormRecalibration, lightning.Callback):
        pass

    return _Callback(batches)
