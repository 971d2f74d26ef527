r"""HEALPix: twelve square base faces, layout ``(B, C, 12, n, n)``, ``n = nside`` a power of two.

Faces and orientation
---------------------
Face ``f`` is healpy's base pixel ``f``: faces 0-3 touch the north pole, 4-7 straddle
the equator (face ``4 + q`` is centred on longitude :math:`q \cdot 90°`), 8-11 touch the
south pole. In the HEALPix projection (longitude across, :math:`z = \cos\theta` up) the
faces are diamonds::

       /\      /\      /\      /\            z = 1 (the north pole: top corners of 0-3)
      /  \    /  \    /  \    /  \
     /    \  /    \  /    \  /    \
    /      \/      \/      \/      \         z = 2/3
    \   0  /\   1  /\   2  /\   3  /\
     \    /  \    /  \    /  \    /  \
      \  /    \  /    \  /    \  /    \
       \/      \/      \/      \/      \     z = 0 (the equator)
       /\   5  /\   6  /\   7  /\   4  /
      /  \    /  \    /  \    /  \    /
     /    \  /    \  /    \  /    \  /
    /      \/      \/      \/      \/        z = -2/3
    \   8  /\   9  /\  10  /\  11  /
     \    /  \    /  \    /  \    /
      \  /    \  /    \  /    \  /
       \/      \/      \/      \/            z = -1 (the south pole: bottom corners of 8-11)
    lon 0°     90°     180°    270°    360°

(face 4 is centred on longitude 0°: its other half is at the left edge). Inside a face,
``x[..., f, i, j]`` is healpy's NESTED pixel with ``x = i``, ``y = j``, i.e.
``healpy.xyf2pix(nside, i, j, f, nest=True)`` :math:`= f n^2 +` (the bits of ``i`` in the
even and those of ``j`` in the odd bit positions)::

      one face, seen from outside                   the same face as a tensor x[..., f, i, j]

                N (n-1, n-1)                                   j ->
                 /\                                      S  . . . .  W    row 0: the SW edge
      NW edge   /  \   NE edge                      i    .          .
      (j = n-1)/    \(i = n-1)                      |    .          .
    W (0, n-1) \    / E (n-1, 0)                    v    .          .
      SW edge   \  /   SE edge                           E  . . . .  N    row n-1: the NE edge
      (i = 0)    \/    (j = 0)                      (column 0: the SE edge, column n-1: the NW edge)
                 S (0, 0)

So a 2x2 block at even ``(i, j)`` holds the NESTED pixels ``4p .. 4p + 3``: stride 2 is
the nested hierarchy. The quarter turn about the pole (longitude + 90°) permutes the faces
``0->1->2->3->0``, ``4->5->6->7->4``, ``8->9->10->11->8`` and moves no pixel inside a
face (:meth:`HealpixGrid.quarter_turn`).

Padding modes
-------------
``healpix`` (the default; as in DLWP-HPX and earth2grid)
    Beyond each edge lies the neighbouring base face, turned into this face's frame; the
    padded pixel at distance ``k`` outside an edge is the neighbour's pixel at distance
    ``k`` inside it. Widths ``0..nside`` on each side, independently. :data:`EDGES` is
    the table: for each face and each side, in the order of the widths
    ``(top, bottom, left, right)`` = ``(i < 0, i >= n, j < 0, j >= n)`` = (SW, NE, SE, NW
    edge), the neighbour and the number ``k`` of quarter turns: a padded position
    ``(i, j)`` beyond the edge is the neighbour's pixel :math:`r^k(i - n\,d_i,\ j - n\,d_j)`
    with :math:`(d_i, d_j)` the edge's direction and :math:`r(i, j) = (j,\ n-1-i)`.

    ============  ===============  ===============  ===============  ===============
    face          top (SW edge)    bottom (NE)      left (SE)        right (NW)
    ============  ===============  ===============  ===============  ===============
    ``q`` (0-3)   ``4+q``          ``q+1``, k=1     ``4+(q+1)``      ``q-1``, k=3
    ``4+q``       ``8+(q-1)``      ``q``            ``8+q``          ``q-1``
    ``8+q``       ``8+(q-1)``, k=1 ``4+(q+1)``      ``8+(q+1)``, k=3 ``4+q``
    ============  ===============  ===============  ===============  ===============

    (``q +- 1`` modulo 4; no entry means ``k = 0``.) The polar faces meet each other
    across edges with a quarter turn; every other pair of neighbours shares its frame.

    **Corners.** A corner block is filled by crossing its two edges one after the other.
    Where four faces meet, both orders reach the same face (the diagonal neighbour):

    ============  ==================  ==================  ==================  ==================
    face          top-left (S)        bottom-left (E)     bottom-right (N)    top-right (W)
    ============  ==================  ==================  ==================  ==================
    ``q`` (0-3)   ``8+q``             *4+(q+1) | q+1*     ``q+2``, k=2        *q-1 | 4+q*
    ``4+q``       *8+q | 8+(q-1)*     ``4+(q+1)``         *q-1 | q*           ``4+(q-1)``
    ``8+q``       ``8+(q+2)``, k=2    *8+(q+1) | 4+(q+1)* ``q``               *4+q | 8+(q-1)*
    ============  ==================  ==================  ==================  ==================

    (*a | b*: a three-face vertex. The corner block's two candidates lie in face ``a``,
    reached by continuing the rows of the top/bottom band sideways, and in face ``b``,
    reached by continuing the columns of the left/right band.)

    At a pole the diagonal face is the opposite polar face, turned by half a turn. At the
    8 vertices where only three faces meet (the N and S corners of the equatorial faces,
    i.e. the E and W corners of the polar faces, at :math:`z = \pm 2/3`) the corner block
    has no face behind it, and the two orders reach different pixels. **Policy:** the
    padded pixel ``a`` rows and ``b`` columns beyond such a corner (``a, b >= 1``) is the
    mean of the two pixels reached by continuing the two adjacent edge paddings straight
    into the block, along the rows of the one and along the columns of the other (the
    two orders of crossing). Next to the vertex (``a = b = 1``) these are the two pixels
    that touch the vertex besides the face's own corner pixel: the mean of healpy's two
    neighbours on either side of the one that ``get_all_neighbours`` reports missing. The
    rule treats both neighbours alike, so the padding commutes with the quarter turn and
    with the reflections of the grid; tables with a corner block are 2-tap gathers with
    weights ½ (which needs a floating-point tensor).
``zeros``, ``constant``, ``reflect``, ``replicate``, ``circular``
    The planar modes, each face on its own, as baselines (:mod:`geoconv.grids.planar`).

Conversions
-----------
:func:`nest_to_faces`, :func:`faces_to_nest`, :func:`ring_to_faces`, :func:`faces_to_ring`
move between flat healpy maps ``(..., 12 nside²)`` and faces ``(..., 12, n, n)``.
:meth:`HealpixGrid.interpolate` and :func:`to_equirect` interpolate bilinearly as healpy's
``get_interp_weights`` does (4 pixels on the two nearest rings); :func:`from_equirect`
samples the equirect grid bilinearly at the HEALPix pixel centres.

healpy (GPL) is imported only inside the functions that need HEALPix geometry.

Public names: :class:`HealpixGrid`, :data:`GRID`, :data:`EDGES`, :func:`pad`,
:func:`nest_to_faces`, :func:`faces_to_nest`, :func:`ring_to_faces`, :func:`faces_to_ring`,
:func:`from_equirect`, :func:`to_equirect`.

Examples
--------
>>> import torch
>>> from geoconv.grids import healpix
>>> x = torch.arange(12.0).view(1, 1, 12, 1, 1)   # nside 1: one pixel per face, valued by face
>>> healpix.pad(x, 1)[0, 0, 0]                    # face 0 amid its neighbours
tensor([[8.0000, 4.0000, 3.5000],
        [5.0000, 0.0000, 3.0000],
        [3.0000, 1.0000, 2.0000]])
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from geoconv._checks import check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._gather import TABLES, PadTable, gather
from geoconv.grids.base import PadWidths, check_batch_channels, check_pad_widths
from geoconv.grids.sphere import SphericalGrid, equirect_centres

__all__ = [
    "EDGES",
    "GRID",
    "HealpixGrid",
    "faces_to_nest",
    "faces_to_ring",
    "from_equirect",
    "nest_to_faces",
    "pad",
    "ring_to_faces",
    "to_equirect",
]

_LAYOUT = "(B, C, 12, n, n)"

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


# -- the grid ------------------------------------------------------------------------------


class HealpixGrid(SphericalGrid):
    """The HEALPix grid: the 12 base faces of healpy, layout ``(B, C, 12, n, n)``.

    See the module docstring for the face order, the in-face orientation, the ``healpix``
    padding and its corner policy.

    Examples
    --------
    >>> x = torch.randn(GRID.shape(2, 3, 4))
    >>> x.shape, GRID.size_of(x), GRID.pad(x, 2).shape
    (torch.Size([2, 3, 12, 4, 4]), 4, torch.Size([2, 3, 12, 8, 8]))
    """

    name = "healpix"
    layout = _LAYOUT
    faces = 12
    own_modes = ("healpix",)

    # -- layout -------------------------------------------------------------------------

    def check_size(self, size: object) -> int:
        """Validate ``nside``: an integer >= 1 and a power of two."""
        return _check_nside(size, "nside")

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, 12, nside, nside)``: ``size`` is ``nside``, a power of two."""
        batch, channels = check_batch_channels(batch, channels)
        nside = self.check_size(size)
        return (batch, channels, 12, nside, nside)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a ``(B, C, 12, n, n)`` tensor, ``C >= 1``, ``n`` a power of two; else raise."""
        x = check_tensor(x, ndim=5, name=name, layout=_LAYOUT)
        shape = tuple(x.shape)
        if shape[2] != 12 or shape[3] != shape[4] or not _is_power_of_two(shape[4]) or shape[1] == 0:
            guess = shape[4] if _is_power_of_two(shape[4]) else 2 ** max(0, int(shape[4]).bit_length() - 1)
            raise ShapeError(
                f"{name} on grid 'healpix' must have shape {_LAYOUT} with C >= 1 and n = nside a power of two "
                f"(the 12 base faces in dim -3), e.g. {(shape[0], max(shape[1], 1), 12, guess, guess)}; "
                f"got shape {shape}"
            )
        return x

    def face_problem(self, height: int, width: int) -> str | None:
        """Square faces ``n x n``, ``n = nside`` a power of two; see :meth:`Grid.face_problem`."""
        if height != width or not _is_power_of_two(width):
            return "square faces n x n with n = nside a power of two"
        return super().face_problem(height, width)

    def size_of(self, x: torch.Tensor) -> int:
        """``nside`` of a checked tensor."""
        return int(x.shape[-1])

    # -- padding ------------------------------------------------------------------------

    def check_pad_input(self, x: torch.Tensor, widths: PadWidths, mode: str) -> None:
        """Refuse integer tensors where the padding averages (corner blocks at the three-face vertices)."""
        if mode == "healpix" and _has_corner_blocks(widths) and not (x.is_floating_point() or x.is_complex()):
            raise ShapeError(
                f"healpix padding with corner blocks averages two pixels at the 8 three-face vertices and needs "
                f"a floating-point x, got dtype {x.dtype}; cast x (x.double() holds integers exactly up to 2**53)"
            )

    def pad_table(self, size: int, widths: PadWidths, mode: str) -> PadTable:
        """The gather table of ``healpix`` padding (see the module docstring).

        Parameters
        ----------
        size : int
            ``nside``.
        widths : (int, int, int, int)
            ``(top, bottom, left, right)``, each in ``0..nside``.
        mode : str
            ``"healpix"``.

        Returns
        -------
        PadTable
            Source ``(12, n, n)``, target ``(12, n + top + bottom, n + left + right)``: one tap
            when no corner block is padded, else two taps with weights ½ (the two taps
            coincide outside the corner blocks at the three-face vertices).

        Examples
        --------
        >>> table = GRID.pad_table(2, (1, 1, 1, 1), "healpix")
        >>> table.target_shape, table.index.shape[-1]
        ((12, 4, 4), 2)
        """
        nside = self.check_size(size)
        if mode != "healpix":
            raise ParameterError(f"pad_table on grid 'healpix' builds mode 'healpix' only, got {mode!r}")
        widths = check_pad_widths(widths)
        if max(widths) > nside:
            raise ParameterError(
                f"pad widths (top, bottom, left, right)={widths} must be at most the face size nside={nside}"
            )
        return _healpix_pad_table(nside, widths)

    # -- geometry -----------------------------------------------------------------------

    def centres(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude and longitude (radians, float64) of the pixel centres, each ``(12, n, n)``.

        healpy's ``pix2ang`` of the NESTED pixels in the face layout.

        Examples
        --------
        >>> colat, lon = GRID.centres(1)
        >>> np.round(np.degrees(lon[4:8, 0, 0])), np.round(np.degrees(colat[0:12:4, 0, 0]), 2)
        (array([  0.,  90., 180., 270.]), array([ 48.19,  90.  , 131.81]))
        """
        colat, lon = _centres(self.check_size(size))
        return colat.copy(), lon.copy()

    def interpolation_table(self, size: int, colat: object, lon: object) -> PadTable:
        r"""healpy's bilinear interpolation at points, as a 4-tap gather table over the faces.

        ``healpy.get_interp_weights`` picks, for each point, the two pixels on either side
        of it on each of the two nearest rings, with weights linear in longitude along
        each ring and in colatitude between the rings.

        Parameters
        ----------
        size : int
            ``nside``.
        colat, lon : array_like
            Broadcastable arrays of colatitudes in :math:`[0, \pi]` and longitudes (radians).

        Returns
        -------
        PadTable
            Source ``(12, n, n)``, target the broadcast shape of ``colat`` and ``lon``, 4 taps.
        """
        import healpy

        nside = self.check_size(size)
        colat, lon = _check_points(colat, lon)
        pixels, weights = healpy.get_interp_weights(nside, colat.reshape(-1), lon.reshape(-1), nest=True)
        index = _faces_of_nest(nside)[np.asarray(pixels, dtype=np.int64).T]
        weight = np.ascontiguousarray(np.asarray(weights, dtype=np.float64).T)
        return PadTable(
            index.reshape(*colat.shape, 4), weight.reshape(*colat.shape, 4), (12, nside, nside), colat.shape
        )

    def interpolate(self, x: torch.Tensor, colat: object, lon: object) -> torch.Tensor:
        r"""Sample ``x`` ``(B, C, 12, n, n)`` at points on the sphere, bilinearly (as healpy does).

        See :meth:`interpolation_table`; tables are cached per ``nside`` and points. At
        pixel centres the pixel values come back (to round-off, ~1e-14). Differentiable in ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C, 12, n, n)``, floating point.
        colat, lon : array_like
            Broadcastable arrays of colatitudes in :math:`[0, \pi]` and longitudes (radians).

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, *shape)``, ``shape`` the broadcast shape of ``colat`` and ``lon``.

        Examples
        --------
        >>> x = torch.arange(12.0).view(1, 1, 12, 1, 1)
        >>> GRID.interpolate(x, np.pi / 2, [0.0, np.pi / 2])   # the centres of faces 4 and 5
        tensor([[[4., 5.]]])
        """
        x = self.check(x)
        if not x.is_floating_point():
            raise ShapeError(f"x must have a floating-point dtype to be interpolated, got {x.dtype}")
        colat, lon = _check_points(colat, lon)
        nside = self.size_of(x)
        digest = hashlib.sha1(colat.tobytes() + b"|" + lon.tobytes()).hexdigest()
        key = (self.name, "interpolate", nside, colat.shape, digest)
        entry = TABLES.get(key, x.device, lambda: self.interpolation_table(nside, colat, lon))
        return gather(x, *entry)

    # -- symmetries ---------------------------------------------------------------------

    def quarter_turn(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        r"""Rotate ``x`` by ``k`` quarter turns about the pole (longitude + ``k`` · 90°), exactly.

        With :math:`R = R_z(k\pi/2)` and :math:`(R\cdot x)(v) = x(R^\top v)`, the pixel at
        :math:`(\theta, \phi)` takes the value of the pixel at :math:`(\theta, \phi - k\pi/2)`.
        HEALPix is symmetric under this turn: it moves base face ``4r + q`` onto
        ``4r + (q + k) mod 4`` and keeps every pixel's place inside its face, so face
        ``4r + q`` of the result is face ``4r + (q - k) mod 4`` of ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C, 12, n, n)``.
        k : int
            The number of quarter turns, any integer (taken modulo 4).

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, 12, n, n)``.

        Examples
        --------
        >>> GRID.quarter_turn(torch.arange(12.0).view(1, 1, 12, 1, 1)).flatten()
        tensor([ 3.,  0.,  1.,  2.,  7.,  4.,  5.,  6., 11.,  8.,  9., 10.])
        """
        x = self.check(x)
        k = check_int("k", k) % 4
        return torch.roll(x.unflatten(2, (3, 4)), k, dims=3).flatten(2, 3)


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


GRID = HealpixGrid()


def pad(x: torch.Tensor, width: object, mode: str = "healpix", value: float = 0.0) -> torch.Tensor:
    """Pad every face of a HEALPix tensor ``(B, C, 12, n, n)``; see the module docstring for the modes.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, 12, n, n)``; floating point for ``healpix`` padding with corner blocks.
    width : int, pair or 4-tuple
        ``w``, ``(h, w)`` or ``(top, bottom, left, right)``, each in ``0..n``: top and bottom
        pad beyond the SW and NE edges (rows ``i < 0``, ``i >= n``), left and right beyond the
        SE and NW edges (columns ``j < 0``, ``j >= n``).
    mode : str
        ``healpix`` (default) or a planar mode (each face on its own).
    value : float
        The fill value for ``constant``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, 12, n + top + bottom, n + left + right)``. Autograd-correct; the
        adjoint is :meth:`HealpixGrid.pad_adjoint`.

    Examples
    --------
    >>> x = torch.zeros(GRID.shape(2, 3, 8))
    >>> pad(x, (1, 2, 0, 3)).shape
    torch.Size([2, 3, 12, 11, 11])
    """
    return GRID.pad(x, width, mode, value)


def to_equirect(x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    r"""Resample a HEALPix map onto the equirect grid, bilinearly (healpy's interpolation).

    The output pixel ``(i, j)`` is ``x`` interpolated (:meth:`HealpixGrid.interpolate`) at
    colatitude :math:`(i + \frac12)\pi/H` and longitude :math:`2\pi j/W`.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, 12, n, n)``, floating point.
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
    >>> y = to_equirect(torch.ones(GRID.shape(1, 2, 4)), 8)
    >>> y.shape, bool(torch.allclose(y, torch.ones_like(y)))
    (torch.Size([1, 2, 8, 16]), True)
    """
    x = GRID.check(x)
    return GRID.interpolate(x, *equirect_centres(height, width))


def from_equirect(x: torch.Tensor, nside: int) -> torch.Tensor:
    """Resample an equirect map onto HEALPix faces at ``nside``.

    Each HEALPix pixel is the equirect map interpolated bilinearly
    (:meth:`geoconv.grids.equirect.EquirectGrid.interpolate`) at its centre.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, H, W)``, ``W`` even, floating point.
    nside : int
        A power of two.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, 12, nside, nside)``.

    Examples
    --------
    >>> y = from_equirect(torch.ones(1, 2, 8, 16), 4)
    >>> y.shape, bool(torch.allclose(y, torch.ones_like(y)))
    (torch.Size([1, 2, 12, 4, 4]), True)
    """
    from geoconv.grids import get_grid

    nside = GRID.check_size(nside)
    return get_grid("equirect").interpolate(x, *_centres(nside))
