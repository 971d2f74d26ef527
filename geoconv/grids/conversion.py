r"""Any spherical grid to any spherical grid, by interpolation at the target's pixel centres.

.. math::

    y(p) = \mathcal I_{\text{source}}[x]\big(\theta_p, \phi_p\big)

for every pixel :math:`p` of the target grid, with :math:`\mathcal I` the source grid's
bilinear interpolation (:meth:`~geoconv.grids.sphere.SphericalGrid.interpolate`) and
:math:`(\theta_p, \phi_p)` the target pixel's centre. Bilinear interpolation is a point
sampler: converting to a much coarser grid aliases, so low-pass first (e.g. average
pooling on the source grid) when the target is more than about twice as coarse.

Public names: :func:`convert`, :func:`spherical_grid`.

Examples
--------
>>> import torch
>>> from geoconv.grids.conversion import convert
>>> x = torch.ones(2, 3, 8, 16)
>>> convert(x, "equirect", "equirect", 4).shape
torch.Size([2, 3, 4, 8])
"""

from __future__ import annotations

import torch

from geoconv.errors import ParameterError
from geoconv.grids.base import Grid
from geoconv.grids.registry import get_grid, spherical_grids
from geoconv.grids.sphere import SphericalGrid

__all__ = ["check_resolution", "convert", "resolution_of", "spherical_grid"]


def spherical_grid(grid: str | Grid, what: str = "this operation") -> SphericalGrid:
    """Return the spherical grid called ``grid``; refuse a flat one (it has no sphere to map).

    >>> spherical_grid("equirect").name
    'equirect'
    """
    grid = get_grid(grid)
    if not isinstance(grid, SphericalGrid):
        raise ParameterError(
            f"{what} needs a spherical grid ({', '.join(spherical_grids())}), got grid {grid.name!r} "
            f"(flat, {grid.layout})"
        )
    return grid


def resolution_of(grid: SphericalGrid, x: torch.Tensor) -> int | tuple[int, int]:
    """The resolution of a checked tensor as :meth:`SphericalGrid.centres` takes it.

    :meth:`SphericalGrid.resolution_of`: ``(H, W)`` on equirect (its maps need not be 2:1),
    :meth:`SphericalGrid.size_of` elsewhere.
    """
    return grid.resolution_of(x)


def check_resolution(grid: SphericalGrid, size: object) -> int | tuple[int, int]:
    """Validate a resolution for :meth:`SphericalGrid.centres`: :meth:`SphericalGrid.resolution`."""
    return grid.resolution(size)


def convert(x: torch.Tensor, source: str | Grid, target: str | Grid, size: int | tuple[int, int]) -> torch.Tensor:
    """Resample a signal from one spherical grid to another (or to another resolution).

    Parameters
    ----------
    x : torch.Tensor
        A signal in the source grid's layout: ``(B, C, H, W)``, ``(B, C, 6, F, F)`` or
        ``(B, C, 12, n, n)``.
    source, target : str or SphericalGrid
        ``"equirect"``, ``"cubemap"`` or ``"healpix"``.
    size : int or (int, int)
        The target resolution: ``H`` on equirect (``W = 2H``; or a pair ``(H, W)``), the
        face side on the cube, nside on HEALPix.

    Returns
    -------
    torch.Tensor
        ``target.shape(B, C, size)``. When source and target are the same grid at the same
        resolution, ``x`` itself. Differentiable in ``x``.
    """
    source = spherical_grid(source, "convert")
    target = spherical_grid(target, "convert")
    x = source.check(x, "x")
    size = target.resolution(size)
    if source is target and source.resolution_of(x) == size:
        return x
    return source.interpolate(x, *target.centres(size))
