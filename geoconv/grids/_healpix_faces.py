r"""HEALPix face tables: flat maps <-> faces, and the ``healpix`` padding's geometry.

The pixel index tables behind :func:`~geoconv.grids.healpix.nest_to_faces`,
:func:`~geoconv.grids.healpix.ring_to_faces` and their inverses, the neighbour table
:data:`EDGES`, and the construction of the ``healpix`` padding's gather tables (see the
docstring of :mod:`geoconv.grids.healpix` for the face order, the orientation and the
corner policy). Everything here is numpy on the CPU, except :func:`_reindex`, which
gathers a tensor with a cached table. Import these names from :mod:`geoconv.grids.healpix`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._gather import TABLES, PadTable, gather
from geoconv.grids.base import PadWidths

__all__ = ["EDGES", "faces_to_nest", "faces_to_ring", "nest_to_faces", "ring_to_faces"]

EDGES: tuple[tuple[tuple[int, int], ...], ...] = (
    # (neighbour, quarter turns) across the edges i < 0 (SW), i >= n (NE), j < 0 (SE), j >= n (NW)
    ((4, 0), (1, 1), (5, 0), (3, 3)),  # 0: north polar faces
    ((5, 0), (2, 1), (6, 0), (0, 3)),  # 1
    ((6, 0), (3, 1), (7, 0), (1, 3)),  # 2
    ((7, 0), (0, 1), (4, 0), (2, 3)),  # 3
    ((11, 0), (0, 0), (8, 0), (3, 0)),  # 4: equatorial faces
    ((8, 0), (1, 0), (9, 0), (0, 0)),  # 5
    ((9, 0), (2, 0), (10, 0), (1, 0)),  # 6
    ((10, 0), (3, 0), (11, 0), (2, 0)),  # 7
    ((11, 1), (5, 0), (9, 3), (4, 0)),  # 8: south polar faces
    ((8, 1), (6, 0), (10, 3), (5, 0)),  # 9
    ((9, 1), (7, 0), (11, 3), (6, 0)),  # 10
    ((10, 1), (4, 0), (8, 3), (7, 0)),  # 11
)
"""The base faces across each edge: ``EDGES[f][side] = (neighbour, quarter turns)``.

