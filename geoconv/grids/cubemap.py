r"""The cube map: six square faces, layout ``(B, C, 6, F, F)``.

Faces and orientation
---------------------
The sphere is the central (gnomonic) projection of the cube :math:`[-1, 1]^3`. Face ``f``
has a centre (outward normal) :math:`n_f`, a column direction :math:`e_f` ("right") and a
row direction :math:`d_f` ("down"); pixel ``(r, c)`` of a face of side ``F`` sits at the
cell centre

.. math::

    a = \frac{2c + 1}{F} - 1, \quad b = \frac{2r + 1}{F} - 1, \qquad
    v_{f,r,c} = \frac{n_f + a\, e_f + b\, d_f}{\lVert n_f + a\, e_f + b\, d_f \rVert}.

====  ======  ===============  ========  =========  =============================
face  centre  lon / colat      right e   down d     edges: top, bottom, left, right
====  ======  ===============  ========  =========  =============================
0     +x      lon 0°           +y        -z         4, 5, 3, 1
1     +y      lon 90°          -x        -z         4, 5, 0, 2
2     -x      lon 180°         -y        -z         4, 5, 1, 3
3     -y      lon 270°         +x        -z         4, 5, 2, 0
4     +z      north pole       +y        +x         2, 0, 3, 1
5     -z      south pole       +y        -x         0, 2, 3, 1
====  ======  ===============  ========  =========  =============================

The four equatorial faces are upright: rows grow southward (row 0 is nearest the north
pole), columns grow eastward (longitude increasing, as on the equirect grid). The polar
faces are face 0's neighbours folded flat: face 4 sits on top of face 0 and face 5 hangs
below it, columns aligned with face 0's (``e = +y`` on all three), so the unfolded cube is

::

    +-----+
    |  4  |                      4: north (+z), bottom row touches face 0's top row
    +-----+-----+-----+-----+
    |  0  |  1  |  2  |  3  | -> (face 3's right edge is face 0's left edge)
    +-----+-----+-----+-----+
    |  5  |                      5: south (-z), top row touches face 0's bottom row
    +-----+

and every face has the same handedness, :math:`e_f \times d_f = -n_f`: each face image is
the sphere seen from outside (as an equirect image is, with longitude growing to the
right); a camera at the centre sees it mirrored. Across each of the 12 edges a
neighbour's image is therefore a rotation (``rot90``, never a mirror image) of an image
in this face's frame: face 1's top edge is face 4's right column, face 2's top edge is
face 4's top row (upside down), and so on (the table's last column).

Padding modes
-------------
``cube`` (the default; Cheng et al., CVPR 2018)
    Beyond each edge lies the neighbouring face, unfolded across the shared edge into this
    face's plane: the neighbour's pixels at distance ``k`` from the shared edge fill the
    padded row (or column) at distance ``k`` outside this face, rotated into this face's
    frame. (The unfolding, not the central projection of the extended plane, which would
    squeeze the neighbour and repeat its first rows.) Widths ``0..F`` per side,
    independently.

    **Corners.** Where three faces meet, the padded corner block has no face behind it.
    Its pixel at ``i`` rows above and ``j`` columns left of the face's corner (both from 1)
    is the average of the two pixels that continue the two adjacent edge paddings into
    the corner: the left band's pixel ``j`` rows down, ``i`` columns out, and the top
    band's pixel ``j`` rows up, ``i`` columns in, i.e. the corner position rotated by
    :math:`\pm 90°` about the cube vertex onto the two bands (likewise at the other three
    corners). The rule treats both neighbours alike, so padding commutes exactly with
    every symmetry of the cube, the 90° turns of :meth:`CubemapGrid.quarter_turn`
    included. Tables with a corner block are 2-tap gathers with weights ½.
``zeros``, ``constant``, ``reflect``, ``replicate``, ``circular``
    The planar modes, each face on its own, as baselines (:mod:`geoconv.grids.planar`).

Conversions
-----------
:meth:`CubemapGrid.interpolate` and :func:`to_equirect` are bilinear in the plane of the
face a point falls on, from that face's pixel centres and one ring of nodes beyond its
edges that hold the neighbouring faces' values moved to the nodes' own positions. The
result is continuous on the whole sphere and second-order accurate right up to the
edges and vertices (details in :meth:`CubemapGrid.interpolate`).
:func:`from_equirect` samples the equirect grid bilinearly
(:meth:`geoconv.grids.equirect.EquirectGrid.interpolate`) at the cube's pixel centres.

Public names: :class:`CubemapGrid`, :data:`GRID`, :func:`pad`, :func:`from_equirect`,
:func:`to_equirect`.

Examples
--------
>>> import torch
>>> from geoconv.grids import cubemap
>>> x = torch.arange(6.0).view(1, 1, 6, 1, 1)   # one pixel per face, valued by face index
>>> cubemap.pad(x, 1)[0, 0, 0]                    # face 0 and its neighbours 4, 5, 3, 1
tensor([[3.5000, 4.0000, 2.5000],
        [3.0000, 0.0000, 1.0000],
        [4.0000, 5.0000, 3.0000]])
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from geoconv._checks import check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._gather import TABLES, PadTable, gather
from geoconv.grids.base import PadWidths, check_batch_channels, check_pad_widths
from geoconv.grids.sphere import SphericalGrid, angles_to_vectors, equirect_centres, vectors_to_angles

__all__ = ["GRID", "CubemapGrid", "from_equirect", "pad", "to_equirect"]

# The face frames of the table in the module docstring: centre n, right e, down d (integers,
# so that the padding tables are built in exact integer arithmetic).
_NORMAL = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64)
_RIGHT = np.array([[0, 1, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=np.int64)
_DOWN = np.array([[0, 0, -1], [0, 0, -1], [0, 0, -1], [0, 0, -1], [1, 0, 0], [-1, 0, 0]], dtype=np.int64)
# The face whose centre is +-axis: _FACE_OF[axis, positive].
_FACE_OF = np.array([[2, 0], [3, 1], [5, 4]], dtype=np.int64)

_LAYOUT = "(B, C, 6, F, F)"

# Sample positions within this many pixels of a pixel centre are taken as that centre, so
# that interpolating at the grid's own centres returns the pixel values exactly.
_SNAP = 1e-9


def _face_of(points: np.ndarray) -> np.ndarray:
    """The face that points ``(..., 3)`` project onto: the one of their largest coordinate (ties: x, y, z)."""
    axis = np.argmax(np.abs(points), axis=-1)
    value = np.take_along_axis(points, axis[..., None], -1)[..., 0]
    return _FACE_OF[axis, (value > 0).astype(np.int64)]


def _locate(points: np.ndarray, size: int) -> np.ndarray:
    r"""Flat pixel index ``f F^2 + r F + c`` of integer points on the cube surface.

    ``points`` (..., 3) are in units of half a pixel (the cube is :math:`[-F, F]^3`) and
    are pixel centres: one coordinate is exactly :math:`\pm F`, the others strictly inside,
    of the parity of :math:`F + 1`.
    """
    face = _face_of(points)
    u = np.einsum("...k,...k->...", points, _RIGHT[face])
    v = np.einsum("...k,...k->...", points, _DOWN[face])
    return face * size * size + (v + size - 1) // 2 * size + (u + size - 1) // 2


def _sources(size: int, face: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The source pixels of pixels of the padded faces, by unfolding the cube.

    ``u`` and ``v`` are a padded pixel's column and row centre in units of half a pixel
    (:math:`u = 2c + 1 - F`, the face spans :math:`[-F, F]`). A point beyond one edge, by
    :math:`t = |v| - F`, is folded over that edge onto the neighbouring face: its
    component along :math:`n` becomes :math:`F - t` and its component across the edge
    :math:`\pm F`. A corner point is folded over both edges, in the two orders; the two
    results are the two candidates of the corner policy. Elsewhere both are the same.

    Returns
    -------
    first, second : numpy.ndarray
        Flat source indices into ``(6, F, F)``, broadcast shape of the inputs.
    """
    face, u, v = np.broadcast_arrays(face, u, v)
    out_u = np.maximum(np.abs(u) - size, 0)
    out_v = np.maximum(np.abs(v) - size, 0)
    sign_u, sign_v = np.sign(u), np.sign(v)
    n, e, d = _NORMAL[face], _RIGHT[face], _DOWN[face]

    def point(normal: np.ndarray, right: np.ndarray, down: np.ndarray) -> np.ndarray:
        return normal[..., None] * n + right[..., None] * e + down[..., None] * d

    # Across the top/bottom edge first, then across the left/right one; and the other way.
    first = point(
        size - out_v - out_u * (out_v == 0),
        np.where(out_u > 0, sign_u * size, u),
        np.where(out_v > 0, sign_v * (size - out_u), v),
    )
    second = point(
        size - out_u - out_v * (out_u == 0),
        np.where(out_u > 0, sign_u * (size - out_v), u),
        np.where(out_v > 0, sign_v * size, v),
    )
    return _locate(first, size), _locate(second, size)


