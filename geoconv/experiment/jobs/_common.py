"""What the jobs share: the config's model and input, its title, timing and stride helpers."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from geoconv.data.synthetic import make_input
from geoconv.errors import ParameterError
from geoconv.grids import get_grid
from geoconv.nn.build import build_model
from geoconv.ops.registry import get_op

__all__ = [
    "Plain",
    "forward_ms",
    "model_of",
    "output_stride",
    "padding_mode_of",
    "probe_input",
    "require_planar",
    "title",
]

log = logging.getLogger("geoconv.experiment")

Plain = dict[str, Any]
"""A validated config as a plain dict."""


def model_of(plain: Plain, device: torch.device, seed: int | None = None) -> torch.nn.Module:
    """The config's model on ``device``, seeded with ``seed`` when given."""
    if seed is not None:
        torch.manual_seed(seed)
    return build_model(plain, plain["data"]["channels"]).to(device)


def probe_input(plain: Plain, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """The probe input the config's ``data`` group describes (:func:`geoconv.data.synthetic.make_input`)."""
    return make_input(plain, device, generator)


def require_planar(plain: Plain, planar: bool, job: str) -> None:
    """Raise unless the config's grid is flat (``planar=True``) or spherical (``planar=False``)."""
    grid = plain["grid"]["name"]
    if get_grid(grid).spherical == planar:
        other = "the 'rotation' job (experiment=rotation_equivariance)" if planar else "the 'shift' job"
        raise ParameterError(
            f"the {job!r} job measures {'flat' if planar else 'spherical'} grids, got grid={grid!r}; use {other}"
        )


def output_stride(x: torch.Tensor, y: torch.Tensor) -> int:
    """The total stride of a model that maps ``x`` to ``y`` (along the last axis)."""
    return max(1, round(x.shape[-1] / y.shape[-1]))


def forward_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Mean forward time in milliseconds, after two warm-up passes (lazy modules, table caches)."""
    with torch.no_grad():
        model(x)
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
    return 1000 * (time.perf_counter() - start) / repeats


def padding_mode_of(plain: Plain) -> str | None:
    """The padding mode the op really uses (``None`` for ops without padding)."""
    spec = get_op(plain["op"]["name"])
    if all(p.name != "padding_mode" for p in spec.parameters()):
        return None
    params = spec.with_padding_mode(plain["op"].get("params"), plain.get("padding_mode"))
    return params.get("padding_mode") or get_grid(plain["grid"]["name"]).default_padding_mode


def title(plain: Plain) -> str:
    """``op on grid, mode padding``: the figures' titles."""
    mode = padding_mode_of(plain)
    padding = f", {mode} padding" if mode else ""
    return f"{plain['op']['name']} on {plain['grid']['name']}{padding}"
