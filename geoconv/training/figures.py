"""Figures of a finished training run: learning curves, a confusion matrix, predicted maps.

:func:`training_figures` is what the training engine calls after testing; it writes into the
run directory and returns the paths written:

=========================  ==================  ==================================================
file                       task                what it shows
=========================  ==================  ==================================================
``training_curves.png``    both                per epoch, training and validation loss (left) and
                                               the task's metrics (right: ``acc``; ``iou`` and
                                               ``pixel_acc``), from Lightning's CSV logs, with the
                                               test values as markers after the last epoch
``confusion_matrix.png``   classification      true class (rows) against predicted (columns) over
                                               the test set: counts in the cells, colour the row
                                               fraction, accuracy in the title
``predictions.png``        segmentation        up to ``max_maps`` test samples, one a row: the
                                               input, the true mask and the predicted
                                               probability, drawn as whole-sphere maps
                                               (:mod:`geoconv.viz`) or plain images on the plane
=========================  ==================  ==================================================

The curves come from ``out_dir/logs/version_<k>/metrics.csv`` (one version per attempt; a
resumed run adds one), read in order of ``k`` (:func:`read_curves`). A figure is something
to look at, not a result: **a figure that fails is logged as a warning and skipped**, and
:func:`training_figures` never raises because of one (only for a ``task`` it does not know,
which is a bug in the call). Under DDP only the process of rank 0 draws.

Examples
--------
>>> import tempfile
>>> from geoconv.data.base import SignalDataset
>>> data = SignalDataset(torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2]), "planar", 4, 3, "toy")
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
>>> with tempfile.TemporaryDirectory() as folder:
...     paths = training_figures(Path(folder), model=model, test_set=data, task="classification", grid="planar", size=4)
...     [p.name for p in paths]
['confusion_matrix.png']
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from geoconv.errors import ParameterError
from geoconv.grids import get_grid
from geoconv.grids.sphere import SphericalGrid
from geoconv.viz import add_colorbar, choose_view, draw_sphere_map, figure

__all__ = [
    "TASK_METRICS",
    "EpochCurves",
    "confusion_matrix",
    "draw_confusion_matrix",
    "draw_curves",
    "draw_predictions",
    "read_curves",
    "training_figures",
]

log = logging.getLogger(__name__)

TASK_METRICS: dict[str, tuple[str, ...]] = {"classification": ("acc",), "segmentation": ("iou", "pixel_acc")}
"""The metrics of each task drawn beside the loss."""


# -- the learning curves ---------------------------------------------------------------------------


@dataclass
class EpochCurves:
    """Per-epoch metrics of one run, gathered over every attempt's CSV log.

    Attributes
    ----------
    series : dict of str to dict of int to float
        ``"train/loss"``, ``"val/acc"``, ... to ``{epochs trained: value}``: the value logged at
        the end of epoch ``e`` (counted from 0) is at ``e + 1``; the validation before the
        first step (global step 0) is at 0. A later attempt's value replaces an earlier one's.
    test : dict of str to float
        ``"test/acc_nr"``, ... to the last value logged.
    resumed_at : list of int
        Epochs trained when each later attempt (``version_1``, ...) started.
    """

    series: dict[str, dict[int, float]] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    resumed_at: list[int] = field(default_factory=list)

    def curve(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(epochs, values)`` of one series, sorted by epoch; empty arrays when it was never logged."""
        points = sorted(self.series.get(name, {}).items())
        return np.array([e for e, _ in points], dtype=np.int64), np.array([v for _, v in points], dtype=np.float64)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def read_curves(out_dir: str | Path) -> EpochCurves | None:
    """The per-epoch metrics in ``out_dir/logs/version_*/metrics.csv``; ``None`` when there are none.

    Versions are read in the order of their number (``version_10`` after ``version_9``).
    Per-step columns (``*_step``) are left out; ``*_epoch`` columns count as their base name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     logs = Path(folder) / "logs" / "version_0"
    ...     logs.mkdir(parents=True)
    ...     _ = (logs / "metrics.csv").write_text(
    ...         "epoch,step,train/loss,val/loss,test/acc\\n0,0,,0.9,\\n0,4,,0.7,\\n0,4,0.8,,\\n1,9,,,0.5\\n"
    ...     )
    ...     curves = read_curves(folder)
    >>> curves.curve("val/loss"), curves.curve("train/loss")[1], curves.test
    ((array([0, 1]), array([0.9, 0.7])), array([0.8]), {'test/acc': 0.5})
    """
    folder = Path(out_dir) / "logs"
    versions = sorted(
        (int(match.group(1)), path)
        for path in (folder.glob("version_*/metrics.csv") if folder.is_dir() else ())
        if (match := re.fullmatch(r"version_(\d+)", path.parent.name))
    )
    if not versions:
        return None
    curves = EpochCurves()
    for order, (_, path) in enumerate(versions):
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        epochs = [int(e) for row in rows if (e := _number(row.get("epoch"))) is not None]
        if order > 0 and epochs:
            curves.resumed_at.append(min(epochs))
        for row in rows:
            epoch, step = _number(row.get("epoch")), _number(row.get("step"))
            for name, text in row.items():
                value = _number(text)
                if value is None or name in ("epoch", "step") or name is None or name.endswith("_step"):
                    continue
                name = name.removesuffix("_epoch")
                if name.startswith("test/"):
                    curves.test[name] = value
                elif epoch is not None:
                    before = name.startswith("val/") and step == 0  # no update applied yet
                    curves.series.setdefault(name, {})[0 if before else int(epoch) + 1] = value
    return curves


