"""Pieces every grid op shares: padding specs, weight initialisation, the grid base class."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from geoconv._checks import check_pair
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids import Grid, PadWidths, check_pad_widths, get_grid
from geoconv.sizes import same_padding

__all__ = [
    "PaddingSpec",
    "IntOrPair",
    "GridOp",
    "check_output_faces",
    "check_padding",
    "resolve_padding",
    "init_conv_parameters",
]

IntOrPair = int | tuple[int, int]
"""An int for both spatial dims, or ``(height, width)``."""

PaddingSpec = int | tuple[int, int] | tuple[int, int, int, int] | Literal["same", "valid"]
"""``p``, ``(ph, pw)``, ``(top, bottom, left, right)``, ``"same"`` (TensorFlow) or ``"valid"`` (none)."""


def check_padding(value: object, name: str = "padding") -> str | PadWidths:
    """Validate a :data:`PaddingSpec`; return ``"same"``, ``"valid"`` or 4 widths.

    >>> check_padding(1)
    (1, 1, 1, 1)
    >>> check_padding("SAME")
    'same'
    """
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("same", "valid"):
            return lowered
        raise ParameterError(
            f"{name} must be 'same', 'valid', an int, a pair or a 4-tuple (top, bottom, left, right), got {value!r}"
        )
    return check_pad_widths(value, name)


def resolve_padding(
    padding: str | PadWidths,
    spatial: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> PadWidths:
    """Turn a checked padding spec into ``(top, bottom, left, right)`` for one input size.

    ``"same"`` is TensorFlow's definition (see :func:`geoconv.sizes.same_padding`); it
    depends on the input size when the stride is larger than one.
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        top, bottom = same_padding(spatial[0], kernel_size[0], stride[0], dilation[0])
        left, right = same_padding(spatial[1], kernel_size[1], stride[1], dilation[1])
        return (top, bottom, left, right)
    return padding  # type: ignore[return-value]


def check_output_faces(op: str, grid: Grid, x: torch.Tensor, out: Sequence[int], /, **params: object) -> None:
    """Raise a ``ShapeError`` if an output face of size ``out`` (H', W') is not valid on ``grid``.

    A conv or pool with a stride maps a valid face to one of any size: HEALPix nside 8
    pooled by 3 gives 3x3 faces, an equirect width 6 halved is odd. Such a tensor is not
    a signal on the grid and every later op would refuse it, so the op refuses first and
    names the parameters that decide the size.
    """
    problem = grid.face_problem(int(out[0]), int(out[1]))
    if problem is None:
        return
    settings = ", ".join(f"{name}={value!r}" for name, value in params.items())
    raise ShapeError(
        f"{op} on grid {grid.name!r}: x of shape {tuple(x.shape)} (faces {x.shape[-2]}x{x.shape[-1]}) would give "
        f"output faces {int(out[0])}x{int(out[1])}, but an output of shape {grid.layout} needs {problem}; "
        f"choose an input size or {settings} that keep it"
    )


def init_conv_parameters(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Initialise like ``torch.nn.Conv2d``: Kaiming-uniform with ``a = sqrt(5)``."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


class GridOp(nn.Module):
    """Base class of ops written once for every grid.

    Holds the grid and the resolved padding mode; subclasses pad with
    ``self.grid.pad``, fold faces with ``self.grid.to_planes`` and run a planar kernel.
    """

    def __init__(
        self, grid: str, padding_mode: str | None = None, planar_default: str | None = None, value: float = 0.0
    ) -> None:
        super().__init__()
        self.grid: Grid = get_grid(grid)
        if padding_mode is None and planar_default is not None and self.grid.name == "planar":
            padding_mode = planar_default
        self.padding_mode = self.grid.check_mode(padding_mode)
        if value != 0 and self.padding_mode != "constant":
            # A fill value that no padding would use is a mistake, not something to ignore.
            raise ParameterError(
                f"value={value} is the fill of padding_mode='constant', but padding_mode is {self.padding_mode!r}"
            )

    def extra_repr(self) -> str:
        return f"grid={self.grid.name!r}, padding_mode={self.padding_mode!r}"


def pairs(*values: IntOrPair | Sequence[int], names: Sequence[str], minimum: int = 1) -> list[tuple[int, int]]:
    """Check several int-or-pair values at once; see :func:`geoconv._checks.check_pair`."""
    return [check_pair(name, value, minimum=minimum) for name, value in zip(names, values, strict=True)]
