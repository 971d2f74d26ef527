"""Geometry only: grid layouts, padding, and (later) pixel coordinates and resampling.

Every grid is a stack of planar faces plus a rule for what lies beyond each face's
border (its padding mode). Ops in :mod:`geoconv.ops` are written once against the
:class:`~geoconv.grids.base.Grid` interface and so work on every grid.

>>> from geoconv.grids import get_grid, list_grids
>>> list_grids()
['planar']
>>> get_grid("planar").layout
'(B, C, H, W)'
"""

from __future__ import annotations

from geoconv.errors import unknown_name
from geoconv.grids import planar
from geoconv.grids.base import Grid, PadWidths, check_pad_widths

__all__ = ["Grid", "PadWidths", "check_pad_widths", "get_grid", "list_grids", "GRID_NAMES", "planar"]

_GRIDS: dict[str, Grid] = {"planar": planar.PlanarGrid()}

GRID_NAMES: tuple[str, ...] = ("planar", "equirect", "cubemap", "healpix")
"""Every grid name an op may declare support for (some are added by later modules)."""


def list_grids() -> list[str]:
    """The names of the grids implemented in this installation, sorted."""
    return sorted(_GRIDS)


def get_grid(name: str | Grid) -> Grid:
    """Return the grid called ``name`` (a :class:`Grid` passes through).

    Raises
    ------
    UnknownNameError
        For a name that is not a grid, with the closest names.
    """
    if isinstance(name, Grid):
        return name
    try:
        return _GRIDS[name]
    except (KeyError, TypeError):
        raise unknown_name("grid", name, _GRIDS) from None