def draw_curves(path: str | Path, curves: EpochCurves, task: str, title: str = "") -> Path:
    """Two panels, loss and the task's metrics (:data:`TASK_METRICS`), training solid and validation dashed."""
    from matplotlib.ticker import MaxNLocator

    metrics = TASK_METRICS[task]

    def draw(canvas: Any) -> None:
        panels = canvas.subplots(1, 2)
        last = max((max(s) for s in curves.series.values() if s), default=0)
        for axes, names, ylabel in ((panels[0], ("loss",), "loss"), (panels[1], metrics, ", ".join(metrics))):
            for index, name in enumerate(names):
                colour = f"C{index}"
                for stage, style in (("train", "o-"), ("val", "s--")):
                    epochs, values = curves.curve(f"{stage}/{name}")
                    if epochs.size:
                        axes.plot(epochs, values, style, color=colour, ms=3.5, label=f"{stage} {name}")
                tests = sorted(k for k in curves.test if re.fullmatch(rf"test/{name}(_\w+)?", k))
                for marker, key in zip("*Dvx^", tests, strict=False):
                    axes.plot(last + 0.15, curves.test[key], marker, color=colour, ms=8, ls="none", label=key)
            for start in curves.resumed_at:
                axes.axvline(start, color="0.6", ls=":", lw=1)
            axes.set_xlabel("epochs trained (0: before training)")
            axes.set_ylabel(ylabel)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.grid(alpha=0.3)
            if axes.lines:
                axes.legend(fontsize=8)
        panels[0].set_title("loss")
        panels[1].set_title(", ".join(metrics) + (" (dotted: resumed)" if curves.resumed_at else ""))
        if title:
            canvas.suptitle(title)

    return figure(path, draw, size=(10.0, 4.0))


# -- evaluating the model --------------------------------------------------------------------------


def _batches(dataset: Dataset, batch_size: int) -> Any:
    """``(inputs, targets)`` batches: slices of a :class:`~geoconv.data.base.SignalDataset`, else a DataLoader."""
    inputs, targets = getattr(dataset, "inputs", None), getattr(dataset, "targets", None)
    if isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor):
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size], targets[start : start + batch_size]
    else:
        yield from DataLoader(dataset, batch_size=batch_size, shuffle=False)


def _evaluating(model: torch.nn.Module, device: torch.device | str, run: Callable[[torch.nn.Module], Any]) -> Any:
    """``run(model)`` in eval mode on ``device`` without gradients; the model's mode and device are restored."""
    training = model.training
    parameter = next(model.parameters(), None)
    home = parameter.device if parameter is not None else None
    try:
        model.to(device).eval()
        with torch.no_grad():
            return run(model)
    finally:
        model.train(training)
        if home is not None:
            model.to(home)


