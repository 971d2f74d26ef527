"""Geometry only: grid layouts, padding, pixel coordinates, resampling and rotations.

Every grid is a stack of planar faces plus a rule for what lies beyond each face's
border (its padding mode). Ops in :mod:`geoconv.ops` are written once against the
:class:`~geoconv.grids.base.Grid` interface and so work on every grid.

Each built-in grid lives in its own module (``geoconv.grids.planar``, ``.equirect``,
``.cubemap``, ``.healpix``), imported on first use, which defines ``GRID``, its instance.
Grids are plugins like ops: :func:`register_grid` and the entry-point group
``geoconv.grids`` add more (see :mod:`geoconv.grids.registry`).

>>> from geoconv.grids import get_grid
>>> get_grid("planar").layout
'(B, C, H, W)'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from geoconv.grids import planar
from geoconv.grids.base import Grid, PadWidths, check_pad_widths
from geoconv.grids.registry import (
    BUILTIN_GRIDS,
    get_grid,
    list_grids,
    register_grid,
    spherical_grids,
    unregister_grid,
)

__all__ = [
    "BUILTIN_GRIDS",
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
    "register_grid",
    "rotate",
    "rotation_about_z",
    "spherical_grids",
    "unregister_grid",
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

GRID_NAMES: tuple[str, ...] = BUILTIN_GRIDS
"""The built-in grid names (plugins add more: :func:`list_grids` has them all)."""


def __getattr__(attribute: str) -> ModuleType | object:
    # `geoconv.grids.healpix.pad(...)` without importing every grid (and healpy) up front.
    if attribute in BUILTIN_GRIDS:
        return importlib.import_module(f"{__name__}.{attribute}")
    if attribute in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[attribute]}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
