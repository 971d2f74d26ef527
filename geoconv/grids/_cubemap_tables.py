r"""Cube map tables: the face frames, the ``cube`` padding's sources and the interpolation nodes.

The numpy geometry behind :class:`~geoconv.grids.cubemap.CubemapGrid` (see the docstring of
:mod:`geoconv.grids.cubemap` for the face frames, the padding and the interpolation
scheme): which pixel a point on the cube is, where a padded pixel comes from when the cube
is unfolded across an edge, and the gather tables of the bilinear interpolation (one ring
of corrected nodes beyond the edges, then 4 taps). Everything here is numpy on the CPU.
"""

from __future__ import annotations

import numpy as np

from geoconv.errors import ParameterError
from geoconv.grids._gather import PadTable
from geoconv.grids.sphere import angles_to_vectors

# The face frames of the table in the module docstring: centre n, right e, down d (integers,
# so that the padding tables are built in exact integer arithmetic).
_NORMAL = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64)
_RIGHT = np.array([[0, 1, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=np.int64)
_DOWN = np.array([[0, 0, -1], [0, 0, -1], [0, 0, -1], [0, 0, -1], [1, 0, 0], [-1, 0, 0]], dtype=np.int64)
# The face whose centre is +-axis: _FACE_OF[axis, positive].
_FACE_OF = np.array([[2, 0], [3, 1], [5, 4]], dtype=np.int64)

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
