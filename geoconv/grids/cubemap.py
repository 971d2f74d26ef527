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
import math

import numpy as np
import torch

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._cubemap_tables import _DOWN, _NORMAL, _RIGHT, _check_points, _node_table, _sources, _tap_table
from geoconv.grids._gather import TABLES, PadTable, gather
from geoconv.grids.base import PadWidths, check_batch_channels, check_pad_widths
from geoconv.grids.sphere import SphericalGrid, equirect_centres, vectors_to_angles

__all__ = ["GRID", "CubemapGrid", "from_equirect", "pad", "to_equirect"]

_LAYOUT = "(B, C, 6, F, F)"


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
    default_size = 8

    def size_label(self, size: object) -> str:
        """``"face N"``: the face side, as HEALPix and cube-map users name a resolution."""
        return f"face {self.shape_at(1, 1, size)[-1]}"

    # -- layout -------------------------------------------------------------------------

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, 6, size, size)``: ``size`` is the face side ``F``."""
        batch, channels = check_batch_channels(batch, channels)
        size = self.check_size(size)
        return (batch, channels, 6, size, size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a ``(B, C, 6, F, F)`` tensor with ``C, F >= 1``, else raise ``ShapeError``."""
        x = self.check_rank(x, name)
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

    # -- the grid's catalogue (see SphericalGrid) ------------------------------------------

    def equator_pixels(self, size: int) -> int:
        """``4 F``: the equatorial faces' rows."""
        return 4 * self.check_size(size)

    def pixel_areas(self, size: int) -> np.ndarray:
        r"""Solid angles ``(6, F, F)``: each pixel's square on the face's tangent plane.

        From :math:`\Omega([0,a]\times[0,b]) = \arctan\big(ab / \sqrt{1 + a^2 + b^2}\big)` by
        inclusion-exclusion; the same square on every face.

        >>> round(float(GRID.pixel_areas(4).sum() / np.pi), 12)
        4.0
        """
        faces = self.check_size(size)
        edges = np.linspace(-1.0, 1.0, faces + 1)
        a, b = edges[:, None], edges[None, :]
        corner = np.arctan(a * b / np.sqrt(1 + a * a + b * b))
        square = corner[1:, 1:] - corner[:-1, 1:] - corner[1:, :-1] + corner[:-1, :-1]
        return np.broadcast_to(square, (6, faces, faces)).copy()

    def pixel_pitch(self, size: int) -> float:
        r"""The mean step along a face's equator, :math:`\pi / (2F)` (radians): a face spans 90°."""
        return math.pi / (2 * self.check_size(size))

    def pole_turns(self, size: int) -> int:
        """4: the quarter turns (:meth:`quarter_turn`)."""
        return 4

    def turn_about_pole(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """:meth:`quarter_turn` by ``steps``."""
        return self.quarter_turn(x, steps)

    def to_equirect(self, x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
        """Resample onto the equirect grid with the cached node and tap tables; see :func:`to_equirect`."""
        x = self.check(x)
        colat, lon = equirect_centres(height, width)
        height, width = colat.shape[0], lon.shape[1]
        size = self.size_of(x)
        return self._gather_at(
            x, ("equirect", height, width), lambda: _tap_table(size, *np.broadcast_arrays(colat, lon))
        )

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
    return GRID.to_equirect(x, height, width)


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
    return GRID.from_equirect(x, _check_size("face_size", face_size))