def _check_size(name: str, size: object) -> int:
    return check_int(name, size, minimum=1)


class CubemapGrid(SphericalGrid):
    """The cube map, layout ``(B, C, 6, F, F)``.

    See the module docstring for the face order and orientation, the padding modes and
    the conversions.

    Examples
    --------
    >>> import torch
    >>> from geoconv.grids import get_grid
    >>> grid = get_grid("cubemap")
    >>> grid.shape(2, 3, 16)
    (2, 3, 6, 16, 16)
    >>> grid.pad(torch.zeros(grid.shape(1, 1, 4)), 1).shape
    torch.Size([1, 1, 6, 6, 6])
    """

    name = "cubemap"
    layout = _LAYOUT
    faces = 6
    own_modes = ("cube",)

    # -- layout -------------------------------------------------------------------------

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, 6, size, size)``: ``size`` is the face side ``F``."""
        batch, channels = check_batch_channels(batch, channels)
        size = self.check_size(size)
        return (batch, channels, 6, size, size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a ``(B, C, 6, F, F)`` tensor with ``C, F >= 1``, else raise ``ShapeError``."""
        x = check_tensor(x, ndim=5, name=name, layout=_LAYOUT)
        shape = tuple(x.shape)
        if shape[2] != 6:
            raise ShapeError(
                f"{name} on grid 'cubemap' must have shape {_LAYOUT} with the 6 cube faces in dim -3, "
                f"got shape {shape} with {shape[2]} in dim -3"
            )
        if shape[3] != shape[4]:
            raise ShapeError(
                f"{name} on grid 'cubemap' must have square faces, shape {_LAYOUT} = "
                f"{(shape[0], shape[1], 6, shape[3], shape[3])}, got shape {shape} with faces {shape[3]}x{shape[4]}"
            )
        if shape[1] == 0 or shape[3] == 0:
            raise ShapeError(f"{name} on grid 'cubemap' must have C >= 1 and F >= 1, got shape {shape}")
        return x

    def face_problem(self, height: int, width: int) -> str | None:
        """Square faces ``F x F``; see :meth:`Grid.face_problem`."""
        if height != width:
            return "square faces F x F"
        return super().face_problem(height, width)

    def size_of(self, x: torch.Tensor) -> int:
        """The face side ``F`` of ``x``."""
        return int(x.shape[-1])

    # -- padding ------------------------------------------------------------------------

    def pad_table(self, size: int, widths: PadWidths, mode: str) -> PadTable:
        """The gather table of ``cube`` padding (see the module docstring).

        Parameters
        ----------
        size : int
            The face side ``F``.
        widths : (int, int, int, int)
            ``(top, bottom, left, right)``, each at most ``F``.
        mode : str
            ``"cube"``.

        Returns
        -------
        PadTable
            Source ``(6, F, F)``, target ``(6, F + top + bottom, F + left + right)``. One tap
            when no corner block is padded, else two taps with weights ½ (a pixel outside
            the corner blocks has the same source in both). :meth:`pad` applies it as a
            1-tap gather plus the corner pixels, which is several times faster.

        Examples
        --------
        >>> table = GRID.pad_table(2, (1, 1, 0, 0), "cube")
        >>> table.target_shape, table.weight is None
        ((6, 4, 2), True)
        """
        size = self.check_size(size)
        top, bottom, left, right = check_pad_widths(widths)
        if mode not in self.own_modes:
            raise ParameterError(f"pad_table of grid 'cubemap' builds the modes {self.own_modes}, got {mode!r}")
        if max(top, bottom, left, right) > size:
            raise ParameterError(f"pad widths (top, bottom, left, right)={widths} must be at most the face size {size}")
        rows = np.arange(-top, size + bottom)
        cols = np.arange(-left, size + right)
        first, second = _sources(
            size,
            np.arange(6)[:, None, None],
            (2 * cols + 1 - size)[None, None, :],
            (2 * rows + 1 - size)[None, :, None],
        )
        source = (6, size, size)
        if (top or bottom) and (left or right):
            weight = np.full((*first.shape, 2), 0.5)
            return PadTable(np.stack([first, second], -1), weight, source, first.shape)
        return PadTable.from_index(first, source)

    # -- geometry -----------------------------------------------------------------------

    def vectors(self, size: int) -> np.ndarray:
        """Unit vectors of the pixel centres, shape ``(6, F, F, 3)`` (see the module docstring).

        >>> GRID.vectors(1)[:, 0, 0]
        array([[ 1.,  0.,  0.],
               [ 0.,  1.,  0.],
               [-1.,  0.,  0.],
               [ 0., -1.,  0.],
               [ 0.,  0.,  1.],
               [ 0.,  0., -1.]])
        """
        size = self.check_size(size)
        offsets = (2 * np.arange(size) + 1) / size - 1
        a = offsets[None, None, :, None]
        b = offsets[None, :, None, None]
        points = _NORMAL[:, None, None, :] + a * _RIGHT[:, None, None, :] + b * _DOWN[:, None, None, :]
        return points / np.linalg.norm(points, axis=-1, keepdims=True)

    def centres(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude and longitude (radians) of the pixel centres, each of shape ``(6, F, F)``.

        >>> colat, lon = GRID.centres(1)
        >>> np.degrees(colat[:, 0, 0]), np.degrees(lon[:4, 0, 0])
        (array([ 90.,  90.,  90.,  90.,   0., 180.]), array([  0.,  90., 180., 270.]))
        """
        return vectors_to_angles(self.vectors(size))

    def _gather_at(self, x: torch.Tensor, key: object, build) -> torch.Tensor:
        """Interpolate ``x`` with the two cached tables: the node padding, then the 4 bilinear taps."""
        if not x.is_floating_point():
            raise ShapeError(f"x must have a floating-point dtype to be interpolated, got {x.dtype}")
        size = self.size_of(x)
        nodes = TABLES.get((self.name, "nodes", size), x.device, lambda: _node_table(size))
        taps = TABLES.get((self.name, "interpolate", size, key), x.device, build)
        return gather(gather(x, *nodes), *taps)

    def interpolate(self, x: torch.Tensor, colat: object, lon: object) -> torch.Tensor:
        r"""Sample ``x`` of shape ``(B, C, 6, F, F)`` at points on the sphere, bilinearly.

        A point :math:`v` belongs to the face :math:`f` of its largest coordinate; its face
        coordinates are :math:`a = v\cdot e_f / v\cdot n_f`, :math:`b = v\cdot d_f / v\cdot n_f`,
        and it is interpolated bilinearly in :math:`(a, b)` from the four nearest nodes: the
        face's pixel centres and one ring of nodes beyond its edges, at
        :math:`\pm(1 + 1/F)`. A ring node beyond an edge is the neighbour's edge pixel (as
        in ``cube`` padding) plus a correction, the same seen from either face, that moves
        it from its unfolded position to its own to :math:`O(h^2)` (:math:`h` the pixel
        size). A ring node beyond a corner is the mean of the three pixels at the cube
        vertex minus the corrections of the two ring nodes beside it. So the interpolant is
        continuous on the whole sphere and second-order accurate everywhere, edges and
        vertices included: for a smooth field the error falls about 4x when ``F``
        doubles. At pixel centres the pixel values come back exactly. Tables are cached;
        differentiable in ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C, 6, F, F)``, floating point.
        colat, lon : array_like
            Broadcastable arrays of colatitudes and longitudes (radians), finite.

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, *shape)``, with ``shape`` the broadcast shape of ``colat`` and ``lon``.

        Examples
        --------
        >>> x = torch.arange(6.0).view(1, 1, 6, 1, 1)
        >>> GRID.interpolate(x, np.pi / 2, [0.0, np.pi / 2])   # the centres of faces 0 and 1
        tensor([[[0., 1.]]])
        """
        x = self.check(x)
        colat, lon = _check_points(colat, lon)
        digest = hashlib.sha1(colat.tobytes() + b"|" + lon.tobytes(), usedforsecurity=False).hexdigest()
        size = self.size_of(x)
        return self._gather_at(x, (colat.shape, digest), lambda: _tap_table(size, colat, lon))

    # -- symmetries ---------------------------------------------------------------------

    def quarter_turn(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        r"""Rotate ``x`` by ``k`` quarter turns about the pole (longitude + ``k`` · 90°), exactly.

        With :math:`R = R_z(k\pi/2)` and :math:`(R\cdot x)(v) = x(R^\top v)`, every pixel
        centre maps onto a pixel centre: equatorial face ``f`` takes the values of face
        ``f - k (mod 4)`` unchanged; the north face turns counter-clockwise in its image
        (``torch.rot90(·, k)``) and the south face clockwise (``torch.rot90(·, -k)``):
        face images are seen from outside the sphere, from where a turn about :math:`+z`
        is counter-clockwise above and clockwise below.

        ``cube`` padding with equal widths on all four sides commutes with this exactly.
        A planar convolution does only if its kernel is invariant under ``rot90``, because
        the polar faces turn in their own plane.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C, 6, F, F)``.
        k : int
            The number of quarter turns, any integer (taken modulo 4).

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, 6, F, F)``.

        Examples
        --------
        >>> x = torch.arange(6.0).view(1, 1, 6, 1, 1)
        >>> GRID.quarter_turn(x, 1).flatten()
        tensor([3., 0., 1., 2., 4., 5.])
        """
        x = self.check(x)
        k = check_int("k", k) % 4
        equator = torch.roll(x[:, :, :4], k, dims=2)
        north = torch.rot90(x[:, :, 4:5], k, dims=(-2, -1))
        south = torch.rot90(x[:, :, 5:6], -k, dims=(-2, -1))
        return torch.cat([equator, north, south], dim=2)


def _check_points(colat: object, lon: object) -> tuple[np.ndarray, np.ndarray]:
    colat, lon = np.broadcast_arrays(np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    if not (np.isfinite(colat).all() and np.isfinite(lon).all()):
        raise ParameterError("colat and lon must be finite (radians)")
    return colat, lon


def _pixel_coordinates(size: int, face: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of ``points`` (..., 3) centrally projected onto ``face``: centres at ``0..F-1``."""
    depth = np.einsum("...k,...k->...", points, _NORMAL[face])
    a = np.einsum("...k,...k->...", points, _RIGHT[face]) / depth
    b = np.einsum("...k,...k->...", points, _DOWN[face]) / depth
    return _snap((a + 1) * (size / 2) - 0.5), _snap((b + 1) * (size / 2) - 0.5)


