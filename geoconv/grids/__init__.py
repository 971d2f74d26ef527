"""Geometry only: grid layouts, padding, pixel coordinates, resampling and rotations.

Every grid is a stack of planar faces plus a rule for what lies beyond each face's
border (its padding mode). Ops in :mod:`geoconv.ops` are written once against the
:class:`~geoconv.grids.base.Grid` interface and so work on every grid.

Each grid lives in its own module (``geoconv.grids.planar``, ``.equirect``, ``.cubemap``,
``.healpix``), imported on first use, which defines ``GRID``, its instance.

>>> from geoconv.grids import get_grid
>>> get_grid("planar").layout
'(B, C, H, W)'
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from geoconv.errors import unknown_name
from geoconv.grids import planar
from geoconv.grids.base import Grid, PadWidths, check_pad_widths

__all__ = [
    "GRID_NAMES",
    "BandLimitedField",
    "Grid",
    "PadWidths",
    "check_pad_widths",
    "check_rotation",
    "convert",
    "get_grid",
    "list_grids",
    "planar",
    "random_rotation",
    "rotate",
    "rotation_about_z",
]

# Names defined in submodules that import this package, so they load on first use.
_LAZY = {
    "convert": "conversion",
    "rotate": "rotation",
    "random_rotation": "rotation",
    "check_rotation": "rotation",
    "rotation_about_z": "rotation",
    "BandLimitedField": "fields",
}

GRID_NAMES: tuple[str, ...] = ("planar", "equirect", "cubemap", "healpix")
"""Every grid name an op may declare support for."""


def _module_name(name: str) -> str:
    return f"{__name__}.{name}"


def list_grids() -> list[str]:
    """The names of the grids implemented in this installation, sorted."""
    return sorted(n for n in GRID_NAMES if importlib.util.find_spec(_module_name(n)) is not None)


def get_grid(name: str | Grid) -> Grid:
    """Return the grid called ``name`` (a :class:`Grid` passes through).

    Raises
    ------
    UnknownNameError
        For a name that is not a grid, with the closest names.
    """
    if isinstance(name, Grid):
        return name
    if not isinstance(name, str) or name not in list_grids():
        raise unknown_name("grid", name, list_grids())
    return importlib.import_module(_module_name(name)).GRID


def __getattr__(attribute: str) -> ModuleType | object:
    # `geoconv.grids.healpix.pad(...)` without importing every grid (and healpy) up front.
    if attribute in GRID_NAMES:
        return importlib.import_module(_module_name(attribute))
    if attribute in _LAZY:
        return getattr(importlib.import_module(_module_name(_LAZY[attribute])), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
