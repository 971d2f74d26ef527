r"""Global mean pooling weighted by each grid's quadrature: the mean over the sphere, not over the pixels.

For a signal :math:`x` of shape ``(B, C, *spatial)`` on a grid with quadrature weights
:math:`w_p` (:meth:`geoconv.grids.base.Grid.quadrature_weights`),

.. math::

    \operatorname{pool}(x)_{bc} = \frac{\sum_p w_p\, x_{bcp}}{\sum_p w_p},

the integral mean :math:`\frac{1}{4\pi}\int_{S^2} x\, d\Omega` on a spherical grid (the
weights are solid angles) and the plain pixel mean on a flat grid. On equirect the plain
pixel mean counts the thin polar rows as much as the equator's, so a rotated input moves
the pooled features; the weighted mean moves them only by the quadrature's error.

Examples
--------
>>> import torch
>>> pool = GlobalMeanPool("equirect")
>>> pool(torch.ones(2, 3, 8, 16)).shape
torch.Size([2, 3])
>>> x = torch.zeros(1, 1, 8, 16); x[..., 0, :] = 1.0      # only the polar row is lit
>>> round(pool(x).item(), 4), round(x.mean().item(), 4)  # (1 - cos(pi/8)) / 2 of the area, 1/8 of the pixels
(0.0381, 0.125)
"""

from __future__ import annotations

import torch
from torch import nn

from geoconv._checks import check_choice
from geoconv.errors import ShapeError
from geoconv.grids import get_grid
from geoconv.nn.norm import _grid_weights

__all__ = ["POOL_WEIGHTS", "GlobalMeanPool"]

POOL_WEIGHTS: tuple[str, ...] = ("area", "uniform")
"""How :class:`GlobalMeanPool` weights pixels: by the grid's quadrature, or all alike."""


class GlobalMeanPool(nn.Module):
    """The quadrature-weighted mean over every spatial dim: ``(B, C, *spatial) -> (B, C)``.

    Parameters
    ----------
    grid : str
        The grid of the input; its :meth:`~geoconv.grids.base.Grid.quadrature_weights_of`
        gives the weights (solid angles on the sphere, uniform on a flat grid).
    weights : {"area", "uniform"}
        ``area``: the grid's quadrature; ``uniform``: every pixel alike (the plain
        ``x.flatten(2).mean(-1)``, kept to compare against). An input that is not in the
        grid's layout (an op left the grid, as ``s2_conv`` does) is pooled uniformly.

    Attributes
    ----------
    weights : torch.Tensor
        A non-persistent buffer of shape ``spatial`` (summing to 1), rebuilt when an input of
        another resolution, dtype or device arrives; empty before the first call.

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C)``.

    Examples
    --------
    >>> import torch
    >>> pool = GlobalMeanPool("healpix")
    >>> pool(torch.full((2, 4, 12, 2, 2), 3.0))[0]
    tensor([3., 3., 3., 3.])
    """

    weights: torch.Tensor

    def __init__(self, grid: str = "planar", weights: str = "area") -> None:
        super().__init__()
        self.grid = get_grid(grid)
        self.mode = check_choice("weights", weights, POOL_WEIGHTS)
        self.register_buffer("weights", torch.empty(0), persistent=False)

    def _weights_for(self, x: torch.Tensor) -> torch.Tensor:
        stale = self.weights.shape != x.shape[2:] or self.weights.dtype != x.dtype or self.weights.device != x.device
        if stale:
            self.weights = _grid_weights(self.grid if self.mode == "area" else None, x)
        return self.weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 3 or x.shape[0] == 0 or x[0, 0].numel() == 0:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"global pooling needs x of shape (B, C, *spatial) with pixels, got {shape}")
        weights = self._weights_for(x)
        # A weighted sum (the weights sum to 1): one matmul over the flattened pixels.
        return x.flatten(2) @ weights.reshape(-1)

    def extra_repr(self) -> str:
        return f"grid={self.grid.name!r}, weights={self.mode!r}"
