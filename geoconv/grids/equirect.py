r"""The equirectangular grid: one 2:1 face, layout ``(B, C, H, W)``, ``W`` even.

Pixel ``(i, j)`` has its centre at

.. math::

    \theta_i = \left(i + \tfrac12\right)\frac{\pi}{H}, \qquad \phi_j = \frac{2\pi j}{W},

(colatitude :math:`\theta`, longitude :math:`\phi`; pole at :math:`+z`), the grid of e3nn's
``s2_grid``. ``shape(batch, channels, size)`` is ``(batch, channels, size, 2 * size)``; any
even width is accepted.

Padding modes
-------------
``sphere`` (the default)
    What lies beyond each border on the sphere. Longitude wraps (circular in ``W``).
    Beyond the north pole, padded row :math:`-(k+1)` is row :math:`k` rolled by ``W/2``
    (half a turn of longitude): the great circle through the pole continues on the other
    side. Likewise row :math:`H+k` is row :math:`H-1-k` rolled by ``W/2`` at the south
    pole. The corners combine both rules. Widths up to ``H`` (rows) and ``W`` (columns).
``lon_circular``
    Longitude wraps, zeros beyond the poles: the common baseline for 360° images.
``zeros``, ``constant``, ``reflect``, ``replicate``, ``circular``
    The planar modes, as baselines (:mod:`geoconv.grids.planar`).

A stride-1 convolution after ``sphere`` or ``lon_circular`` padding commutes exactly with
:func:`roll_longitude`, the rotation about the pole by a multiple of :math:`2\pi/W`.

Public names: :class:`EquirectGrid`, :data:`GRID`, :func:`pad`, :func:`roll_longitude`,
:func:`interpolate`.

Examples
--------
>>> import torch
>>> from geoconv.grids import equirect
>>> x = torch.arange(8.0).view(1, 1, 2, 4)
>>> equirect.pad(x, 1)[0, 0]
tensor([[1., 2., 3., 0., 1., 2.],
        [3., 0., 1., 2., 3., 0.],
        [7., 4., 5., 6., 7., 4.],
        [5., 6., 7., 4., 5., 6.]])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._gather import PadTable, gather
from geoconv.grids.base import PadWidths, check_batch_channels, check_pad_widths, check_planar_tensor
from geoconv.grids.sphere import SphericalGrid

__all__ = ["GRID", "EquirectGrid", "interpolate", "pad", "roll_longitude"]

# Sample positions within this many pixels of a pixel centre are taken as that centre, so
# that interpolating at the grid's own centres returns the pixel values exactly (the
# round-off of (i + 1/2) * pi / H * H / pi - 1/2 is ~1e-13 pixels).
_SNAP = 1e-9


def _fold_rows(rows: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Source row and longitude shift (in pixels) of rows ``-height <= r < 2 * height``.

    Row ``-(k+1)`` lies across the north pole from row ``k``, half a turn of longitude
    away; row ``H + k`` lies across the south pole from row ``H - 1 - k``.
    """
    north, south = rows < 0, rows >= height
    source = np.where(north, -rows - 1, np.where(south, 2 * height - 1 - rows, rows))
    shift = np.where(north | south, width // 2, 0)
    return source, shift


class EquirectGrid(SphericalGrid):
    """The equirectangular grid, layout ``(B, C, H, W)`` with ``W`` even.

    See the module docstring for the pixel centres and the padding modes.

    Examples
    --------
    >>> import torch
    >>> from geoconv.grids import get_grid
    >>> grid = get_grid("equirect")
    >>> grid.shape(2, 3, 16)
    (2, 3, 16, 32)
    >>> grid.pad(torch.zeros(grid.shape(1, 1, 4)), 1).shape
    torch.Size([1, 1, 6, 10])
    """

    name = "equirect"
    layout = "(B, C, H, W)"
    faces = 0
    own_modes = ("sphere", "lon_circular")
    default_size = 16

    # -- layout -------------------------------------------------------------------------

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, size, 2 * size)``: ``size`` is the height ``H``."""
        batch, channels = check_batch_channels(batch, channels)
        size = self.check_size(size)
        return (batch, channels, size, 2 * size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a ``(B, C, H, W)`` tensor with ``C, H >= 1`` and ``W`` even, else raise."""
        x = check_planar_tensor(x, name)
        width = int(x.shape[-1])
        if width % 2:
            raise ShapeError(
                f"{name} on grid 'equirect' must have shape (B, C, H, W) with an even width W (half a turn of "
                f"longitude is W/2 pixels), got shape {tuple(x.shape)} with W={width}"
            )
        return x

    def face_problem(self, height: int, width: int) -> str | None:
        """An even width ``W`` (half a turn of longitude is ``W/2`` pixels); see :meth:`Grid.face_problem`."""
        if width % 2:
            return "an even width W (half a turn of longitude is W/2 pixels)"
        return super().face_problem(height, width)

    def size_of(self, x: torch.Tensor) -> int:
        """The height ``H`` of ``x``."""
        return int(x.shape[-2])

    def resolution(self, size: int | tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` from a height (``W = 2H``) or from a pair ``(H, W)`` with ``W`` even.

        >>> GRID.resolution(8), GRID.resolution((8, 12))
        ((8, 16), (8, 12))
        """
        if isinstance(size, tuple | list):
            if len(size) != 2:
                raise ParameterError(f"size for grid 'equirect' must be H or a pair (H, W), got {size!r}")
            height = check_int("size[0] (H) for grid 'equirect'", size[0], minimum=1)
            width = check_int("size[1] (W) for grid 'equirect'", size[1], minimum=2)
            if width % 2:
                raise ParameterError(f"size[1] (W) for grid 'equirect' must be even, got W={width}")
            return height, width
        height = self.check_size(size)
        return height, 2 * height

    def resolution_of(self, x: torch.Tensor) -> tuple[int, int]:
        """``(H, W)`` of a checked tensor: equirect maps need not be 2:1."""
        return self.spatial_shape(x)

    # -- the grid's catalogue (see SphericalGrid) ------------------------------------------

    def equator_pixels(self, size: int | tuple[int, int]) -> int:
        """``min(2H, W)``: the width, or twice the height when a map is wider than 2:1 (its rows set the detail)."""
        height, width = self.resolution(size)
        return min(2 * height, width)

    def pixel_areas(self, size: int | tuple[int, int]) -> np.ndarray:
        r"""Solid angles ``(H, W)``: :math:`(\cos\theta_i^- - \cos\theta_i^+)\,2\pi/W` for row ``i``.

        Row ``i`` spans colatitudes :math:`[\theta_i^-, \theta_i^+] = [i, i+1]\,\pi/H`.

        >>> round(float(GRID.pixel_areas(4).sum() / np.pi), 12)
        4.0
        """
        height, width = self.resolution(size)
        edges = np.cos(np.arange(height + 1) * (np.pi / height))
        return np.repeat(((edges[:-1] - edges[1:]) * (2 * np.pi / width))[:, None], width, axis=1)

    def pixel_pitch(self, size: int | tuple[int, int]) -> float:
        r"""The latitude step :math:`\pi / H` (radians)."""
        return math.pi / self.resolution(size)[0]

    def pole_turns(self, size: int | tuple[int, int]) -> int:
        """``W``: every roll by whole pixels of longitude is an exact rotation."""
        return self.resolution(size)[1]

    def turn_about_pole(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """:meth:`roll_longitude` by ``steps`` pixels."""
        return self.roll_longitude(x, steps)

    def draw_map(self, figure: Any, values: np.ndarray, size: object, *, cmap: str = "viridis") -> None:
        """The map itself as a latitude-longitude image (no resampling); see :meth:`SphericalGrid.draw_map`."""
        from geoconv.grids._maps import draw_lat_lon

        draw_lat_lon(figure, values, cmap=cmap)

    # -- padding ------------------------------------------------------------------------

    def pad_table(self, size: int | tuple[int, int], widths: PadWidths, mode: str) -> PadTable:
        """The gather table of ``sphere`` or ``lon_circular`` padding.

        Parameters
        ----------
        size : int or (int, int)
            ``H`` (then ``W = 2H``) or ``(H, W)``.
        widths : (int, int, int, int)
            ``(top, bottom, left, right)``, at most ``H`` (rows) and ``W`` (columns).
        mode : str
            ``"sphere"`` or ``"lon_circular"``.

        Returns
        -------
        PadTable
            Source ``(H, W)``, target ``(H + top + bottom, W + left + right)``. For
            ``lon_circular`` the rows beyond the poles carry weight 0.
        """
        height, width = self.resolution(size)
        top, bottom, left, right = check_pad_widths(widths)
        if mode not in self.own_modes:
            raise ParameterError(f"pad_table of grid 'equirect' builds the modes {self.own_modes}, got {mode!r}")
        rows = np.arange(-top, height + bottom)[:, None]
        cols = np.arange(-left, width + right)[None, :]
        source_rows, shift = _fold_rows(rows, height, width)
        index = source_rows * width + (cols + shift) % width
        if mode == "sphere":
            return PadTable.from_index(index, (height, width))
        inside = np.broadcast_to((rows >= 0) & (rows < height), index.shape)
        return PadTable(index[..., None], inside[..., None].astype(np.float64), (height, width), index.shape)

    def _build_table(self, spatial: tuple[int, ...], widths: PadWidths, mode: str) -> PadTable:
        # Built for (H, W), not for H alone: ops may produce widths other than 2H.
        return self.pad_table((spatial[0], spatial[1]), widths, mode)

    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        """Pad ``x`` of shape ``(B, C, H, W)`` to ``(B, C, H + top + bottom, W + left + right)``.

        See the module docstring for the modes; ``widths`` is ``w``, ``(h, w)`` or
        ``(top, bottom, left, right)``.
        """
        mode = self.check_mode(mode)
        if mode != "lon_circular":
            return super().pad(x, widths, mode, value)
        x = self.check(x)
        top, bottom, left, right = check_pad_widths(widths)
        self.check_widths(x, (top, bottom, left, right))
        # One gather for the longitude wrap, then torch's zero fill: exact zeros (not 0 * x,
        # which is NaN beyond a pole row holding inf) and cheaper than a weighted gather.
        wrapped = super().pad(x, (0, 0, left, right), "sphere") if left or right else x
        return F.pad(wrapped, (0, 0, top, bottom)) if top or bottom else wrapped

    # -- geometry -----------------------------------------------------------------------

    def centres(self, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        r"""Colatitude and longitude of the pixel centres, each of shape ``(H, W)``.

        :math:`\theta_{ij} = (i + \frac12)\pi/H`, :math:`\phi_{ij} = 2\pi j/W`.

        >>> colat, lon = GRID.centres(2)
        >>> colat[:, 0] * 4 / np.pi, lon[0] * 2 / np.pi
        (array([1., 3.]), array([0., 1., 2., 3.]))
        """
        height, width = self.resolution(size)
        colat = (np.arange(height, dtype=np.float64) + 0.5) * (np.pi / height)
        lon = np.arange(width, dtype=np.float64) * (2 * np.pi / width)
        return np.broadcast_to(colat[:, None], (height, width)).copy(), np.broadcast_to(lon, (height, width)).copy()

    def interpolation_table(self, size: int | tuple[int, int], colat: object, lon: object) -> PadTable:
        r"""The bilinear interpolation of an ``(H, W)`` map at points, as a 4-tap gather table.

        Bilinear in the index coordinates :math:`u = \theta H/\pi - \frac12` (row) and
        :math:`s = \phi W / 2\pi` (column): longitude is periodic, and beyond the centre of
        row 0 (or row ``H - 1``) the rows continue across the pole as in ``sphere``
        padding, so near a pole a sample interpolates between row 0 and row 0 rolled by
        ``W/2``. Colatitudes outside :math:`[0, \pi]` are folded over the pole.

        Parameters
        ----------
        size : int or (int, int)
            ``H`` (then ``W = 2H``) or ``(H, W)`` of the map.
        colat, lon : array_like
            Broadcastable arrays of colatitudes and longitudes (radians).

        Returns
        -------
        PadTable
            Source ``(H, W)``, target the broadcast shape of ``colat`` and ``lon``, 4 taps.
        """
        height, width = self.resolution(size)
        colat, lon = np.broadcast_arrays(np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
        if not (np.isfinite(colat).all() and np.isfinite(lon).all()):
            raise ParameterError("colat and lon must be finite (radians)")
        colat = np.mod(colat, 2 * np.pi)
        beyond = colat > np.pi  # over the south pole and up the other side
        colat = np.where(beyond, 2 * np.pi - colat, colat)
        lon = np.where(beyond, lon + np.pi, lon)
        u = _snap(colat * (height / np.pi) - 0.5)
        s = _snap(np.mod(lon, 2 * np.pi) * (width / (2 * np.pi)))
        row0 = np.clip(np.floor(u), -1, height - 1).astype(np.int64)
        col0 = np.floor(s).astype(np.int64)
        t, f = u - row0, s - col0
        index, weight = [], []
        for rows, row_weight in ((row0, 1 - t), (row0 + 1, t)):
            source, shift = _fold_rows(rows, height, width)
            for cols, col_weight in ((col0, 1 - f), (col0 + 1, f)):
                index.append(source * width + (cols + shift) % width)
                weight.append(row_weight * col_weight)
        return PadTable(np.stack(index, -1), np.stack(weight, -1), (height, width), colat.shape)

    def interpolate(self, x: torch.Tensor, colat: object, lon: object) -> torch.Tensor:
        """Sample ``x`` of shape ``(B, C, H, W)`` at points on the sphere, bilinearly.

        See :meth:`interpolation_table` for the scheme. At pixel centres the pixel values
        come back exactly. Differentiable in ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C, H, W)``, floating point.
        colat, lon : array_like
            Broadcastable arrays of colatitudes and longitudes (radians).

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, *shape)``, with ``shape`` the broadcast shape of ``colat`` and ``lon``.

        Examples
        --------
        >>> x = torch.arange(8.0).view(1, 1, 2, 4)
        >>> GRID.interpolate(x, np.pi / 4, [0.0, np.pi / 4])
        tensor([[[0.0000, 0.5000]]])
        """
        x = self.check(x)
        if not x.is_floating_point():
            raise ShapeError(f"x must have a floating-point dtype to be interpolated, got {x.dtype}")
        table = self.interpolation_table(self.spatial_shape(x), colat, lon)
        return gather(x, table, *table.on(x.device))

    # -- symmetries ---------------------------------------------------------------------

    def roll_longitude(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        r"""Rotate ``x`` about the pole by ``steps`` pixels, :math:`2\pi\,\text{steps}/W`, exactly.

        With :math:`R = R_z(\alpha)`, :math:`(R\cdot x)(v) = x(R^\top v)`, so column ``j`` of
        the result is column ``j - steps`` of ``x``: a circular shift along ``W``.

        >>> GRID.roll_longitude(torch.arange(4.0).view(1, 1, 1, 4), 1)
        tensor([[[[3., 0., 1., 2.]]]])
        """
        x = self.check(x)
        steps = check_int("steps", steps)
        return torch.roll(x, steps, dims=-1)


def _snap(coordinate: np.ndarray) -> np.ndarray:
    nearest = np.rint(coordinate)
    return np.where(np.abs(coordinate - nearest) < _SNAP, nearest, coordinate)


GRID = EquirectGrid()


def pad(x: torch.Tensor, widths: object, mode: str = "sphere", value: float = 0.0) -> torch.Tensor:
    """Pad an equirect tensor ``(B, C, H, W)``; see the module docstring for the modes.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, H, W)``, ``W`` even.
    widths : int, pair or 4-tuple
        ``w``, ``(h, w)`` or ``(top, bottom, left, right)``; at most ``H`` (rows) and ``W``
        (columns).
    mode : str
        ``sphere`` (default), ``lon_circular``, or a planar mode.
    value : float
        The fill value for ``constant``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, H + top + bottom, W + left + right)``.
    """
    return GRID.pad(x, widths, mode, value)


def roll_longitude(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Rotate ``x`` ``(B, C, H, W)`` about the pole by ``steps * 2 pi / W``, exactly.

    See :meth:`EquirectGrid.roll_longitude`.
    """
    return GRID.roll_longitude(x, steps)


def interpolate(x: torch.Tensor, colat: object, lon: object) -> torch.Tensor:
    """Bilinear samples ``(B, C, *shape)`` of ``x`` ``(B, C, H, W)`` at points.

    See :meth:`EquirectGrid.interpolate`.
    """
    return GRID.interpolate(x, colat, lon)
