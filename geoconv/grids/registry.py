"""The grid registry: built-in grids, :func:`register_grid`, and the ``geoconv.grids`` entry points.

A grid is a subclass of :class:`~geoconv.grids.base.Grid`. Registering it makes it a
``grid=`` choice everywhere: :func:`geoconv.build_op`, every planar-family op, the probes,
the Hydra ``grid`` group and the experiments. Third-party packages declare their grids in
the entry-point group ``geoconv.grids`` (a module that calls :func:`register_grid` on
import, or a function that does).

>>> from geoconv.grids import get_grid, list_grids
>>> {"planar", "equirect", "cubemap", "healpix"} <= set(list_grids())
True
>>> get_grid("planar").layout
'(B, C, H, W)'
"""

from __future__ import annotations

import inspect

from geoconv._registry import Lazy, Registry
from geoconv.errors import ParameterError, RegistryError
from geoconv.grids.base import Grid

__all__ = [
    "BUILTIN_GRIDS",
    "ENTRY_POINT_GROUP",
    "GRIDS",
    "get_grid",
    "list_grids",
    "register_grid",
    "spherical_grids",
    "unregister_grid",
]

ENTRY_POINT_GROUP = "geoconv.grids"
"""The entry-point group third-party packages declare their grids under."""

BUILTIN_GRIDS: tuple[str, ...] = ("planar", "equirect", "cubemap", "healpix")
"""The grids geoconv ships (each in its own module ``geoconv.grids.NAME``, imported on first use)."""

GRIDS: Registry[Grid] = Registry("grid", ENTRY_POINT_GROUP, same=lambda old, new: type(old) is type(new))
"""Grid name -> the grid (an instance of its :class:`Grid` subclass)."""

for _name in BUILTIN_GRIDS:
    GRIDS.register(_name, Lazy(f"geoconv.grids.{_name}", "GRID"))


def register_grid(name: str, grid_class: type[Grid], *, override: bool = False) -> type[Grid]:
    """Register ``grid_class`` (a :class:`Grid` subclass) as the grid ``name``.

    The class is instantiated once, without arguments; its ``name`` attribute is set to
    ``name`` when it has none.

    Parameters
    ----------
    name : str
        The name configs use (``grid=NAME``).
    grid_class : type
        A concrete subclass of :class:`Grid`.
    override : bool
        Replace a grid of the same name; without it a taken name raises.

    Returns
    -------
    type
        ``grid_class``, so this also works as ``register_grid("torus", Torus)`` after a class.

    Raises
    ------
    RegistryError
        For a taken name.
    ParameterError
        For a class that is not a :class:`Grid` subclass, or one that leaves required
        methods unimplemented (named in the message).
    """
    if not (isinstance(grid_class, type) and issubclass(grid_class, Grid)):
        raise ParameterError(f"register_grid({name!r}, ...) needs a subclass of geoconv.grids.Grid, got {grid_class!r}")
    if inspect.isabstract(grid_class):
        missing = sorted(getattr(grid_class, "__abstractmethods__", ()))
        raise ParameterError(
            f"grid class {grid_class.__name__} (registering {name!r}) does not implement the required method(s) "
            f"{', '.join(missing)} of geoconv.grids.Grid"
        )
    declared = getattr(grid_class, "name", None)
    if declared is not None and declared != name:
        raise RegistryError(
            f"grid class {grid_class.__name__} is named {declared!r}; register it as {declared!r}, not {name!r}"
        )
    for attribute in ("layout", "padding_modes", "default_padding_mode"):
        if not hasattr(grid_class, attribute):
            raise ParameterError(
                f"grid class {grid_class.__name__} (registering {name!r}) must set the class attribute {attribute!r}"
            )
    if declared is None:
        grid_class.name = name
    try:
        grid = grid_class()
        _check_default_size(grid)
        GRIDS.register(name, grid, override=override)
    except Exception:
        if declared is None:
            del grid_class.name  # a refused registration leaves the class as it was
        raise
    return grid_class


def _check_default_size(grid: Grid) -> None:
    # A Hydra node grid=NAME is made from default_size: a size the grid refuses would only
    # fail later, at the first experiment run with that grid.
    try:
        grid.shape(1, 1, grid.default_size)
    except ValueError as err:  # GeoconvError is a ValueError
        raise ParameterError(
            f"grid class {type(grid).__name__} (registering {grid.name!r}): its default_size={grid.default_size!r} "
            f"is not a size its shape() accepts ({err}); set the class attribute default_size"
        ) from None


def unregister_grid(name: str) -> Grid:
    """Remove the grid ``name`` and return it (for tests and plugin authors)."""
    return GRIDS.unregister(name)


def list_grids(pattern: str = "*") -> list[str]:
    """The names of the registered grids (plugins included), sorted."""
    return GRIDS.names(pattern)


def spherical_grids() -> list[str]:
    """The names of the registered grids that discretise the sphere (``Grid.spherical``), sorted.

    >>> spherical_grids()[:3]
    ['cubemap', 'equirect', 'healpix']
    """
    return [name for name in list_grids() if get_grid(name).spherical]


def get_grid(name: str | Grid) -> Grid:
    """Return the grid called ``name`` (a :class:`Grid` passes through).

    Raises
    ------
    UnknownNameError
        For a name that is not a grid, with the closest names.
    """
    if isinstance(name, Grid):
        return name
    return GRIDS.get(name)