def confusion_matrix(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    classes: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
) -> np.ndarray:
    r"""Counts of (true class, predicted class) over ``dataset``: ``(K, K)`` int64, rows true.

    The prediction is the argmax of the model's ``(B, K)`` logits, in eval mode and without
    gradients, ``batch_size`` samples at a time; :math:`M_{ij} = \#\{n : y_n = i,\ \hat y_n = j\}`.
    ``K`` is ``classes``, or the larger of the logits' width and the largest label + 1.

    Examples
    --------
    >>> from geoconv.data.base import SignalDataset
    >>> inputs = torch.eye(3)[[0, 1, 2, 2]].view(4, 1, 1, 3)  # one-hot "logits" of classes 0, 1, 2, 2
    >>> data = SignalDataset(inputs, torch.tensor([0, 1, 2, 1]), "planar", 1, 3, "t")
    >>> confusion_matrix(torch.nn.Flatten(), data, batch_size=3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """

    def run(net: torch.nn.Module) -> np.ndarray:
        pairs = []
        width = 0
        for inputs, targets in _batches(dataset, batch_size):
            logits = net(inputs.to(device))
            width = max(width, int(logits.shape[-1]))
            pairs.append(torch.stack([targets.reshape(-1).long().cpu(), logits.argmax(-1).reshape(-1).cpu()]))
        both = torch.cat(pairs, 1).numpy() if pairs else np.zeros((2, 0), dtype=np.int64)
        k = classes or max(width, int(both[0].max(initial=-1)) + 1)
        if both.size and (both.min() < 0 or both.max() >= k):
            raise ParameterError(
                f"labels and predictions must lie in [0, {k}) (classes={k}), got [{both.min()}, {both.max()}]"
            )
        return np.bincount(both[0] * k + both[1], minlength=k * k).reshape(k, k).astype(np.int64)

    return _evaluating(model, device, run)


def draw_confusion_matrix(
    path: str | Path, matrix: np.ndarray, class_names: Sequence[str] = (), title: str = ""
) -> Path:
    """The matrix of :func:`confusion_matrix`: colour the row fraction, the count written in each cell."""
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    names = [str(n) for n in class_names] if len(class_names) == k else [str(i) for i in range(k)]
    totals = matrix.sum(1, keepdims=True)
    fractions = matrix / np.maximum(totals, 1)
    accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)

    def draw(canvas: Any) -> None:
        axes = canvas.subplots()
        image = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
        if k <= 30:
            for i, j in np.ndindex(k, k):
                colour = "white" if fractions[i, j] > 0.6 else "black"
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=max(5, 10 - k // 4), color=colour)
        axes.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 3 else 0)
        axes.set_yticks(range(k), names)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        add_colorbar(canvas, image, axes, "fraction of the true class")
        axes.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.3f} ({int(matrix.sum())} samples)")

    side = min(12.0, 3.5 + 0.45 * k)
    return figure(path, draw, size=(side + 1.2, side))