def _clamped_taps(size: int, face: np.ndarray, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear taps ``(..., 4)`` on one face, coordinates clamped to its pixel centres."""
    col, row = np.clip(col, 0, size - 1), np.clip(row, 0, size - 1)
    col0, row0 = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    col1, row1 = np.minimum(col0 + 1, size - 1), np.minimum(row0 + 1, size - 1)
    frac_col, frac_row = col - col0, row - row0
    base = face * size * size
    index = np.stack(
        [base + row0 * size + col0, base + row0 * size + col1, base + row1 * size + col0, base + row1 * size + col1], -1
    )
    weight = np.stack(
        [(1 - frac_row) * (1 - frac_col), (1 - frac_row) * frac_col, frac_row * (1 - frac_col), frac_row * frac_col], -1
    )
    return index, weight


def _merge(index: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the weights of repeated sources in each row of ``(N, M)`` tables; drop zero weights.

    Returns ``(N, K)`` tables, ``K`` the most distinct sources any row has; shorter rows
    repeat their main source with weight 0.
    """
    rows = np.arange(len(index))[:, None]
    main = index[rows, np.argmax(weight, axis=1)[:, None]]
    index = np.where(weight != 0, index, main)
    order = np.argsort(index, axis=1, kind="stable")
    index, weight = index[rows, order], weight[rows, order]
    start = np.ones(index.shape, dtype=bool)
    start[:, 1:] = index[:, 1:] != index[:, :-1]
    run = np.cumsum(start, axis=1) - 1
    width = int(run.max()) + 1
    merged_index = np.broadcast_to(main, (len(index), width)).copy()
    merged_weight = np.zeros((len(index), width))
    merged_index[np.broadcast_to(rows, run.shape), run] = index
    np.add.at(merged_weight, (np.broadcast_to(rows, run.shape), run), weight)
    return merged_index, merged_weight


def _edge_correction(
    size: int, face: np.ndarray, row: np.ndarray, col: np.ndarray, across_col: bool
) -> tuple[np.ndarray, np.ndarray]:
    r"""The symmetric correction of a ring node beyond one edge, as ``(index, weight)`` with 10 taps.

    The node at pixel ``(row, col)`` lies beyond the column edge (``across_col``) or the
    row edge of ``face``, next to that face's edge pixel :math:`X_r`; unfolding puts the
    neighbour's edge pixel :math:`Y_r` there. Both sit at tangential coordinate :math:`b_r`
    along the edge, while the node's central projection onto the neighbour lies at
    :math:`b_r / (1 + 1/F)`. The correction is the mean, over the two faces, of the edge row
    interpolated at that coordinate minus the edge pixel,

    .. math::

        c_r = \tfrac12 \left(\hat Y(b_r') - Y_r\right) + \tfrac12 \left(\hat X(b_r') - X_r\right),
        \qquad b_r' = \frac{b_r}{1 + 1/F},

    which is the same number seen from either face (so the interpolant is continuous
    across the edge) and moves the node to its own position up to :math:`O(h^2)`.
    """
    a, b = (2 * col + 1) / size - 1, (2 * row + 1) / size - 1
    tangential = b if across_col else a
    step = np.sign(a if across_col else b).astype(np.int64)[..., None]
    neighbour = _face_of(step * (_RIGHT if across_col else _DOWN)[face])
    unfolded, _ = _sources(size, face, 2 * col + 1 - size, 2 * row + 1 - size)
    # The neighbour's edge row at b', by projecting the node and clamping its depth.
    points = _NORMAL[face] + a[..., None] * _RIGHT[face] + b[..., None] * _DOWN[face]
    taps_y = _clamped_taps(size, neighbour, *_pixel_coordinates(size, neighbour, points))
    # This face's edge row at b'.
    shrunk = (tangential / (1 + 1 / size) + 1) * (size / 2) - 0.5
    inside_col, inside_row = np.clip(col, 0, size - 1), np.clip(row, 0, size - 1)
    taps_x = _clamped_taps(size, face, inside_col if across_col else shrunk, shrunk if across_col else inside_row)
    own = face * size * size + inside_row * size + inside_col
    index = np.concatenate([unfolded[..., None], taps_y[0], taps_x[0], own[..., None]], -1)
    half = np.full((*own.shape, 1), 0.5)
    weight = np.concatenate([-half, taps_y[1] / 2, taps_x[1] / 2, -half], -1)
    return index, weight


def _node_table(size: int) -> PadTable:
    """The faces extended by one ring of interpolation nodes: ``(6, F, F) -> (6, F + 2, F + 2)``.

    A node beyond an edge is the neighbour's edge pixel (as in ``cube`` padding) plus the
    symmetric correction of :func:`_edge_correction`, which moves it to its own position
    up to :math:`O(h^2)`. A node beyond a corner is the mean :math:`W` of the three pixels
    at the cube vertex minus the corrections of its two adjacent ring nodes: exactly what
    makes the three faces' interpolants agree along the edges next to the vertex, and
    again second-order accurate (the three edge directions at a vertex sum to a radial
    vector, so the three corrections cancel in :math:`W`).
    """
    face = np.arange(6)[:, None, None]
    cells = np.arange(-1, size + 1)
    face, row, col = np.broadcast_arrays(face, cells[None, :, None], cells[None, None, :])
    beyond_col, beyond_row = (col < 0) | (col >= size), (row < 0) | (row >= size)
    corner = beyond_col & beyond_row
    inside_row, inside_col = np.clip(row, 0, size - 1), np.clip(col, 0, size - 1)
    own = face * size * size + inside_row * size + inside_col
    # Corrections of the ring nodes beside each node: across the column edge at this row
    # (the node itself on a column band, its neighbour on a corner), and likewise rows.
    # (Nodes with no such neighbour get the correction of the ring node at -1, weighted 0.)
    index_col, weight_col = _edge_correction(size, face, inside_row, np.where(beyond_col, col, -1), across_col=True)
    index_row, weight_row = _edge_correction(size, face, np.where(beyond_row, row, -1), inside_col, across_col=False)
    unfolded_col, _ = _sources(size, face, 2 * col + 1 - size, 2 * inside_row + 1 - size)
    unfolded_row, _ = _sources(size, face, 2 * inside_col + 1 - size, 2 * row + 1 - size)
    band_col, band_row = beyond_col & ~beyond_row, beyond_row & ~beyond_col
    # node = own [inside] | Y + c [band] | (X + Y + Z) / 3 - c_col - c_row [corner]
    own_weight = np.where(corner, 1 / 3, (~(beyond_col | beyond_row)).astype(np.float64))
    first_weight = np.where(corner, 1 / 3, band_col.astype(np.float64))
    second_weight = np.where(corner, 1 / 3, band_row.astype(np.float64))
    sign_col = np.where(corner, -1.0, band_col.astype(np.float64))[..., None]
    sign_row = np.where(corner, -1.0, band_row.astype(np.float64))[..., None]
    index = np.concatenate([own[..., None], unfolded_col[..., None], unfolded_row[..., None], index_col, index_row], -1)
    weight = np.concatenate(
        [
            own_weight[..., None],
            first_weight[..., None],
            second_weight[..., None],
            weight_col * sign_col,
            weight_row * sign_row,
        ],
        -1,
    )
    shape = (6, size + 2, size + 2)
    index, weight = _merge(index.reshape(-1, index.shape[-1]), weight.reshape(-1, weight.shape[-1]))
    return PadTable(index.reshape(*shape, -1), weight.reshape(*shape, -1), (6, size, size), shape)


def _tap_table(size: int, colat: np.ndarray, lon: np.ndarray) -> PadTable:
    """The 4 bilinear taps of each point into the node grid ``(6, F + 2, F + 2)``."""
    vectors = angles_to_vectors(colat, lon)
    face = _face_of(vectors)
    col, row = _pixel_coordinates(size, face, vectors)
    # Node coordinates run from -1 (the ring beyond the edge) to F; a point lies in [-1/2, F - 1/2].
    col0 = np.clip(np.floor(col), -1, size - 1).astype(np.int64)
    row0 = np.clip(np.floor(row), -1, size - 1).astype(np.int64)
    frac_col, frac_row = np.clip(col - col0, 0, 1), np.clip(row - row0, 0, 1)
    side = size + 2
    base = face * side * side + (row0 + 1) * side + (col0 + 1)
    index = np.stack([base, base + 1, base + side, base + side + 1], -1)
    weight = np.stack(
        [(1 - frac_row) * (1 - frac_col), (1 - frac_row) * frac_col, frac_row * (1 - frac_col), frac_row * frac_col], -1
    )
    return PadTable(index, weight, (6, side, side), colat.shape)


def _snap(coordinate: np.ndarray) -> np.ndarray:
    nearest = np.rint(coordinate)
    return np.where(np.abs(coordinate - nearest) < _SNAP, nearest, coordinate)


GRID = CubemapGrid()


def pad(x: torch.Tensor, widths: object, mode: str = "cube", value: float = 0.0) -> torch.Tensor:
    """Pad a cube map ``(B, C, 6, F, F)``; see the module docstring for the modes.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, 6, F, F)``.
    widths : int, pair or 4-tuple
        ``w``, ``(h, w)`` or ``(top, bottom, left, right)``, each in ``0..F``.
    mode : str
        ``cube`` (default) or a planar mode (each face on its own).
    value : float
        The fill value for ``constant``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, 6, F + top + bottom, F + left + right)``.

    Examples
    --------
    >>> x = torch.zeros(GRID.shape(2, 3, 8))
    >>> pad(x, (1, 2, 0, 3)).shape
    torch.Size([2, 3, 6, 11, 11])
    """
    return GRID.pad(x, widths, mode, value)


def to_equirect(x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    r"""Resample a cube map onto the equirect grid, bilinearly on each face.

    The output pixel ``(i, j)`` is the cube map interpolated (see
    :meth:`CubemapGrid.interpolate`) at colatitude :math:`(i + \frac12)\pi/H`
    and longitude :math:`2\pi j/W`.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, 6, F, F)``, floating point.
    height : int
        ``H >= 1``.
    width : int, optional
        ``W``, even; ``2 * height`` by default.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, H, W)``.

    Examples
    --------
    >>> x = torch.ones(GRID.shape(1, 2, 4))
    >>> y = to_equirect(x, 8)
    >>> y.shape, bool(torch.allclose(y, torch.ones_like(y)))
    (torch.Size([1, 2, 8, 16]), True)
    """
    x = GRID.check(x)
    colat, lon = equirect_centres(height, width)
    height, width = colat.shape[0], lon.shape[1]
    size = GRID.size_of(x)
    return GRID._gather_at(x, ("equirect", height, width), lambda: _tap_table(size, *np.broadcast_arrays(colat, lon)))


def from_equirect(x: torch.Tensor, face_size: int) -> torch.Tensor:
    """Resample an equirect map onto the cube map with faces ``face_size`` x ``face_size``.

    Each cube pixel is the equirect map interpolated bilinearly (see
    :meth:`geoconv.grids.equirect.EquirectGrid.interpolate`) at its centre.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, H, W)``, ``W`` even, floating point.
    face_size : int
        ``F >= 1``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, 6, F, F)``.

    Examples
    --------
    >>> x = torch.ones(1, 2, 8, 16)
    >>> y = from_equirect(x, 4)
    >>> y.shape, bool(torch.allclose(y, torch.ones_like(y)))
    (torch.Size([1, 2, 6, 4, 4]), True)
    """
    from geoconv.grids import get_grid

    face_size = _check_size("face_size", face_size)
    colat, lon = GRID.centres(face_size)
    return get_grid("equirect").interpolate(x, colat, lon)
