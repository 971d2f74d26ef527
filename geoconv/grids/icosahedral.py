r"""The icosahedral grid: the subdivided icosahedron in 5 charts, layout ``(B, C, 5, n, 2n)``, ``n = 2^r``.

The atlas of Cohen, Weiler, Kicanaoglu & Welling, "Gauge Equivariant Convolutional Networks
and the Icosahedral CNN" (ICML 2019): the icosahedron cut into 5 charts, each a strip of
4 of its 20 triangles from the north pole to the south pole, and every triangle
subdivided ``r`` times. The signal lives on the vertices, and in each chart the vertices
form a planar grid of ``2^r x 2^(r+1)`` pixels whose 6 mesh neighbours are 6 of the 8
neighbours of a 3x3 window: a planar operator runs on it after the ``ico`` padding.

Vertices
--------
The icosahedron has a vertex at each pole, ``N = +z`` and ``S = -z``, an upper ring
:math:`U_k` at colatitude :math:`\arctan 2` (63.43°) and longitude :math:`72° k`, and a
lower ring :math:`L_k` at colatitude :math:`\pi - \arctan 2` and longitude
:math:`72° k + 36°`. Level ``r`` (``size`` in the grid's API) subdivides it ``r`` times:
each triangle becomes four, the new vertices the normalised midpoints of its edges (the
"icosphere"), so there are :math:`10 \cdot 4^r + 2` vertices. ``r = 0`` is valid: the
icosahedron itself, 5 charts of ``1 x 2`` pixels; a negative or non-integer level is not.

Charts and orientation
----------------------
Chart ``k`` holds the triangles :math:`(N, U_k, U_{k+1})`, :math:`(U_k, U_{k+1}, L_k)`,
:math:`(U_{k+1}, L_k, L_{k+1})` and :math:`(L_k, L_{k+1}, S)` (``k + 1`` modulo 5),
unfolded into the parallelogram :math:`U_k + \sigma e + \tau g`, :math:`\sigma \in [0, 1]`,
:math:`\tau \in [0, 2]`, with :math:`e` the edge :math:`U_k \to N` and :math:`g` the
edge :math:`U_k \to L_k`. Pixel ``(i, j)`` is the vertex at :math:`\sigma = (n - 1 - i)/n`,
:math:`\tau = j / n`. In the tensor the parallelogram is a rectangle of two squares, each
cut by a diagonal from its bottom-left to its top-right corner::

      N (-1, 0)           U_{k+1} (-1, n)        L_{k+1} (-1, 2n)
         +----------------------+----------------------+   row -1: chart k+1's
         | N, U_k,            / |  U_{k+1}, L_k,     / |   pixels, N a pole
         | U_{k+1}          /   |  L_{k+1}         /   |
         |                /     |                /     |
         |              /       |              /       |
         |            /  U_k,   |            /  L_k,   |
         |          /  U_{k+1}, |          /  L_{k+1}, |
         |        /        L_k  |        /          S  |
         +----------------------+----------------------+   row n - 1
      U_k (n-1, 0)          L_k (n-1, n)           S (n-1, 2n): a pole, in chart k+1's column

Each chart runs from the north pole (top left) to the south pole (bottom right): the last
row follows :math:`U_k \to L_k \to S` southward, the first row runs one step inside
:math:`N \to U_{k+1} \to L_{k+1}`. Seen from outside the sphere the image is not mirrored
(as an equirect image is not). A chart owns its closed parallelogram less the top side
(row -1, which is chart ``k + 1``'s column 0 and last row) and the right edge (column
``2n``, chart ``k + 1``'s last row) and less the poles: the :math:`10 \cdot 4^r` vertices
other than the poles are one pixel each. The turn by 72° about the pole moves chart ``k``
onto chart ``k + 1``.

The mesh neighbours of pixel ``(i, j)`` are the pixels ``(i +- 1, j)``, ``(i, j +- 1)``,
``(i - 1, j + 1)`` and ``(i + 1, j - 1)``: of a 3x3 kernel, the taps ``(0, 0)`` and
``(2, 2)`` are not neighbours (:attr:`IcosahedralGrid.hex_mask`; ``conv`` with
``hexagonal=True`` uses it). The 12 vertices of the icosahedron have only 5 neighbours.

**The poles.** ``N`` and ``S`` are no pixels. Wherever a value at a pole is needed (in
the padding, the interpolation), it is the mean of its 5 neighbours, the pixels
``(k, 0, 0)`` (``N``) and ``(k, n - 1, 2n - 1)`` (``S``) of the 5 charts; the pole's area
goes to those 5 pixels, a fifth each (:meth:`IcosahedralGrid.pixel_areas`).

Padding modes
-------------
``ico`` (the default)
    A padded pixel is the vertex that lies there when the icosahedron is unfolded into the
    chart's plane: its faces are laid flat across their edges, one edge at a time, starting
    from the chart. On the triangle beyond each edge of the chart this is the neighbouring
    chart: below the chart (rows ``i >= n``, ``j < n``) chart ``k - 1`` continues the
    strip without a turn, pixel ``(i, j)`` being its pixel ``(i - n, j + n)``, and above it
    (``j >= n``) chart ``k + 1``'s ``(i + n, j - n)``; across the edges at the poles the
    neighbour is turned by 60° about the pole: ``(i, j)`` is chart ``k + 1``'s
    ``(i + j, -1 - i)`` above (``j <= n``), chart ``k - 1``'s ``(-1 - j, i + j + 1)`` on
    the left, chart ``k + 1``'s ``(3n - 1 - j, i + j + 1 - n)`` on the right and chart
    ``k - 1``'s ``(i + j - 2n, 3n - 1 - i)`` below (``j > n``). Further out the unfolding
    goes on face by face. Widths up to the chart size per side (``n`` rows, ``2n`` columns).

    **Corners.** At the 6 vertices of the icosahedron on a chart's border the plane has
    room for 6 triangles and the sphere has 5, so the unfoldings around either side of the
    vertex put different vertices on the same padded pixel. **Policy:** the unfoldings
    that cross the fewest edges win; where they still differ, the padded pixel is the mean
    of their vertices. With width 1 that is one pixel per chart, the bottom-left corner
    ``(n, -1)`` beside :math:`U_k`: the mean of chart ``k - 1``'s pixels ``(0, n - 1)``
    and ``(0, n)``, :math:`U_k`'s two neighbours outside the chart; the top-left and
    bottom-right corners are chart ``k + 3``'s pixels ``(0, 0)`` and ``(n - 1, 2n - 1)``
    (the poles' neighbours two turns away), the top-right corner is :math:`L_{k+1}`, and
    ``(-1, 0)`` and ``(n - 1, 2n)`` are the poles. Wider, the corner blocks at the poles
    and the wedges beside :math:`U_{k+1}` and :math:`L_k` are such means. The rule is the
    same for every chart, so the padding commutes exactly with the 72° turn about the pole
    (:meth:`IcosahedralGrid.turn_about_pole`). Tables with means (every table that pads
    a pole) need a floating-point tensor.
``zeros``, ``constant``, ``reflect``, ``replicate``, ``circular``
    The planar modes, each chart on its own, as baselines (:mod:`geoconv.grids.planar`).

Conversions
-----------
:meth:`IcosahedralGrid.interpolate` is linear on the mesh triangle that holds a point
(barycentric in the triangle's plane, the point projected centrally onto it; second order:
the error falls about 4x per level). :func:`geoconv.grids.convert` and :func:`to_equirect`
/ :func:`from_equirect` use it, and the other grids' interpolation at this grid's pixel
centres the other way.

This module registers the grid ``icosahedral`` on import, as a plugin would; geoconv
declares it in its entry-point group ``geoconv.grids``.

Public names: :class:`IcosahedralGrid`, :data:`GRID`, :data:`HEX_OFFSETS`, :func:`pad`,
:func:`from_equirect`, :func:`to_equirect`.

Examples
--------
>>> import torch
>>> from geoconv.grids import get_grid
>>> grid = get_grid("icosahedral")
>>> x = torch.randn(grid.shape(2, 3, 2))    # r = 2: 5 charts of 4 x 8 pixels
>>> x.shape, grid.pad(x, 1).shape
(torch.Size([2, 3, 5, 4, 8]), torch.Size([2, 3, 5, 6, 10]))
>>> bool(torch.equal(grid.turn_about_pole(x, 1), torch.roll(x, 1, dims=2)))
True
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids import _icosahedral_geometry as geometry
from geoconv.grids._gather import TABLES, PadTable, gather
from geoconv.grids.base import PadWidths, check_batch_channels, check_pad_widths
from geoconv.grids.registry import GRIDS, get_grid, register_grid
from geoconv.grids.sphere import SphericalGrid, angles_to_vectors, vectors_to_angles

__all__ = ["GRID", "HEX_OFFSETS", "IcosahedralGrid", "from_equirect", "pad", "to_equirect"]

_NAME = "icosahedral"
_LAYOUT = "(B, C, 5, n, 2n)"

HEX_OFFSETS: tuple[tuple[int, int], ...] = ((-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0))
"""The 6 mesh neighbours of a pixel as ``(row, column)`` offsets in its chart."""


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


class IcosahedralGrid(SphericalGrid):
    """The icosahedral grid, layout ``(B, C, 5, n, 2n)`` with ``n = 2^r``; ``size`` is the level ``r``.

    See the module docstring for the charts, their orientation, the poles and the ``ico``
    padding.

    Examples
    --------
    >>> GRID.shape(2, 3, 3), GRID.size_label(3)
    ((2, 3, 5, 8, 16), 'r 3')
    >>> GRID.vectors(0)[0, 0]   # r = 0: chart 0 holds U_0 and L_0
    array([[ 0.89442719,  0.        ,  0.4472136 ],
           [ 0.7236068 ,  0.52573111, -0.4472136 ]])
    """

    name = _NAME
    layout = _LAYOUT
    faces = 5
    own_modes = ("ico",)
    default_size = 3

    # -- layout -------------------------------------------------------------------------

    def check_size(self, size: object) -> int:
        """Validate the level ``r``: an integer >= 0 (``r = 0`` is the icosahedron, 10 pixels)."""
        return check_int(f"size (the subdivision level r) for grid {_NAME!r}", size, minimum=0)

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, 5, 2^r, 2^(r+1))``: ``size`` is the level ``r``."""
        batch, channels = check_batch_channels(batch, channels)
        n = 2 ** self.check_size(size)
        return (batch, channels, 5, n, 2 * n)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a ``(B, C, 5, n, 2n)`` tensor, ``C >= 1``, ``n`` a power of two; else raise."""
        x = self.check_rank(x, name)
        shape = tuple(x.shape)
        if shape[2] != 5 or shape[1] == 0 or self.face_problem(shape[3], shape[4]) is not None:
            n = 2 ** max(0, int(shape[3]).bit_length() - 1)
            raise ShapeError(
                f"{name} on grid {_NAME!r} must have shape {_LAYOUT} = (B, C, 5, 2^r, 2^(r+1)) with C >= 1 (the 5 "
                f"charts in dim -3, r >= 0), e.g. {(shape[0], max(shape[1], 1), 5, n, 2 * n)}; got shape {shape}"
            )
        return x

    def face_problem(self, height: int, width: int) -> str | None:
        """Charts ``n x 2n`` with ``n = 2^r``; see :meth:`Grid.face_problem`.

        >>> GRID.face_problem(4, 8) is None, GRID.face_problem(3, 6)
        (True, 'charts n x 2n with n = 2^r a power of two')
        """
        if not (_is_power_of_two(height) and width == 2 * height):
            return "charts n x 2n with n = 2^r a power of two"
        return super().face_problem(height, width)

    def size_of(self, x: torch.Tensor) -> int:
        """The level ``r`` of a checked tensor: ``log2`` of its chart height."""
        return int(x.shape[-2]).bit_length() - 1

    def size_label(self, size: object) -> str:
        """``"r R"``: the subdivision level, as the icosahedral CNN names a resolution."""
        return f"r {int(self.shape_at(1, 1, size)[-2]).bit_length() - 1}"

    # -- padding ------------------------------------------------------------------------

    def _build_table(self, spatial: tuple[int, ...], widths: PadWidths, mode: str) -> PadTable:
        return self.pad_table(int(spatial[-2]).bit_length() - 1, widths, mode)

    def pad_table(self, size: int, widths: PadWidths, mode: str) -> PadTable:
        """The gather table of ``ico`` padding (see the module docstring).

        Parameters
        ----------
        size : int
            The level ``r``.
        widths : (int, int, int, int)
            ``(top, bottom, left, right)``: top and bottom at most ``n``, left and right at
            most ``2n``.
        mode : str
            ``"ico"``.

        Returns
        -------
        PadTable
            Source ``(5, n, 2n)``, target ``(5, n + top + bottom, 2n + left + right)``. A pole
            is 5 taps of weight 1/5, a corner mean 2 of weight 1/2; plain copies are one tap
            of weight 1 (the others weight 0).

        Examples
        --------
        >>> table = GRID.pad_table(1, (1, 1, 1, 1), "ico")
        >>> table.target_shape, table.index.shape[-1]
        ((5, 4, 6), 5)
        >>> table.index[0, 0, 1], table.weight[0, 0, 1]   # pixel (-1, 0) of chart 0: the north pole
        (array([ 0,  8, 16, 24, 32]), array([0.2, 0.2, 0.2, 0.2, 0.2]))
        """
        level = self.check_size(size)
        widths = check_pad_widths(widths)
        if mode not in self.own_modes:
            raise ParameterError(f"pad_table of grid {_NAME!r} builds the modes {self.own_modes}, got {mode!r}")
        n = 2**level
        if max(widths[:2]) > n or max(widths[2:]) > 2 * n:
            raise ParameterError(
                f"pad widths (top, bottom, left, right)={widths} must be at most the chart size {n}x{2 * n}"
            )
        table = geometry.pad_table(level, widths)  # cached: a copy, so that a caller cannot change the cache
        weight = None if table.weight is None else table.weight.copy()
        return PadTable(table.index.copy(), weight, table.source_shape, table.target_shape)

    def check_pad_input(self, x: torch.Tensor, widths: PadWidths, mode: str) -> None:
        """Refuse integer tensors where the padding averages (the poles, the corners beside U_k)."""
        exact = x.is_floating_point() or x.is_complex()
        level = int(x.shape[-2]).bit_length() - 1
        if mode == "ico" and not exact and geometry.pad_table(level, widths).weight is not None:
            raise ShapeError(
                f"ico padding with widths {widths} averages pixels (a pole is the mean of its 5 neighbours) "
                f"and needs a floating-point x, got dtype {x.dtype}; cast x (x.double() holds integers exactly)"
            )

    # -- geometry -----------------------------------------------------------------------

    def vectors(self, size: int) -> np.ndarray:
        """Unit vectors of the pixels, ``(5, n, 2n, 3)`` (float64, a fresh array)."""
        return geometry.pixel_vectors(self.check_size(size))

    def centres(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude and longitude (radians) of the pixels, each ``(5, n, 2n)``.

        >>> colat, lon = GRID.centres(0)
        >>> np.round(np.degrees(colat[:, 0]), 2), np.round(np.degrees(lon[:, 0]))
        (array([[ 63.43, 116.57],
               [ 63.43, 116.57],
               [ 63.43, 116.57],
               [ 63.43, 116.57],
               [ 63.43, 116.57]]), array([[  0.,  36.],
               [ 72., 108.],
               [144., 180.],
               [216., 252.],
               [288., 324.]]))
        """
        colat, lon = vectors_to_angles(self.vectors(size))
        # A vertex on the meridian 0 with y = -1e-17 (round-off) has mod(-1e-17, 2 pi) = 2 pi: it is 0.
        return colat, np.where(lon >= 2 * np.pi, 0.0, lon)

    def interpolation_table(self, size: int, colat: object, lon: object) -> PadTable:
        """Linear interpolation on the mesh at points, as a 7-tap gather table over the charts.

        See :meth:`interpolate`; source ``(5, n, 2n)``, target the broadcast shape of
        ``colat`` and ``lon``.
        """
        colat, lon = _check_points(colat, lon)
        return geometry.interpolation_table(self.check_size(size), angles_to_vectors(colat, lon))

    def interpolate(self, x: torch.Tensor, colat: object, lon: object) -> torch.Tensor:
        r"""Sample ``x`` ``(B, C, 5, n, 2n)`` at points on the sphere, linearly on the mesh triangles.

        The triangle holding a point is found level by level from the icosahedron's face;
        the weights are the barycentric coordinates of the point's central projection onto
        the triangle's plane, :math:`\lambda_A \propto \det(p, B, C)` and cyclically. A pole
        corner is the mean of its 5 neighbours. At pixel centres the pixel values come back
        (to round-off). Tables are cached per level and points; differentiable in ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C, 5, n, 2n)``, floating point.
        colat, lon : array_like
            Broadcastable arrays of colatitudes and longitudes (radians), finite.

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, *shape)``, ``shape`` the broadcast shape of ``colat`` and ``lon``.

        Examples
        --------
        >>> x = torch.arange(10.0).view(1, 1, 5, 1, 2)   # r = 0: U_k = 2k, L_k = 2k + 1
        >>> GRID.interpolate(x, [np.arctan(2), 0.0], [np.radians(72), 0.0])   # U_1 and the north pole
        tensor([[[2., 4.]]])
        """
        x = self.check(x)
        if not x.is_floating_point():
            raise ShapeError(f"x must have a floating-point dtype to be interpolated, got {x.dtype}")
        colat, lon = _check_points(colat, lon)
        level = self.size_of(x)
        digest = hashlib.sha1(colat.tobytes() + b"|" + lon.tobytes(), usedforsecurity=False).hexdigest()
        key = (self.name, "interpolate", level, colat.shape, digest)
        entry = TABLES.get(key, x.device, lambda: self.interpolation_table(level, colat, lon))
        return gather(x, *entry)

    # -- the grid's catalogue (see SphericalGrid) ------------------------------------------

    def pixel_areas(self, size: object) -> np.ndarray:
        r"""Solid angles ``(5, n, 2n)``: a third of each mesh triangle at a pixel, plus a fifth of a pole's share.

        Each spherical triangle's area (Van Oosterom & Strackee) is split between its 3
        corners; a pole's third-shares go to its 5 neighbours, whose mean it is. They sum to
        :math:`4\pi`.

        >>> round(float(GRID.pixel_areas(2).sum() / np.pi), 12)
        4.0
        """
        return geometry.dual_areas(self.check_size(size)).copy()

    def pole_turns(self, size: object) -> int:
        """5: the turns by 72° about the pole (:meth:`turn_about_pole`)."""
        return 5

    def turn_about_pole(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        r"""Rotate ``x`` by ``steps`` turns of 72° about the pole (longitude + ``steps`` · 72°), exactly.

        With :math:`(R \cdot x)(v) = x(R^\top v)`: the turn moves chart ``k`` onto chart
        ``k + 1`` pixel for pixel, so chart ``k`` of the result is chart ``k - steps`` of ``x``
        (``torch.roll`` along dim -3). ``ico`` padding commutes with it exactly.

        >>> GRID.turn_about_pole(torch.arange(5.0).view(1, 1, 5, 1, 1).expand(1, 1, 5, 1, 2), 1)[0, 0, :, 0, 0]
        tensor([4., 0., 1., 2., 3.])
        """
        x = self.check(x)
        return torch.roll(x, check_int("steps", steps) % 5, dims=-3)

    @property
    def hex_offsets(self) -> tuple[tuple[int, int], ...]:
        """:data:`HEX_OFFSETS`: the 6 mesh neighbours of a pixel as ``(row, column)`` offsets."""
        return HEX_OFFSETS

    @property
    def hex_mask(self) -> np.ndarray:
        """The 3x3 kernel taps on mesh neighbours (and the centre): all but ``(0, 0)`` and ``(2, 2)``.

        >>> GRID.hex_mask.astype(int)
        array([[0, 1, 1],
               [1, 1, 1],
               [1, 1, 0]])
        """
        mask = np.zeros((3, 3), dtype=bool)
        mask[1, 1] = True
        for di, dj in HEX_OFFSETS:
            mask[1 + di, 1 + dj] = True
        return mask


def _check_points(colat: object, lon: object) -> tuple[np.ndarray, np.ndarray]:
    colat, lon = np.broadcast_arrays(np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    if not (np.isfinite(colat).all() and np.isfinite(lon).all()):
        raise ParameterError("colat and lon must be finite (radians)")
    return colat, lon


def _registered() -> bool:
    # This module imported a second time (importlib.reload, a second import path) defines a new
    # class: it replaces the first one's registration rather than colliding with it.
    existing = GRIDS.get(_NAME, None)
    return existing is not None and type(existing).__module__ == __name__


register_grid(_NAME, IcosahedralGrid, override=_registered())
GRID: IcosahedralGrid = get_grid(_NAME)  # type: ignore[assignment]


def pad(x: torch.Tensor, widths: object, mode: str = "ico", value: float = 0.0) -> torch.Tensor:
    """Pad the charts of ``x`` ``(B, C, 5, n, 2n)``; see the module docstring for the modes.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, 5, n, 2n)``; floating point for ``ico`` padding (it averages).
    widths : int, pair or 4-tuple
        ``w``, ``(h, w)`` or ``(top, bottom, left, right)``: top and bottom at most ``n``,
        left and right at most ``2n``.
    mode : str
        ``ico`` (default) or a planar mode (each chart on its own).
    value : float
        The fill value for ``constant``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, 5, n + top + bottom, 2n + left + right)``.

    Examples
    --------
    >>> x = torch.arange(10.0).view(1, 1, 5, 1, 2)   # r = 0: U_k = 2k, L_k = 2k + 1
    >>> pad(x, 1)[0, 0, 0]   # chart 0 amid its neighbours: N = mean of the U_k, S = mean of the L_k
    tensor([[6.0000, 4.0000, 2.0000, 3.0000],
            [8.0000, 0.0000, 1.0000, 5.0000],
            [8.5000, 9.0000, 9.0000, 7.0000]])
    """
    return GRID.pad(x, widths, mode, value)


def to_equirect(x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    r"""Resample ``x`` ``(B, C, 5, n, 2n)`` onto the equirect grid ``(B, C, H, W)``, linearly on the mesh.

    Output pixel ``(i, j)`` is :meth:`IcosahedralGrid.interpolate` at colatitude
    :math:`(i + \frac12)\pi/H` and longitude :math:`2\pi j/W`; ``W = 2H`` by default.

    >>> y = to_equirect(torch.ones(GRID.shape(1, 2, 2)), 8)
    >>> y.shape, bool(torch.allclose(y, torch.ones_like(y)))
    (torch.Size([1, 2, 8, 16]), True)
    """
    return GRID.to_equirect(x, height, width)


def from_equirect(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resample an equirect map ``(B, C, H, W)`` onto the icosahedral grid at level ``size``.

    Each pixel is the equirect map interpolated bilinearly
    (:meth:`geoconv.grids.equirect.EquirectGrid.interpolate`) at its centre.

    >>> y = from_equirect(torch.ones(1, 2, 8, 16), 2)
    >>> y.shape, bool(torch.allclose(y, torch.ones_like(y)))
    (torch.Size([1, 2, 5, 4, 8]), True)
    """
    return GRID.from_equirect(x, GRID.check_size(size))