def _segment(model: torch.nn.Module, inputs: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    return _evaluating(model, device, lambda net: torch.sigmoid(net(inputs.to(device)).float()).cpu())


def draw_predictions(
    path: str | Path,
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    grid: str,
    size: object,
    device: torch.device | str = "cpu",
    max_maps: int = 4,
    title: str = "",
) -> Path:
    """Input, true mask and predicted probability (sigmoid of the logits) of up to ``max_maps`` samples.

    Samples are spread evenly over ``dataset``. On a spherical grid each row is drawn in one
    view chosen from its true mask (:func:`geoconv.viz.choose_view`: Mollweide for a global
    mask, its seam where the mask is quietest); masks and probabilities share the scale
    [0, 1], single-channel inputs share theirs; 3-channel inputs are drawn as RGB.
    """
    count = len(dataset)
    if count == 0:
        raise ParameterError("the test set is empty: no predictions to draw")
    indices = sorted({int(i) for i in np.linspace(0, count - 1, min(max(int(max_maps), 1), count)).round()})
    inputs = torch.stack([dataset[i][0] for i in indices]).float()
    spatial = tuple(inputs.shape[2:])  # masks (N, 1, *spatial) and logits alike
    masks = torch.stack([dataset[i][1] for i in indices]).float().reshape(-1, *spatial).numpy()
    probability = _segment(model, inputs, device).reshape(-1, *spatial).numpy()
    owner = get_grid(grid)
    rgb = inputs.shape[1] == 3
    shown = inputs.numpy() if rgb else inputs[:, 0].numpy()
    low, high = (0.0, 1.0) if rgb else (float(np.nanmin(shown)), float(np.nanmax(shown)))
    sphere = isinstance(owner, SphericalGrid)

    def panel(axes: Any, values: np.ndarray, view: Any, cmap: str, vmin: float, vmax: float) -> Any:
        if sphere:
            return draw_sphere_map(axes, values, owner, size, view=view, cmap=cmap, vmin=vmin, vmax=vmax, label=False)
        image = np.moveaxis(values, 0, -1) if rgb else values.reshape(-1, values.shape[-1])  # faces stacked
        axes.set_axis_off()
        return axes.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")

    def draw(canvas: Any) -> None:
        grid_axes = canvas.subplots(len(indices), 3, squeeze=False)
        images = {}
        for row, index in enumerate(indices):
            view = choose_view(masks[row], owner, size) if sphere else None
            truth, guess = masks[row] > 0.5, probability[row] > 0.5
            iou = (truth & guess).sum() / max((truth | guess).sum(), 1) if (truth | guess).any() else 1.0
            images["input"] = panel(grid_axes[row, 0], shown[row], view, "gray", low, high)
            images["mask"] = panel(grid_axes[row, 1], masks[row], view, "viridis", 0.0, 1.0)
            panel(grid_axes[row, 2], probability[row], view, "viridis", 0.0, 1.0)
            where = f", {view.describe()}" if view is not None else ""
            grid_axes[row, 0].set_title(f"sample {index}: input{where}", fontsize=8)
            grid_axes[row, 1].set_title("true mask", fontsize=8)
            grid_axes[row, 2].set_title(f"predicted probability (IoU {iou:.2f} at 0.5)", fontsize=8)
        if not rgb:
            add_colorbar(canvas, images["input"], grid_axes[:, 0].tolist(), "input", shrink=0.6, location="left")
        add_colorbar(canvas, images["mask"], grid_axes[:, 1:].ravel().tolist(), "mask / probability", shrink=0.6)
        if title:
            canvas.suptitle(title)

    if sphere:  # width / height of one panel
        aspect = 2.0 if choose_view(masks[0], owner, size).projection in ("mollweide", "latlon") else 1.0
    else:
        aspect = spatial[-1] / (math.prod(spatial) / spatial[-1])
    return figure(path, draw, size=(12.0, 0.9 + len(indices) * (12.0 / 3.3) / aspect))


# -- the entry point -------------------------------------------------------------------------------


def training_figures(
    out_dir: Path,
    *,
    model: torch.nn.Module,
    test_set: Dataset,
    task: str,
    grid: str,
    size: int,
    class_names: Sequence[str] = (),
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    max_maps: int = 4,
) -> list[Path]:
    """Write the figures of a trained run into ``out_dir`` (see the module table); return their paths.

    Parameters
    ----------
    out_dir : pathlib.Path
        The run directory; Lightning's CSV logs are read from ``out_dir/logs/version_*/``.
    model : torch.nn.Module
        The trained model (its train/eval mode and device are restored afterwards).
    test_set : torch.utils.data.Dataset
        A :class:`~geoconv.data.base.SignalDataset` (any data set of ``(input, target)``
        pairs works): labels ``(N,)`` for classification, masks ``(N, 1, *spatial)`` for
        segmentation.
    task : str
        ``"classification"`` or ``"segmentation"``.
    grid, size
        The grid and resolution of the test set's signals.
    class_names : sequence of str
        Tick labels of the confusion matrix (class indices when not given or of the wrong length).
    device : torch.device or str
        Where the model runs over the test set.
    batch_size : int
        Samples per forward pass.
    max_maps : int
        Segmentation: how many samples ``predictions.png`` shows.

    Returns
    -------
    list of pathlib.Path
        The figures written, in the order of the module table. A figure that could not be
        drawn (no CSV logs, an error while drawing) is missing, with a log message saying why.

    Raises
    ------
    ParameterError
        Only for an unknown ``task``.
    """
    if task not in TASK_METRICS:
        raise ParameterError(f"task must be one of {tuple(TASK_METRICS)}, got {task!r}")
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0:
        return []
    out_dir = Path(out_dir)
    name = getattr(test_set, "name", "")
    label = f"{name} on {grid} {size}" if name else f"{grid} {size}"
    written: list[Path] = []

    def attempt(what: str, make: Callable[[], Path | None]) -> None:
        try:
            path = make()
        except Exception as err:  # a figure is never worth a failed run
            log.warning(f"{what} not drawn: {type(err).__name__}: {err}")
            log.debug(f"{what} not drawn", exc_info=True)
            return
        if path is not None:
            written.append(path)

    def curves() -> Path | None:
        found = read_curves(out_dir)
        if found is None or not found.series:
            log.info(f"training_curves.png skipped: no metrics in {out_dir / 'logs'}/version_*/metrics.csv")
            return None
        return draw_curves(out_dir / "training_curves.png", found, task, label)

    attempt("training_curves.png", curves)
    if task == "classification":
        attempt(
            "confusion_matrix.png",
            lambda: draw_confusion_matrix(
                out_dir / "confusion_matrix.png",
                confusion_matrix(model, test_set, device=device, batch_size=batch_size),
                class_names,
                label,
            ),
        )
    else:
        attempt(
            "predictions.png",
            lambda: draw_predictions(
                out_dir / "predictions.png",
                model,
                test_set,
                grid=grid,
                size=size,
                device=device,
                max_maps=max_maps,
                title=label,
            ),
        )
    return written
