"""Trained runs back as models: the model spec a checkpoint carries, and :func:`load_run`.

Every checkpoint a training run writes (``<run dir>/checkpoints/*.ckpt``) holds, beside the
weights, a *model spec* under ``checkpoint["geoconv"]["model"]``: the run's resolved config
and what the data told the engine (input channels, outputs, task, class names, the input
standardisation of ``data=folder``). That is everything needed to rebuild the model, so

>>> model, config = geoconv.load_run("outputs/2026-12-07/10-00-00")  # doctest: +SKIP

gives the trained model in eval mode and the config it was trained with, with no Hydra,
no data and no guessing of ``build_model``'s arguments. The spec holds only plain Python
values, so the file still loads with ``torch.load(weights_only=True)``.

==================================  ==========================================================
``checkpoint["geoconv"]["model"]``  what it holds
==================================  ==========================================================
``format``                          :data:`SPEC_FORMAT` when written (a newer one is refused)
``geoconv_version``                 the version that trained it
``config``                          the validated config (``op``, ``grid``, ``model``, ``data``, ...)
``task``                            ``"classification"`` or ``"segmentation"``
``in_channels``, ``outputs``        ``build_model``'s channels and classes (1 for segmentation)
``input_shape``                     ``[C, *spatial]`` of one input
``class_names``                     one name per class (``data=folder``), else ``[]``
``standardize``                     ``{"mean": [...], "std": [...]}`` per channel, or ``None``
==================================  ==========================================================

Public names: :func:`load_run`, :class:`LoadedRun`, :func:`model_spec`, :func:`build_from_spec`,
:data:`SPEC_FORMAT`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geoconv.errors import GeoconvError
from geoconv.nn.build import build_model
from geoconv.nn.norm import Standardize
from geoconv.training.checkpoints import epochs_done, state_dict_mismatch

__all__ = ["SPEC_FORMAT", "LoadedRun", "RunLoadError", "build_from_spec", "load_run", "model_spec"]

SPEC_FORMAT = 1
"""The version of the model spec this code writes and the newest it reads."""

_SPEC_KEYS = ("format", "config", "task", "in_channels", "outputs", "input_shape")


class RunLoadError(GeoconvError):
    """A run directory or checkpoint cannot give back its model; the message says what is missing."""


def model_spec(
    config: Mapping[str, Any],
    *,
    task: str,
    input_shape: Sequence[int],
    outputs: int,
    class_names: Sequence[str] = (),
    standardize: tuple[Sequence[float], Sequence[float]] | None = None,
) -> dict[str, Any]:
    """The spec of a model trained with ``config``: what :func:`build_from_spec` rebuilds it from.

    Parameters
    ----------
    config : mapping
        The validated config (plain values only).
    task : str
        ``"classification"`` or ``"segmentation"``.
    input_shape : sequence of int
        ``(C, *spatial)`` of one input, in the grid's layout.
    outputs : int
        Classes of a classifier, output channels of a segmentation model.
    class_names : sequence of str
        One name per class, when the data set has them.
    standardize : (means, stds), optional
        Per-channel input statistics applied before the model (:class:`~geoconv.nn.norm.Standardize`).

    Examples
    --------
    >>> config = {"op": {"name": "conv", "params": {}}, "grid": {"name": "planar", "size": 8},
    ...           "model": {"kind": "classifier", "widths": [4]}}
    >>> spec = model_spec(config, task="classification", input_shape=(1, 8, 8), outputs=3)
    >>> spec["in_channels"], spec["outputs"], spec["format"]
    (1, 3, 1)
    """
    from geoconv import __version__

    return {
        "format": SPEC_FORMAT,
        "geoconv_version": __version__,
        "config": _plain(config),
        "task": str(task),
        "in_channels": int(input_shape[0]),
        "outputs": int(outputs),
        "input_shape": [int(n) for n in input_shape],
        "class_names": [str(name) for name in class_names],
        "standardize": None
        if standardize is None
        else {"mean": [float(m) for m in standardize[0]], "std": [float(s) for s in standardize[1]]},
    }


def _plain(value: Any) -> Any:
    """Lists, dicts, str, numbers, bools and None only: what ``torch.load(weights_only=True)`` reads back."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


def build_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """The untrained model a spec describes, with its lazy parameters materialised.

    The training engine builds its model with this function too, so the model a run
    trains and the one :func:`load_run` rebuilds have the same modules and ``state_dict`` keys.

    Examples
    --------
    >>> config = {"op": {"name": "conv", "params": {}}, "grid": {"name": "planar", "size": 8},
    ...           "model": {"kind": "classifier", "widths": [4]}}
    >>> spec = model_spec(config, task="classification", input_shape=(1, 8, 8), outputs=3,
    ...                   standardize=([0.5], [2.0]))
    >>> model = build_from_spec(spec)
    >>> type(model[0]).__name__, tuple(model(torch.zeros(2, 1, 8, 8)).shape)
    ('Standardize', (2, 3))
    """
    model = build_model(spec["config"], spec["in_channels"], spec["outputs"])
    stats = spec.get("standardize")
    if stats is not None:
        model = nn.Sequential(Standardize(stats["mean"], stats["std"]), model)
    was_training = model.training
    model.eval()
    with torch.no_grad():  # lazy parameters take their shapes; eval mode moves no norm statistics
        model(torch.zeros(2, *spec["input_shape"]))
    return model.train(was_training)


