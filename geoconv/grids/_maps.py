"""The drawings behind :meth:`Grid.draw_map <geoconv.grids.base.Grid.draw_map>`: image, world map, Mollweide.

Each function draws one map on a matplotlib ``Figure`` it is given and sets the figure's
size; :func:`geoconv.viz.plot_map` makes the figure (off-screen, no pyplot) and saves it.
matplotlib and healpy are imported by the functions, not by the grids.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["draw_image", "draw_lat_lon", "draw_mollweide"]


def draw_image(figure: Any, values: np.ndarray, *, cmap: str = "viridis") -> None:
    """``values`` ``(H, W)`` as an image, row 0 at the top, with a colour bar."""
    height, width = values.shape
    figure.set_size_inches(6.0, max(2.5, min(9.0, 6.0 * height / width)))
    axes = figure.add_subplot()
    image = axes.imshow(values, origin="upper", cmap=cmap, interpolation="nearest")
    axes.set_xlabel("column")
    axes.set_ylabel("row")
    figure.colorbar(image, ax=axes, shrink=0.8)


def draw_lat_lon(figure: Any, values: np.ndarray, *, cmap: str = "viridis") -> None:
    """An equirect map ``(H, W)`` as a world map: longitude 0°..360° across, latitude 90°..-90° down."""
    figure.set_size_inches(8.0, 4.2)
    width = values.shape[1]
    axes = figure.add_subplot()
    # Pixel j is centred on longitude 360 j / W; row i spans colatitude [i, i + 1] 180 / H.
    half = 180.0 / width
    image = axes.imshow(values, extent=(-half, 360.0 - half, -90.0, 90.0), origin="upper", cmap=cmap)
    axes.set_xlabel("longitude (°)")
    axes.set_ylabel("latitude (°)")
    axes.set_xticks(np.arange(0, 361, 60))
    axes.set_yticks(np.arange(-90, 91, 30))
    axes.set_xlim(-half, 360.0 - half)  # the ticks would widen the view past the image
    figure.colorbar(image, ax=axes, shrink=0.8)


def draw_mollweide(figure: Any, nest: np.ndarray, *, cmap: str = "viridis") -> None:
    """A NESTED HEALPix map ``(12 nside²,)`` on healpy's Mollweide axes, east to the right (``flip="geo"``)."""
    from healpy.projaxes import HpxMollweideAxes

    # healpy's axes sit at a fixed place in the figure: no layout engine may move them.
    figure.set_layout_engine("none")
    figure.set_size_inches(8.5, 5.4)
    axes = HpxMollweideAxes(figure, (0.02, 0.15, 0.96, 0.78), flipconv="geo")
    figure.add_axes(axes)
    with warnings.catch_warnings():
        # healpy's own colour-map set-up uses matplotlib calls pending deprecation; not ours to fix.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        axes.projmap(nest, nest=True, xsize=800, cmap=cmap)
    axes.graticule(dpar=30, dmer=60, alpha=0.3)
    figure.colorbar(axes.get_images()[0], ax=axes, orientation="horizontal", shrink=0.5, pad=0.05)
