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

    ============  ================  ================  ================  ================
    face          top (SW edge)     bottom (NE)       left (SE)         right (NW)
    ============  ================  ================  ================  ================
    ``q`` (0-3)   ``4+q``           ``q+1``, k=1      ``4+(q+1)``       ``q-1``, k=3
    ``4+q``       ``8+(q-1)``       ``q``             ``8+q``           ``q-1``
    ``8+q``       ``8+(q-1)``, k=1  ``4+(q+1)``       ``8+(q+1)``, k=3  ``4+q``
    ============  ================  ================  ================  ================

    (``q +- 1`` modulo 4; no entry means ``k = 0``.) The polar faces meet each other
    across edges with a quarter turn; every other pair of neighbours shares its frame.

    **Corners.** A corner block is filled by crossing its two edges one after the other.
    Where four faces meet, both orders reach the same face (the diagonal neighbour):

    ============  ===================  ===================  ===================  ===================
    face          top-left (S)         bottom-left (E)      bottom-right (N)     top-right (W)
    ============  ===================  ===================  ===================  ===================
    ``q`` (0-3)   ``8+q``              *4+(q+1) | q+1*      ``q+2``, k=2         *q-1 | 4+q*
    ``4+q``       *8+q | 8+(q-1)*      ``4+(q+1)``          *q-1 | q*            ``4+(q-1)``
    ``8+q``       ``8+(q+2)``, k=2     *8+(q+1) | 4+(q+1)*  ``q``                *4+q | 8+(q-1)*
    ============  ===================  ===================  ===================  ===================

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

import hashlib
import math
from typing import Any

import numpy as np
import torch

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._gather import TABLES, PadTable, gather
from geoconv.grids._healpix_faces import (
    EDGES,
    _centres,
    _check_nside,
    _check_points,
    _faces_of_nest,
    _has_corner_blocks,
    _healpix_pad_table,
    _is_power_of_two,
    faces_to_nest,
    faces_to_ring,
    nest_to_faces,
    ring_to_faces,
)
from geoconv.grids.base import PadWidths, check_batch_channels, check_pad_widths
from geoconv.grids.sphere import SphericalGrid

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
    default_size = 8

    def size_label(self, size: object) -> str:
        """``"nside N"``: nside, as HEALPix and cube-map users name a resolution."""
        return f"nside {self.shape_at(1, 1, size)[-1]}"

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
        """Return ``x`` if it is a ``(B, C, 12, n, n)`` tensor, ``C >= 1``, ``n`` a power of two; else raise.

        A flat healpy map ``(B, C, 12 nside²)`` is refused with the way to faces:
        :func:`ring_to_faces` or :func:`nest_to_faces`.
        """
        if isinstance(x, torch.Tensor) and x.dim() in (1, 2, 3) and _flat_nside(int(x.shape[-1])):
            nside = _flat_nside(int(x.shape[-1]))
            raise ShapeError(
                f"{name} must have shape {_LAYOUT} on grid 'healpix' (the 12 base faces, n x n pixels each), got "
                f"shape {tuple(x.shape)}: a flat healpy map of 12 * nside**2 = {x.shape[-1]} pixels (nside {nside}). "
                "Reshape it into faces with geoconv.grids.healpix.ring_to_faces(map) for a RING-ordered map (healpy's "
                "default) or geoconv.grids.healpix.nest_to_faces(map) for a NESTED one"
            )
        x = self.check_rank(x, name)
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

    # -- the grid's catalogue (see SphericalGrid) ------------------------------------------

    def equator_pixels(self, size: int) -> int:
        """``4 nside``: the pixels of the equatorial ring."""
        return 4 * self.check_size(size)

    def pole_turns(self, size: int) -> int:
        """4: the quarter turns (:meth:`quarter_turn`)."""
        return 4

    def turn_about_pole(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """:meth:`quarter_turn` by ``steps``."""
        return self.quarter_turn(x, steps)

    def draw_map(self, figure: Any, values: np.ndarray, size: object, *, cmap: str = "viridis") -> None:
        """A Mollweide map drawn by healpy from the NESTED map (:func:`faces_to_nest`), east to the right.

        healpy's ``HpxMollweideAxes.projmap`` is what ``healpy.mollview`` draws with.
        """
        from geoconv.grids._maps import draw_mollweide

        draw_mollweide(figure, faces_to_nest(np.asarray(values)), cmap=cmap)

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


def _flat_nside(length: int) -> int | None:
    """The nside of a flat map of ``length`` pixels (``12 nside²``, nside a power of two), else ``None``."""
    nside = math.isqrt(length // 12) if length >= 12 else 0
    return nside if 12 * nside * nside == length and _is_power_of_two(nside) else None


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
    return GRID.to_equirect(x, height, width)


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
    return GRID.from_equirect(x, GRID.check_size(nside))