@dataclass(frozen=True)
class LoadedRun:
    """A trained run: its model in eval mode, its resolved config, and where it came from.

    Unpacks as ``model, config = load_run(run_dir)``.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model, in eval mode, on the CPU.
    config : dict
        The run's validated config (``op``, ``grid``, ``model``, ``data``, ``trainer``, ...).
    spec : dict
        The model spec (module docstring): task, channels, input shape, class names.
    checkpoint : Path
        The checkpoint file the weights came from.
    epochs : int
        Epochs the checkpoint had trained.
    """

    model: nn.Module
    config: dict[str, Any]
    spec: dict[str, Any] = field(repr=False)
    checkpoint: Path
    epochs: int

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.config))

    @property
    def task(self) -> str:
        """``"classification"`` or ``"segmentation"``."""
        return str(self.spec["task"])

    @property
    def grid(self) -> str:
        """The grid the model was trained on."""
        return str(self.config["grid"]["name"])

    @property
    def size(self) -> int:
        """The grid resolution the model was trained on."""
        return int(self.config["grid"]["size"])

    @property
    def class_names(self) -> list[str]:
        """One name per class: the data set's own, else ``"0"``, ``"1"``, ..."""
        names = list(self.spec.get("class_names") or [])
        return names or [str(k) for k in range(int(self.spec["outputs"]))]


def _checkpoint_file(path: Path) -> Path:
    """The checkpoint a path names: a ``.ckpt`` file, or a run directory's ``checkpoints/last.ckpt``."""
    if path.is_file():
        return path
    if not path.exists():
        raise RunLoadError(f"load_run: {path} does not exist; give a training run's directory or a .ckpt file")
    last = path / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    if (path / "multirun.yaml").is_file() or any((path / str(k) / "metrics.json").is_file() for k in range(3)):
        raise RunLoadError(
            f"load_run: {path} is a multirun (sweep) directory; give one of its jobs' directories, e.g. {path / '0'}"
        )
    found = sorted(path.glob("checkpoints/*.ckpt"))
    if found:
        return found[-1]
    metrics = path / "metrics.json"
    job = ""
    if metrics.is_file():
        import json

        try:
            job = json.loads(metrics.read_text(encoding="utf-8"))["config"]["job"]["name"]
        except (ValueError, KeyError, TypeError):
            job = "?"
    what = f"a run of job {job!r}, which trains nothing" if job and job != "train" else "no checkpoints/last.ckpt"
    raise RunLoadError(
        f"load_run: {path} is not a training run ({what}); a run of job=train (e.g. experiment=classify) "
        "writes checkpoints/last.ckpt"
    )


def load_run(path: str | Path) -> LoadedRun:
    """Rebuild a trained model from its run directory (or one of its checkpoint files).

    Parameters
    ----------
    path : str or Path
        A training run's directory (its ``checkpoints/last.ckpt`` is read) or a ``.ckpt`` file.

    Returns
    -------
    LoadedRun
        ``model`` (eval mode, CPU) and ``config``; also ``spec``, ``checkpoint``, ``epochs``.
        ``model, config = load_run(path)`` unpacks the two.

    Raises
    ------
    RunLoadError
        For a path that is not a training run (a probe job's directory, a sweep directory,
        nothing there), an unreadable checkpoint, a checkpoint without a model spec
        (written before geoconv stored one), a spec of a newer format, a model this
        installation cannot build (an op, grid or model kind that is not registered: a
        plugin not installed), or weights that do not fit the rebuilt model. Each message
        names the file and what is missing.

    Examples
    --------
    >>> load_run("/nonexistent/run")
    Traceback (most recent call last):
    ...
    geoconv.training.runs.RunLoadError: load_run: /nonexistent/run does not exist; give a training run's ...
    """
    file = _checkpoint_file(Path(path).expanduser())
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RunLoadError(
            f"load_run: checkpoint {file} cannot be read ({type(err).__name__}: {str(err)[:200]}); it may be "
            "truncated, or not a geoconv checkpoint"
        ) from err
    spec = checkpoint.get("geoconv", {}).get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(spec, dict):
        raise RunLoadError(
            f"load_run: checkpoint {file} holds no model spec (checkpoint['geoconv']['model']): it was written "
            "before geoconv stored one, or by another program; train the run again to get a loadable checkpoint"
        )
    missing = [key for key in _SPEC_KEYS if key not in spec]
    if missing:
        raise RunLoadError(f"load_run: the model spec in {file} lacks {', '.join(missing)}")
    if not isinstance(spec["format"], int) or spec["format"] > SPEC_FORMAT:
        raise RunLoadError(
            f"load_run: checkpoint {file} has model spec format {spec['format']!r}, written by geoconv "
            f"{spec.get('geoconv_version', '?')}; this geoconv reads format <= {SPEC_FORMAT}: upgrade geoconv"
        )
    try:
        model = build_from_spec(spec)
    except GeoconvError as err:
        config = spec["config"]
        raise RunLoadError(
            f"load_run: this installation cannot rebuild the model of {file} (op={config['op']['name']!r}, "
            f"grid={config['grid']['name']!r}, model={config['model'].get('kind')!r}; trained with geoconv "
            f"{spec.get('geoconv_version', '?')}): {err}. Install the plugin that provides it, or the geoconv "
            "version that trained it"
        ) from err
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    details = state_dict_mismatch(model.state_dict(), weights)
    if details:
        raise RunLoadError(
            f"load_run: the weights in {file} do not fit the model its spec rebuilds ({details}); the code that "
            f"builds {spec['config']['model'].get('kind')!r} models has changed since geoconv "
            f"{spec.get('geoconv_version', '?')} trained it"
        )
    model.load_state_dict(weights)
    return LoadedRun(model.eval(), dict(spec["config"]), dict(spec), file, epochs_done(checkpoint))
