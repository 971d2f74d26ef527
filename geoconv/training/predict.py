"""A trained run's predictions for map files, written in the inputs' own formats.

:func:`predict_files` is what ``geoconv predict RUN_DIR INPUT... --out DIR`` runs. Each input
is read with :func:`geoconv.data.files.read_map` (HEALPix FITS, NetCDF lat-lon fields,
equirect PNG/JPEG, ``.npy`` in a grid's layout), brought to the run's grid and resolution,
and passed through the run's model (:func:`geoconv.training.runs.load_run`; the input
standardisation of ``data=folder`` is part of the model):

- a **classification** run writes ``predictions.csv``: one row per input with the
  predicted class (by name) and the probability of every class;
- a **segmentation** run writes one map per input, named like the input, in its format,
  grid and resolution (a FITS map in, a FITS map out, in the same ordering): the
  probability of the positive class, :math:`\\sigma(\\text{logit})`.

An input on another grid or at another resolution than the run was trained on is regridded
to the run's (:func:`geoconv.data.files.to_grid`, i.e. :func:`geoconv.grids.convert`) and the
segmentation output back to the input's; each such input gets a note (``PredictionResult.notes``,
printed by the command). Inputs that cannot be regridded (a flat grid of another size) are
refused, naming both sizes. Nothing is overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from geoconv._io import atomic_write
from geoconv.data.files import MapFile, read_map, to_grid, write_map
from geoconv.errors import GeoconvError, ShapeError
from geoconv.grids import get_grid
from geoconv.training.runs import LoadedRun

__all__ = ["PredictionResult", "predict_files"]


@dataclass(frozen=True)
class PredictionResult:
    """What :func:`predict_files` wrote.

    Attributes
    ----------
    written : list of Path
        The files written (``predictions.csv``, or one map per input).
    notes : list of str
        One line per input that was regridded (input grid and size → the run's).
    predictions : list of tuple
        ``(input path, predicted class name)`` for classification; empty for segmentation.
    """

    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    predictions: list[tuple[Path, str]] = field(default_factory=list)


def _size_text(grid: str, size: object) -> str:
    return f"{grid} {'x'.join(map(str, size)) if isinstance(size, tuple | list) else size}"


def _same_place(sample: MapFile, grid: str, size: object) -> bool:
    """Whether the map already lies on ``grid`` at ``size`` (same grid, same spatial shape)."""
    return sample.grid == grid and tuple(get_grid(grid).shape_at(1, 1, size)[2:]) == tuple(sample.values.shape[1:])


def _model_input(run: LoadedRun, sample: MapFile, notes: list[str]) -> torch.Tensor:
    if not _same_place(sample, run.grid, run.size):
        notes.append(
            f"{sample.path}: {_size_text(sample.grid, sample.size)} regridded to {_size_text(run.grid, run.size)}, "
            "the grid the run was trained on"
        )
    x = to_grid(sample, run.grid, run.size)
    channels = int(run.spec["in_channels"])
    if x.shape[0] != channels:
        raise ShapeError(
            f"{sample.path}: {x.shape[0]} channel(s), but the run at {run.checkpoint} was trained on {channels}"
        )
    return x


def predict_files(
    run: LoadedRun,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    variable: str | None = None,
    overwrite: bool = False,
    batch_size: int = 16,
) -> PredictionResult:
    """Predict every input file with a loaded run and write the results into ``out_dir``.

    Parameters
    ----------
    run : LoadedRun
        From :func:`geoconv.training.runs.load_run`.
    inputs : sequence of path
        Map files (``.fits``, ``.nc``, ``.png``/``.jpg``, ``.npy``); ``.npy`` arrays are read
        in the layout of the run's grid.
    out_dir : path
        Created if needed; must not be the folder an input lies in (for segmentation, the
        outputs carry the inputs' names).
    variable : str, optional
        The NetCDF variable; the run's ``data.variable`` when not given.
    overwrite : bool
        Replace files already in ``out_dir``; otherwise they are refused, naming the first.
    batch_size : int
        Inputs per forward pass.

    Returns
    -------
    PredictionResult

    Raises
    ------
    GeoconvError
        For an unreadable or unsupported input (naming it), one the run cannot take (other
        channels, a flat grid of another size), an output that exists (without
        ``overwrite``), or no inputs.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise GeoconvError("predict: no input files given")
    out = Path(out_dir)
    if variable is None:
        variable = (run.config.get("data") or {}).get("variable")
    targets = [out / "predictions.csv"] if run.task == "classification" else [out / p.name for p in paths]
    inputs_by_place = {path.resolve(): path for path in paths}
    for target in targets:
        if target.resolve() in inputs_by_place:
            path = inputs_by_place[target.resolve()]
            raise GeoconvError(f"predict: the output {target} would overwrite the input {path}; choose another --out")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise GeoconvError(f"predict: {existing[0]} exists (pass overwrite to replace it); nothing was written")
    names = [p.name for p in paths]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if run.task != "classification" and duplicated:
        raise GeoconvError(f"predict: two inputs are called {duplicated[0]!r}; their outputs would collide")

    result = PredictionResult()
    samples = [read_map(p, variable=variable, npy_grid=run.grid) for p in paths]  # every input checked first
    batches = [
        torch.stack([_model_input(run, s, result.notes) for s in samples[k : k + batch_size]])
        for k in range(0, len(samples), batch_size)
    ]
    with torch.no_grad():
        logits = torch.cat([run.model(x) for x in batches])
    out.mkdir(parents=True, exist_ok=True)
    if run.task == "classification":
        result.written.append(_write_table(out / "predictions.csv", samples, logits, run.class_names, result))
    else:
        probability = torch.sigmoid(logits)
        for sample, p in zip(samples, probability, strict=True):
            on_run_grid = replace(sample, values=p, grid=run.grid, size=run.size)
            back = p if _same_place(sample, run.grid, run.size) else to_grid(on_run_grid, sample.grid, sample.size)
            result.written.append(write_map(out / sample.path.name, back, like=sample))
    return result


def _write_table(
    path: Path, samples: list[MapFile], logits: torch.Tensor, names: list[str], result: PredictionResult
) -> Path:
    probabilities = torch.softmax(logits.double(), dim=1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "label", *(f"p_{name}" for name in names)])
    for sample, p in zip(samples, probabilities, strict=True):
        label = names[int(p.argmax())]
        result.predictions.append((sample.path, label))
        writer.writerow([str(sample.path), label, *(f"{float(v):.6g}" for v in p)])
    return atomic_write(path, buffer.getvalue())
