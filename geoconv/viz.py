"""Figures: an off-screen, atomic PNG writer every job and report uses, and maps of signals on any grid.

Figures are matplotlib ``Figure`` objects rendered by Agg outside pyplot: nothing is shown,
no global backend or pyplot state is touched, and nothing stays open.

=============================  ===========================================================
name                           what it draws
=============================  ===========================================================
:func:`figure`                 whatever ``draw(figure)`` draws, saved atomically
:func:`plot_map`               one signal on any grid, as the grid draws it (``Grid.draw_map``)
:func:`plot_sphere_map`        the same for a spherical grid only: Mollweide (HEALPix) or latitude-longitude
=============================  ===========================================================

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = figure(Path(folder) / "line.png", lambda fig: fig.subplots().plot([0, 1], [1, 0]))
...     path.stat().st_size > 0
True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoconv._io import atomic_write
from geoconv.errors import GeoconvError, ShapeError
from geoconv.grids import Grid, get_grid
from geoconv.grids.conversion import spherical_grid

__all__ = ["figure", "plot_map", "plot_sphere_map"]


def figure(path: str | Path, draw: Callable[[Any], None], *, size: tuple[float, float] = (6.0, 4.0)) -> Path:
    """Draw with ``draw(figure)`` on an off-screen figure and save it as a PNG, atomically.

    The PNG goes into a temporary file beside ``path`` and is renamed over it
    (:func:`geoconv._io.atomic_write`): a run killed while saving leaves the previous
    figure or none, never a truncated PNG. Parent folders are created.
    """
    # Imported here: plotting is optional work, and matplotlib is slow to import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    try:
        draw(figure)
        atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    finally:
        figure.clear()
    return Path(path)


def plot_map(
    values: torch.Tensor | np.ndarray,
    grid: str | Grid,
    size: object,
    path: str | Path,
    title: str = "",
    *,
    cmap: str = "viridis",
) -> Path:
    """Save one signal on a grid as a PNG, drawn the grid's way (:meth:`~geoconv.grids.Grid.draw_map`).

    HEALPix maps are drawn on healpy's Mollweide axes from the NESTED map, east to the
    right; the other spherical grids as a latitude-longitude image (longitude 0°..360°
    across, latitude 90°..-90° down), cube maps resampled to equirect first; flat grids as
    an image of their faces. A plugin grid draws whatever its ``draw_map`` draws.

    Parameters
    ----------
    values : torch.Tensor or numpy.ndarray
        One signal in the grid's layout at ``size``, without batch and channel dims:
        :meth:`~geoconv.grids.Grid.signal_shape`, e.g. ``(H, W)``, ``(6, F, F)``, ``(12, n, n)``.
    grid : str or Grid
        A registered grid.
    size : int or (int, int)
        The map's resolution.
    path : str or pathlib.Path
        Where to write the PNG (parent folders are created; written atomically).
    title : str
        The figure's title.
    cmap : str
        A matplotlib colour map.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = plot_map(np.random.rand(6, 4, 4), "cubemap", 4, Path(folder) / "map.png", "noise")
    ...     out.stat().st_size > 0
    True
    """
    return _plot(get_grid(grid), values, size, path, title, cmap)


def plot_sphere_map(
    values: torch.Tensor | np.ndarray,
    grid: str | Grid,
    size: object,
    path: str | Path,
    title: str = "",
    *,
    cmap: str = "viridis",
) -> Path:
    """:func:`plot_map` for a spherical grid: a flat grid is refused.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = plot_sphere_map(np.random.rand(12, 4, 4), "healpix", 4, Path(folder) / "map.png", "noise")
    ...     out.stat().st_size > 0
    True
    """
    return _plot(spherical_grid(grid, "plot_sphere_map"), values, size, path, title, cmap)


def _plot(grid: Grid, values: torch.Tensor | np.ndarray, size: object, path: str | Path, title: str, cmap: str) -> Path:
    try:
        expected = grid.signal_shape(size)
    except GeoconvError as err:
        if "size" in str(err):
            raise
        raise type(err)(f"size for grid {grid.name!r}: {err}") from None
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != expected:
        raise ShapeError(
            f"values must have the spatial shape {expected} of grid {grid.name!r} ({grid.layout} without B and C) "
            f"at size {size!r}, got shape {values.shape}"
        )

    def draw(canvas: Any) -> None:
        grid.draw_map(canvas, values, size, cmap=cmap)
        if title:
            canvas.suptitle(title)

    return figure(path, draw)