``side`` is 0, 1, 2, 3 for the edges beyond ``i < 0``, ``i >= n``, ``j < 0``, ``j >= n``
(the SW, NE, SE, NW edges; padded by the widths ``top``, ``bottom``, ``left``, ``right``).
"""

_EDGE_ARRAY = np.array(EDGES, dtype=np.int64)  # (12, 4, 2)


# -- checks ----------------------------------------------------------------------------


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _check_nside(nside: object, name: str = "nside") -> int:
    nside = check_int(name, nside, minimum=1)
    if not _is_power_of_two(nside):
        raise ParameterError(f"{name} must be a power of two (1, 2, 4, 8, ...) for NESTED HEALPix, got {nside}")
    return nside


def _check_array(x: object, name: str, layout: str) -> torch.Tensor | np.ndarray:
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise ShapeError(f"{name} must be a torch.Tensor or a numpy.ndarray of shape {layout}, got {type(x).__name__}")
    return x


def _nside_of_flat(x: torch.Tensor | np.ndarray, name: str) -> int:
    """The nside of a flat map ``(..., 12 nside²)``, or raise with the expected lengths."""
    x = _check_array(x, name, "(..., 12 * nside**2)")
    length = int(x.shape[-1]) if x.ndim else -1
    nside = round(float(np.sqrt(max(length, 0) / 12)))
    if length < 12 or 12 * nside * nside != length or not _is_power_of_two(nside):
        below = 2 ** int(np.floor(np.log2(max(length, 12) / 12) / 2))
        raise ShapeError(
            f"{name} must be a flat HEALPix map of shape (..., 12 * nside**2) with nside a power of two "
            f"(last dim 12, 48, 192, 768, ...; e.g. {12 * below * below} or {48 * below * below}), "
            f"got shape {tuple(x.shape)}"
        )
    return nside


def _nside_of_faces(x: torch.Tensor | np.ndarray, name: str) -> int:
    """The nside of faces ``(..., 12, n, n)``, or raise with the expected shape."""
    x = _check_array(x, name, "(..., 12, n, n)")
    shape = tuple(x.shape)
    if len(shape) < 3 or shape[-3] != 12 or shape[-2] != shape[-1] or not _is_power_of_two(shape[-1]):
        raise ShapeError(f"{name} must have shape (..., 12, n, n) with n = nside a power of two, got shape {shape}")
    return shape[-1]


def _has_corner_blocks(widths: PadWidths) -> bool:
    top, bottom, left, right = widths
    return bool((top or bottom) and (left or right))


# -- pixel index tables ------------------------------------------------------------------


def _spread_bits(v: np.ndarray, bits: int) -> np.ndarray:
    """Move bit ``b`` of ``v`` to bit ``2b`` (``0b11 -> 0b101``)."""
    out = np.zeros_like(v)
    for b in range(bits):
        out |= ((v >> b) & 1) << (2 * b)
    return out


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=16)
def _nest_of_faces(nside: int) -> np.ndarray:
    """``(12, n, n)`` int64: the NESTED index of every face pixel (healpy's ``xyf2pix``)."""
    bits = nside.bit_length() - 1
    i = np.arange(nside, dtype=np.int64)[:, None]
    j = np.arange(nside, dtype=np.int64)[None, :]
    in_face = _spread_bits(i, bits) | (_spread_bits(j, bits) << 1)
    face = np.arange(12, dtype=np.int64)[:, None, None]
    return _frozen(face * nside * nside + in_face)


@functools.lru_cache(maxsize=16)
def _faces_of_nest(nside: int) -> np.ndarray:
    """``(12 n²,)`` int64: the flat face position ``f n² + i n + j`` of every NESTED pixel."""
    nest = _nest_of_faces(nside).reshape(-1)
    out = np.empty_like(nest)
    out[nest] = np.arange(nest.size, dtype=np.int64)
    return _frozen(out)


@functools.lru_cache(maxsize=16)
def _ring_of_faces(nside: int) -> np.ndarray:
    import healpy

    return _frozen(np.asarray(healpy.nest2ring(nside, _nest_of_faces(nside)), dtype=np.int64))


@functools.lru_cache(maxsize=16)
def _faces_of_ring(nside: int) -> np.ndarray:
    import healpy

    nest = np.asarray(healpy.ring2nest(nside, np.arange(12 * nside * nside)), dtype=np.int64)
    return _frozen(_faces_of_nest(nside)[nest])


def _reindex(
    x: torch.Tensor | np.ndarray, index: np.ndarray, source_shape: tuple[int, ...], key: tuple
) -> torch.Tensor | np.ndarray:
    """``out[..., p] = x[..., index[p]]`` over the trailing ``source_shape`` dims of ``x``."""
    spatial = len(source_shape)
    lead = tuple(x.shape[: x.ndim - spatial])
    if isinstance(x, np.ndarray):
        return x.reshape(*lead, int(np.prod(source_shape)))[..., index].reshape(*lead, *index.shape)
    entry = TABLES.get(("healpix", *key), x.device, lambda: PadTable.from_index(index.copy(), source_shape))
    return gather(x, *entry)


def nest_to_faces(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Reshape a NESTED map ``(..., 12 nside²)`` into faces ``(..., 12, n, n)``.

    ``faces[..., f, i, j] = x[..., healpy.xyf2pix(nside, i, j, f, nest=True)]``: face
    ``f`` holds the NESTED pixels ``f n² .. (f + 1) n² - 1``, ``i`` from the bits of the
    pixel's index in the even bit positions, ``j`` from those in the odd ones.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Shape ``(..., 12 nside²)``, any leading dims and dtype, ``nside`` a power of two.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Shape ``(..., 12, nside, nside)``, the same type as ``x``.

    Examples
    --------
    >>> nest_to_faces(torch.arange(48))[..., 0, :, :]   # nside 2: face 0
    tensor([[0, 2],
            [1, 3]])
    """
    nside = _nside_of_flat(x, "x")
    return _reindex(x, _nest_of_faces(nside), (12 * nside * nside,), ("nest_to_faces", nside))


def faces_to_nest(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Flatten faces ``(..., 12, n, n)`` into a NESTED map ``(..., 12 n²)``; inverse of :func:`nest_to_faces`.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Shape ``(..., 12, n, n)``, ``n`` a power of two.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Shape ``(..., 12 n²)``, the same type as ``x``.

    Examples
    --------
    >>> m = torch.arange(48)
    >>> bool(torch.equal(faces_to_nest(nest_to_faces(m)), m))
    True
    """
    nside = _nside_of_faces(x, "x")
    return _reindex(x, _faces_of_nest(nside), (12, nside, nside), ("faces_to_nest", nside))


def ring_to_faces(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Reshape a RING map ``(..., 12 nside²)`` into faces ``(..., 12, n, n)``.

    ``faces[..., f, i, j] = x[..., healpy.nest2ring(nside, xyf2pix(nside, i, j, f, nest=True))]``.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Shape ``(..., 12 nside²)``, ``nside`` a power of two.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Shape ``(..., 12, nside, nside)``, the same type as ``x``.

    Examples
    --------
    >>> ring_to_faces(torch.arange(12)).flatten()   # nside 1: RING and NESTED agree
    tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11])
    """
    nside = _nside_of_flat(x, "x")
    return _reindex(x, _ring_of_faces(nside), (12 * nside * nside,), ("ring_to_faces", nside))


def faces_to_ring(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Flatten faces ``(..., 12, n, n)`` into a RING map ``(..., 12 n²)``; inverse of :func:`ring_to_faces`.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Shape ``(..., 12, n, n)``, ``n`` a power of two.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Shape ``(..., 12 n²)``, the same type as ``x``.

    Examples
    --------
    >>> m = np.arange(192.0)
    >>> bool((faces_to_ring(ring_to_faces(m)) == m).all())
    True
    """
    nside = _nside_of_faces(x, "x")
    return _reindex(x, _faces_of_ring(nside), (12, nside, nside), ("faces_to_ring", nside))


# -- padding -------------------------------------------------------------------------------


def _turn(i: np.ndarray, j: np.ndarray, turns: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply :math:`r(i, j) = (j, n - 1 - i)` ``turns`` times, elementwise."""
    i, j, turns = i.copy(), j.copy(), turns.copy()
    for _ in range(3):
        m = turns > 0
        i[m], j[m] = j[m], n - 1 - i[m]
        turns -= m
    return i, j


def _cross(
    face: np.ndarray, i: np.ndarray, j: np.ndarray, n: int, axis: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Carry the positions beyond the edges of ``axis`` (0: ``i``, 1: ``j``) into the neighbouring faces."""
    face, i, j = face.copy(), i.copy(), j.copy()
    coordinate = i if axis == 0 else j
    below, above = coordinate < 0, coordinate >= n
    for side, mask, shift in ((2 * axis, below, n), (2 * axis + 1, above, -n)):
        source = face[mask]
        ii, jj = i[mask], j[mask]
        if axis == 0:
            ii = ii + shift
        else:
            jj = jj + shift
        i[mask], j[mask] = _turn(ii, jj, _EDGE_ARRAY[source, side, 1], n)
        face[mask] = _EDGE_ARRAY[source, side, 0]
    return face, i, j


def _settle(face: np.ndarray, i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Cross whatever edge a position still lies beyond; return flat positions ``f n² + i n + j``."""
    face, i, j = _cross(face, i, j, n, 0)
    face, i, j = _cross(face, i, j, n, 1)
    if not ((i >= 0) & (i < n) & (j >= 0) & (j < n)).all():
        raise AssertionError("a padded position did not land on a face; is a width larger than nside?")
    return (face * n + i) * n + j


def _healpix_pad_table(nside: int, widths: PadWidths) -> PadTable:
    top, bottom, left, right = widths
    n = nside
    shape = (12, n + top + bottom, n + left + right)
    face = np.broadcast_to(np.arange(12, dtype=np.int64)[:, None, None], shape)
    i = np.broadcast_to(np.arange(-top, n + bottom, dtype=np.int64)[None, :, None], shape)
    j = np.broadcast_to(np.arange(-left, n + right, dtype=np.int64)[None, None, :], shape)
    # A corner position is reached by crossing its two edges in either order; the orders
    # agree except in the corner blocks at the 8 three-face vertices (the policy: the mean).
    rows_first = _settle(*_cross(face, i, j, n, 0), n)
    columns_first = _settle(*_cross(face, i, j, n, 1), n)
    if np.array_equal(rows_first, columns_first):
        return PadTable.from_index(rows_first, (12, n, n))
    index = np.stack([rows_first, columns_first], axis=-1)
    return PadTable(index, np.full(index.shape, 0.5), (12, n, n), shape)


@functools.lru_cache(maxsize=8)
def _centres(nside: int) -> tuple[np.ndarray, np.ndarray]:
    import healpy

    colat, lon = healpy.pix2ang(nside, _nest_of_faces(nside), nest=True)
    return _frozen(np.asarray(colat, dtype=np.float64)), _frozen(np.asarray(lon, dtype=np.float64))


def _check_points(colat: object, lon: object) -> tuple[np.ndarray, np.ndarray]:
    colat, lon = np.broadcast_arrays(np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    if not (np.isfinite(colat).all() and np.isfinite(lon).all()):
        raise ParameterError("colat and lon must be finite (radians)")
    if colat.size and (colat.min() < 0 or colat.max() > np.pi):
        raise ParameterError(
            f"colat must lie in [0, pi] (colatitude in radians), got values in [{colat.min()}, {colat.max()}]"
        )
    return np.ascontiguousarray(colat), np.ascontiguousarray(lon)
