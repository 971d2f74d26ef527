"""Synthetic probe inputs on any grid: white noise and band-limited random fields.

The ``data`` config group of the probe jobs names one of :data:`INPUTS` (``data.kind``);
:func:`make_input` builds it in the grid's layout and refuses NaN or Inf.

>>> import torch
>>> x = make_input({"data": {"kind": "noise", "batch": 2, "channels": 3},
...                 "grid": {"name": "healpix", "size": 2}}, torch.device("cpu"), torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(2, 3, 12, 2, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from geoconv._registry import Registry
from geoconv.errors import GeoconvError
from geoconv.grids import get_grid

__all__ = ["INPUTS", "NonFiniteInputError", "make_input"]


class NonFiniteInputError(GeoconvError):
    """A probe's input holds NaN or Inf values."""


InputBuilder = Callable[[dict[str, Any], dict[str, Any], torch.Generator], torch.Tensor]


def _noise(data: dict[str, Any], grid: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
    shape = get_grid(grid["name"]).shape(data["batch"], data["channels"], grid["size"])
    return torch.randn(shape, generator=generator)


def _band_limited(data: dict[str, Any], grid: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
    from geoconv.grids.fields import BandLimitedField

    field = BandLimitedField.random(data["lmax"], batch=data["batch"], channels=data["channels"], generator=generator)
    return field.sample(grid["name"], grid["size"]).float()


INPUTS: Registry[InputBuilder] = Registry("probe input (data.kind)", "geoconv.inputs")
"""The probe inputs by ``data.kind``: ``build(data, grid, generator)`` -> a CPU tensor in the grid's layout."""
INPUTS.register("noise", _noise)
INPUTS.register("band_limited", _band_limited)


def make_input(plain: dict[str, Any], device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """The probe input the ``data`` group describes, in the grid's layout, on ``device``.

    Raises
    ------
    NonFiniteInputError
        When the input holds NaN or Inf values: a probe of it would measure nothing.
    """
    data, grid = plain["data"], plain["grid"]
    build = INPUTS.get(data["kind"])
    x = build(data, grid, generator)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        nan = int(torch.isnan(x).sum())
        raise NonFiniteInputError(
            f"the probe input (data.kind={data['kind']!r}, grid={grid['name']!r}, shape {tuple(x.shape)}) holds "
            f"{int((~finite).sum())} non-finite values of {x.numel()} ({nan} NaN, {int((~finite).sum()) - nan} Inf); "
            "nothing was measured"
        )
    return x.to(device)
