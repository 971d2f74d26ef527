"""The ``train`` job: train the config's model on its data set with Lightning, then test it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from geoconv.experiment.jobs.registry import register_job

__all__ = ["train_job"]


@register_job("train")
def train_job(
    plain: dict[str, Any], device: torch.device, generator: torch.Generator, out_dir: Path
) -> dict[str, float]:
    """Train, validate and test; see :func:`geoconv.training.train`."""
    # Imported here: Lightning is slow to import and only this job needs it.
    from geoconv.training import train

    return train(plain, device, generator, out_dir)
