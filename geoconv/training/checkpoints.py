"""Checkpoints of a training run: which file to resume from, whether it is whole, and writing it safely.

``ckpt_path=last`` resumes from ``<run dir>/checkpoints/last.ckpt``; any other value is a
checkpoint file's path. A missing, unreadable or truncated file is a :class:`CheckpointError`
naming the path, never a silent restart from scratch. A checkpoint whose run has already
completed its ``trainer.max_epochs`` is a :class:`RunFinished`: there is nothing to resume, and
the runner leaves that run's results as they were (:func:`epochs_done` counts the epochs).
Checkpoints are read with ``torch.load(weights_only=True)`` and written atomically
(:func:`atomic_checkpoint_io`).

Importing this module does not import Lightning, so the runner can name :class:`RunFinished`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geoconv.errors import GeoconvError, ParameterError

__all__ = [
    "CheckpointError",
    "RunFinished",
    "atomic_checkpoint_io",
    "check_compatible",
    "epochs_done",
    "read_checkpoint",
    "resolve_checkpoint",
    "stale_checkpoints",
    "state_dict_mismatch",
]

# Keys every Lightning training checkpoint has; a file without them cannot resume a fit.
_CHECKPOINT_KEYS = ("state_dict", "loops", "optimizer_states", "epoch", "global_step")


class CheckpointError(GeoconvError):
    """A checkpoint to resume from is missing, unreadable or not a training checkpoint."""


class RunFinished(GeoconvError):
    """The checkpoint to resume from has already trained every epoch the config asks for.

    Attributes
    ----------
    path : Path
        The checkpoint.
    done : int
        Epochs it has trained.
    max_epochs : int
        ``trainer.max_epochs`` of the config that asked to resume.
    """

    def __init__(self, path: Path, done: int, max_epochs: int) -> None:
        self.path, self.done, self.max_epochs = Path(path), done, max_epochs
        super().__init__(
            f"nothing to resume: checkpoint {path} has already trained {done} epoch(s) and trainer.max_epochs="
            f"{max_epochs}; raise trainer.max_epochs to train on"
        )


def epochs_done(checkpoint: Mapping[str, Any]) -> int:
    """The number of epochs a Lightning checkpoint has trained to the end.

    A checkpoint written at the end of epoch ``e`` (counting from 0) says ``epoch = e`` and
    has processed ``e + 1`` epochs (Lightning marks the epoch *completed* only after the
    checkpoint is written), so that count is read from the fit loop's progress, with
    ``epoch + 1`` for checkpoints whose loop state lacks it.

    Examples
    --------
    >>> progress = {"current": {"processed": 3, "completed": 2}}
    >>> epochs_done({"epoch": 2, "loops": {"fit_loop": {"epoch_progress": progress}}})
    3
    >>> epochs_done({"epoch": 0, "loops": {}})
    1
    """
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return int(checkpoint["epoch"]) + 1


def resolve_checkpoint(value: object, out_dir: Path) -> Path | None:
    """The checkpoint file ``ckpt_path`` names, checked to load, or ``None`` to start afresh.

    Parameters
    ----------
    value : str or None
        ``None`` (start afresh), ``"last"`` (``out_dir/checkpoints/last.ckpt``) or a path.
    out_dir : Path
        The run directory.

    Raises
    ------
    CheckpointError
        When the file does not exist, cannot be read with ``torch.load(weights_only=True)``
        (truncated, corrupt, not a checkpoint) or lacks a training state.
    """
    loaded = read_checkpoint(value, out_dir)
    return None if loaded is None else loaded[0]


def read_checkpoint(value: object, out_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    if value is None or value in ("", "null", "none", "None"):
        return None
    if not isinstance(value, str | Path):
        raise ParameterError(f"ckpt_path must be null, 'last' or a file path, got {value!r}")
    path = Path(out_dir) / "checkpoints" / "last.ckpt" if value == "last" else Path(value).expanduser()
    if not path.is_file():
        hint = (
            f"no run has saved a checkpoint in {path.parent} (is hydra.run.dir the run's directory?)"
            if value == "last"
            else "check the path"
        )
        raise CheckpointError(f"ckpt_path={value}: no checkpoint file at {path}; {hint}. Nothing was trained.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"ckpt_path={value}: checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:300]}); it may be "
            "truncated or corrupt. Resume from another checkpoint (ckpt_path=<file>) or start over "
            "(no ckpt_path, overwrite=true). Nothing was trained."
        ) from err
    missing = [key for key in _CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"ckpt_path={value}: {path} is not a training checkpoint (no {', '.join(missing)}). Nothing was trained."
        )
    return path, checkpoint


def state_dict_mismatch(own: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``saved`` from loading into a module whose ``state_dict()`` is ``own``; ``""`` when it fits.

    Names the missing and unexpected keys and those of other shapes (a few of each); an
    uninitialised (lazy) parameter of ``own`` fits any shape.

    >>> state_dict_mismatch({"w": torch.zeros(2)}, {"w": torch.zeros(3), "b": torch.zeros(1)})
    'unexpected: b; other shapes: w'
    """
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = sorted(
        k
        for k in set(own) & set(saved)
        if not isinstance(own[k], torch.nn.parameter.UninitializedParameter) and own[k].shape != saved[k].shape
    )
    return "; ".join(
        f"{what}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
        for what, names in (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes))
        if names
    )


def check_compatible(path: Path, checkpoint: Mapping[str, Any], task: torch.nn.Module) -> None:
    """A checkpoint of another model (another op, grid or width) is named as such, not as a key error."""
    details = state_dict_mismatch(task.state_dict(), checkpoint["state_dict"])
    if details:
        raise CheckpointError(
            f"checkpoint {path} was written by a different model than this config builds ({details}); resume "
            "with the run's own config"
        )


def stale_checkpoints(directory: Path, overwrite: bool) -> list[Path]:
    """An earlier run's checkpoints, which a fresh start may replace only with ``overwrite=true``."""
    found = sorted(directory.glob("*.ckpt")) if directory.is_dir() else []
    if found and not overwrite:
        raise GeoconvError(
            f"{directory} already holds checkpoints of an earlier run ({found[0].name}, ...); pass ckpt_path=last "
            "to resume it, or overwrite=true to start over"
        )
    return found


def atomic_checkpoint_io() -> Any:
    """Lightning's torch checkpoint IO, writing each file with :func:`geoconv._io.atomic_write`.

    Lightning's own writer goes through fsspec's local transaction, whose temporary file
    lies in the system's temporary directory; where that is another file system (a tmpfs
    ``/tmp``), the final move is a copy, and a kill during it leaves a truncated
    ``last.ckpt``. Here the temporary file lies beside the checkpoint and the rename is
    atomic: a run killed at any point leaves the previous checkpoint or the new one.
    """
    from lightning.fabric.plugins import TorchCheckpointIO

    from geoconv._io import atomic_write

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own way
                super().save_checkpoint(checkpoint, path, storage_options)
                return
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle: torch.save(checkpoint, handle))

    return AtomicCheckpointIO()
