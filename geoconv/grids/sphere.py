r"""The shared machinery of the spherical grids: gather padding, faces, pixel geometry.

A spherical grid is a stack of planar faces (one for equirect, 6 for the cube map, 12 for
HEALPix). Its own padding modes are gather tables (:mod:`geoconv.grids._gather`) built by
:meth:`SphericalGrid.pad_table`; the planar modes (``zeros``, ``reflect``, ...) are applied
to each face on its own, as baselines.

Pixel geometry is given as colatitude :math:`\theta \in [0, \pi]` and longitude
:math:`\phi \in [0, 2\pi)`, and as unit vectors
:math:`(\sin\theta\cos\phi,\ \sin\theta\sin\phi,\ \cos\theta)`: the pole is :math:`+z`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch.fx.experimental.symbolic_shapes import guard_scalar

from geoconv._checks import check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids._blocks import PaddingPlan, compile_padding, pad_adjoint_with_plan, pad_with_plan
from geoconv.grids._gather import TABLES, PadTable, cached, gather, gather_adjoint, register_builder
from geoconv.grids.base import Grid, PadWidths, check_pad_widths
from geoconv.grids.planar import PLANAR_PADDING_MODES, pad_planes

__all__ = [
    "POINTS_OF_INTEREST",
    "Resolution",
    "SphericalGrid",
    "angles_to_vectors",
    "equirect_centres",
    "reference_padding",
    "vectors_to_angles",
]

if TYPE_CHECKING:
    from geoconv.grids.fields import BandLimitedField

MAX_DEGREE = 12
"""The largest degree ``lmax`` of a :class:`~geoconv.grids.fields.BandLimitedField` (e3nn's harmonics)."""

Resolution = int | tuple[int, int]
"""A resolution: an int (the face side, nside, ...) or, on equirect, ``(H, W)``."""

POINTS_OF_INTEREST: dict[str, tuple[float, float]] = {
    "equator": (math.pi / 2, math.pi),
    # Just off the pole, towards longitude 180°: at the pole itself every pixel of the first
    # equirect row is equally near and the tie would land on the seam (longitude 0).
    "pole": (math.radians(1.0), math.pi),
    "seam": (math.pi / 2, 0.0),
}
"""``(colatitude, longitude)`` of the points :meth:`SphericalGrid.points_of_interest` names by default."""


class _PaddingPath(threading.local):
    reference = False


_PATH = _PaddingPath()


@contextlib.contextmanager
def reference_padding() -> Iterator[None]:
    """Pad with the literal table gather instead of the compiled block copies (in this thread).

    The two paths give the same values and gradients; the reference is the table itself,
    pixel by pixel, and the tests compare the fast path against it.

    >>> import torch
    >>> from geoconv.grids import healpix
    >>> x = torch.randn(1, 2, 12, 4, 4, dtype=torch.float64)
    >>> with reference_padding():
    ...     slow = healpix.pad(x, 1)
    >>> torch.equal(slow, healpix.pad(x, 1))
    True
    """
    previous = _PATH.reference
    _PATH.reference = True
    try:
        yield
    finally:
        _PATH.reference = previous


def angles_to_vectors(colat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit vectors ``(..., 3)`` from colatitude and longitude (radians), pole at +z."""
    colat, lon = np.asarray(colat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    sin = np.sin(colat)
    return np.stack([sin * np.cos(lon), sin * np.sin(lon), np.cos(colat)], axis=-1)


def equirect_centres(height: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Colatitude ``(H, 1)`` and longitude ``(1, W)`` of the equirect pixel centres (they broadcast).

    :math:`\theta_i = (i + \frac12)\pi/H`, :math:`\phi_j = 2\pi j/W` (e3nn's ``s2_grid``); ``W``
    is even and ``2 H`` by default. Every grid's ``to_equirect`` samples here.

    >>> colat, lon = equirect_centres(2)
    >>> colat.ravel() * 4 / np.pi, lon.ravel() * 2 / np.pi
    (array([1., 3.]), array([0., 1., 2., 3.]))
    """
    height = check_int("height", height, minimum=1)
    width = 2 * height if width is None else check_int("width", width, minimum=2)
    if width % 2:
        raise ParameterError(f"width of an equirect map must be even (layout (B, C, H, W), W even), got {width}")
    colat = (np.arange(height, dtype=np.float64) + 0.5) * (np.pi / height)
    lon = np.arange(width, dtype=np.float64) * (2 * np.pi / width)
    return colat[:, None], lon[None, :]


def vectors_to_angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude in ``[0, pi]`` and longitude in ``[0, 2 pi)`` of vectors ``(..., 3)``.

    >>> colat, lon = vectors_to_angles(np.array([1.0, -1e-17, 0.0]))  # just below longitude 2 pi
    >>> float(colat), float(lon)
    (1.5707963267948966, 0.0)
    """
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1)
    colat = np.arccos(np.clip(v[..., 2] / norm, -1.0, 1.0))
    lon = np.mod(np.arctan2(v[..., 1], v[..., 0]), 2 * np.pi)
    # A tiny negative angle comes back as 2 pi - eps, which rounds to 2 pi: outside [0, 2 pi).
    return colat, np.where(lon >= 2 * np.pi, 0.0, lon)


@register_builder("padding_plan")
def _build_plan(grid: str, mode: str, *numbers: int, device: torch.device) -> PaddingPlan:
    """The padding plan of ``grid``'s ``mode``; ``numbers`` are the spatial shape, then the 4 widths."""
    from geoconv.grids.registry import get_grid

    owner: SphericalGrid = get_grid(grid)  # type: ignore[assignment]
    spatial, widths = tuple(numbers[:-4]), tuple(numbers[-4:])
    return compile_padding(owner._build_table(spatial, widths, mode), widths, device)  # type: ignore[arg-type]


class SphericalGrid(Grid):
    """Base class of the spherical grids.

    Subclasses set :attr:`name`, :attr:`layout`, :attr:`own_modes`, :attr:`faces`
    (0 for a single-face layout ``(B, C, H, W)``, else the number of faces in dim -3) and
    implement :meth:`shape`, :meth:`check`, :meth:`size_of`, :meth:`pad_table`,
    :meth:`centres` and :meth:`interpolate`.

    Everything the probes, the data sets and the figures ask of a spherical grid is a
    method here, with a default a grid overrides where it knows better:
    :meth:`resolution` / :meth:`resolution_of`, :meth:`equator_pixels` and
    :meth:`default_lmax` (the band limit of test fields), :meth:`pixel_areas`,
    :meth:`pixel_pitch`, :meth:`points_of_interest` and :meth:`nearest_pixel`,
    :meth:`pole_turns` and :meth:`turn_about_pole` (its exact rotations),
    :meth:`sample_field`, :meth:`random_signal`, :meth:`to_equirect`,
    :meth:`from_equirect` and :meth:`draw_map`. No code outside :mod:`geoconv.grids`
    asks a grid its name to decide any of these.
    """

    spherical: ClassVar[bool] = True

    own_modes: ClassVar[tuple[str, ...]]
    faces: ClassVar[int]

    @property
    def padding_modes(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.own_modes, *PLANAR_PADDING_MODES)

    @property
    def default_padding_mode(self) -> str:  # type: ignore[override]
        return self.own_modes[0]

    @property
    def spatial_ndim(self) -> int:
        """How many trailing dims hold one signal: 2 for ``(H, W)``, 3 for ``(faces, n, n)``."""
        return 2 if self.faces == 0 else 3

    # -- layout -------------------------------------------------------------------------

    def check_rank(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a tensor with this layout's number of dims, else raise naming the layout.

        A ``(B, C, H, W)`` map given to a grid of faces is told how to convert it from
        equirect (``from_equirect`` of the grid's module).
        """
        ndim = 2 + self.spatial_ndim
        if isinstance(x, torch.Tensor) and x.dim() != ndim:
            hint = ""
            if x.dim() == 4 and self.faces:
                hint = (
                    f"; an equirect map (B, C, H, W) converts with "
                    f"geoconv.grids.convert(x, 'equirect', {self.name!r}, size)"
                )
            raise ShapeError(
                f"{name} must have shape {self.layout} on grid {self.name!r} ({ndim} dims), got a {x.dim()}-D tensor "
                f"of shape {tuple(x.shape)}{hint}"
            )
        return check_tensor(x, ndim=ndim, name=name, layout=self.layout)

    @abstractmethod
    def size_of(self, x: torch.Tensor) -> int:
        """The resolution parameter of a checked tensor (the inverse of :meth:`shape`)."""

    def to_planes(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, F, H, W) -> (B * F, C, H, W)``; single-face layouts pass through."""
        if self.faces == 0:
            return x
        b, c, f, h, w = x.shape
        return x.transpose(1, 2).reshape(b * f, c, h, w)

    def from_planes(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        """``(B * F, C, H, W) -> (B, C, F, H, W)``; single-face layouts pass through."""
        if self.faces == 0:
            return y
        bf, c, h, w = y.shape
        faces = bf // batch if batch else self.faces  # an empty batch (B = 0) keeps its faces
        return y.reshape(batch, faces, c, h, w).transpose(1, 2)

    # -- padding ------------------------------------------------------------------------

    @abstractmethod
    def pad_table(self, size: int, widths: PadWidths, mode: str) -> PadTable:
        """Build the gather table of one of :attr:`own_modes` (numpy, on the CPU)."""

    def check_widths(self, x: torch.Tensor, widths: PadWidths) -> None:
        """Refuse widths larger than a face (the tables only reach the neighbouring faces)."""
        height, width = self.spatial_shape(x)
        top, bottom, left, right = widths
        if max(top, bottom) > height or max(left, right) > width:
            raise ParameterError(
                f"pad widths (top, bottom, left, right)={widths} must be at most the face size "
                f"{height}x{width} on grid {self.name!r}"
            )

    def _table_key(self, spatial: tuple[int, ...], widths: PadWidths, mode: str) -> tuple:
        # Keyed by the whole spatial shape: two tensors of the same resolution parameter
        # may still differ in shape (an equirect map need not be 2:1).
        return (self.name, spatial, widths, mode)

    def _build_table(self, spatial: tuple[int, ...], widths: PadWidths, mode: str) -> PadTable:
        return self.pad_table(spatial[-1], widths, mode)

    def _table(self, x: torch.Tensor, widths: PadWidths, mode: str):
        spatial = tuple(int(n) for n in x.shape[-self.spatial_ndim :])
        return TABLES.get(
            self._table_key(spatial, widths, mode), x.device, lambda: self._build_table(spatial, widths, mode)
        )

    def _plan(self, x: torch.Tensor, widths: PadWidths, mode: str) -> PaddingPlan:
        # guard_scalar: under torch.compile with dynamic shapes the plan is specialised to the
        # concrete sizes (a guard), since a padding plan is a different plan per size.
        numbers = (*x.shape[-self.spatial_ndim :], *widths)
        return cached("padding_plan", x.device, self.name, mode, *(guard_scalar(n) for n in numbers))  # type: ignore[return-value]

    def plans_padding(self, mode: str | None = None) -> bool:
        """Whether :meth:`pad` applies ``mode`` with a table: one of :attr:`own_modes`, outside
        :func:`reference_padding` (which ops read as "use the reference path"). Nothing is built.
        """
        return self.check_mode(mode) not in PLANAR_PADDING_MODES and not _PATH.reference

    def padding_table(self, spatial: tuple[int, ...], widths: object, mode: str | None = None) -> PadTable:
        """The gather table of one of :attr:`own_modes` for faces of ``spatial`` (numpy, built on each call).

        ``spatial`` is one signal's shape (``(H, W)`` or ``(F, n, n)``). What :meth:`pad`
        applies, pixel by pixel; an op that needs only part of a padding (the halo strips
        of :mod:`geoconv.ops._halo`) reads its rows from here once and caches the result.
        """
        widths = check_pad_widths(widths)
        mode = self.check_mode(mode)
        if mode in PLANAR_PADDING_MODES:
            raise ParameterError(f"padding_mode {mode!r} of grid {self.name!r} pads each face on its own: no table")
        return self._build_table(tuple(int(n) for n in spatial), widths, mode)

    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        """Pad every face of ``x`` by ``widths = (top, bottom, left, right)``.

        The grid's own modes fill the border from the neighbouring pixels on the sphere;
        the planar modes pad each face on its own (the baselines).
        """
        return self._pad(x, widths, mode, value, planes=False)

    def pad_to_planes(
        self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0
    ) -> torch.Tensor:
        """``to_planes(pad(x, ...))``, written straight into the planes' memory layout.

        The padded faces land where ``(B * F, C, H', W')`` is a view, so the fold into the
        batch costs no extra pass over the tensor (it would be a transposing copy).
        """
        return self.to_planes(self._pad(x, widths, mode, value, planes=True))

    def check_pad_input(self, x: torch.Tensor, widths: PadWidths, mode: str) -> None:
        """Refuse inputs a mode cannot pad (beyond the layout); nothing by default."""

    def _pad(self, x: torch.Tensor, widths: object, mode: str | None, value: float, planes: bool) -> torch.Tensor:
        x = self.check(x)
        widths = check_pad_widths(widths)
        mode = self.check_mode(mode)
        if widths == (0, 0, 0, 0):
            return x
        self.check_widths(x, widths)
        self.check_pad_input(x, widths, mode)
        if mode in PLANAR_PADDING_MODES:
            return pad_planes(x, widths, mode, value)
        if _PATH.reference:
            return gather(x, *self._table(x, widths, mode))
        return pad_with_plan(x, self._plan(x, widths, mode), faces_outer=planes and self.faces > 0)

    def pad_adjoint(self, y: torch.Tensor, widths: object, mode: str | None, source: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`pad` for inputs shaped like ``source``: ``<pad x, y> = <x, pad_adjoint y>``."""
        widths = check_pad_widths(widths)
        mode = self.check_mode(mode)
        if mode in PLANAR_PADDING_MODES:
            return super().pad_adjoint(y, widths, mode, source)
        # The checks pad() makes: a table for widths the grid cannot pad would index outside it.
        self.check_widths(self.check(source, "source"), widths)
        self.check_pad_input(source, widths, mode)
        if _PATH.reference:
            return gather_adjoint(y, *self._table(source, widths, mode))
        return pad_adjoint_with_plan(y, self._plan(source, widths, mode))

    # -- geometry -----------------------------------------------------------------------

    @abstractmethod
    def centres(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude and longitude (radians, float64) of every pixel centre, shaped like one signal."""

    def vectors(self, size: int) -> np.ndarray:
        """Unit vectors of the pixel centres, shape ``(*spatial, 3)``."""
        return angles_to_vectors(*self.centres(size))

    @abstractmethod
    def interpolate(self, x: torch.Tensor, colat: np.ndarray, lon: np.ndarray) -> torch.Tensor:
        """Sample ``x`` (this grid's layout) at points on the sphere, bilinearly.

        Returns a tensor of shape ``(B, C, *colat.shape)``.
        """

    def check_size(self, size: object) -> int:
        """Validate a resolution parameter."""
        return check_int(f"size for grid {self.name!r}", size, minimum=1)

    # -- resolutions --------------------------------------------------------------------

    def resolution(self, size: object) -> Resolution:
        """``size`` checked, in the form the geometry methods take (:meth:`check_size`'s int here).

        Equirect answers ``(H, W)``, since its maps need not be 2:1.
        """
        return self.check_size(size)

    def resolution_of(self, x: torch.Tensor) -> Resolution:
        """The resolution of a checked tensor, as :meth:`resolution` gives it (:meth:`size_of` here)."""
        return self.size_of(x)

    # -- what the probes, the data sets and the figures ask of a spherical grid ----------

    def equator_pixels(self, size: object) -> int:
        r"""How many pixels run around the equator at ``size``.

        This default is that of an equal-area grid with square pixels,
        :math:`\sqrt{\pi N}` for :math:`N` pixels; the built-in grids count exactly.
        """
        return max(1, round(math.sqrt(math.pi * math.prod(self.signal_shape(size)))))

    def default_lmax(self, size: object) -> int:
        r"""The band limit of random test fields at ``size``: about eight pixels per wavelength at the equator.

        .. math::

            L = \min\left(12,\ \max\left(1,\ \left\lfloor N_\text{eq} / 8 \right\rfloor\right)\right),

        with :math:`N_\text{eq}` = :meth:`equator_pixels`: a quarter of the grid's Nyquist
        limit, smooth enough that resampling a rotated signal costs a few percent. 12 is
        the largest degree of :class:`~geoconv.grids.fields.BandLimitedField`.

        >>> from geoconv.grids import get_grid
        >>> [get_grid(name).default_lmax(size) for name, size in (("equirect", 8), ("healpix", 8), ("cubemap", 64))]
        [2, 4, 12]
        """
        return min(MAX_DEGREE, max(1, self.equator_pixels(size) // 8))

    def pixel_areas(self, size: object) -> np.ndarray:
        r"""The solid angle of every pixel (steradians, float64) in one signal's layout; they sum to :math:`4\pi`.

        This default is an equal-area grid's, :math:`4\pi / N`; grids whose pixels differ
        in area override it.
        """
        shape = self.signal_shape(size)
        return np.full(shape, 4 * math.pi / math.prod(shape))

    def quadrature_weights(self, size: object) -> np.ndarray:
        r"""Solid-angle quadrature weights: :meth:`pixel_areas` over :math:`4\pi`, so that they sum to 1.

        :math:`\sum_p w_p f(\hat n_p)` approximates the mean of :math:`f` over the sphere,
        :math:`\frac{1}{4\pi}\int_{S^2} f\,d\Omega`, with each pixel counted by its area
        (on equirect the rows near the poles are thin bands: the uniform pixel mean
        over-counts them by up to :math:`\sim H / \pi`).

        >>> from geoconv.grids import get_grid
        >>> w = get_grid("equirect").quadrature_weights(4)
        >>> w.shape, round(float(w.sum()), 12), bool(w[0, 0] < w[1, 0])
        ((4, 8), 1.0, True)
        """
        areas = self.pixel_areas(size)
        return areas / areas.sum()

    def quadrature_weights_of(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`quadrature_weights` at the resolution of ``x`` (checked), in ``x``'s dtype and device.

        >>> from geoconv.grids import get_grid
        >>> get_grid("healpix").quadrature_weights_of(torch.zeros(1, 1, 12, 2, 2)).shape
        torch.Size([12, 2, 2])
        """
        x = self.check(x)
        weights = self.quadrature_weights(self.resolution_of(x))
        return torch.as_tensor(weights, dtype=x.dtype, device=x.device)

    def pixel_pitch(self, size: object) -> float:
        r"""The pixel spacing in radians: the side of a square of one pixel's mean area, :math:`\sqrt{4\pi / N}`.

        Grids with a natural pitch override it (equirect: its latitude step).
        """
        return math.sqrt(4 * math.pi / math.prod(self.signal_shape(size)))

    def points_of_interest(self) -> dict[str, tuple[float, float]]:
        """Named points ``(colatitude, longitude)`` where a receptive field is telling: :data:`POINTS_OF_INTEREST`.

        Every built-in grid answers the same three, so that a sweep across grids reports
        the same metrics: on equirect the ``seam`` is where longitude wraps; on the cube
        map it is the centre of face 0, on HEALPix the middle of face 4.
        """
        return dict(POINTS_OF_INTEREST)

    def nearest_pixel(self, size: object, point: np.ndarray) -> tuple[int, np.ndarray]:
        """The pixel whose centre is nearest the unit vector ``point`` ``(3,)``: its flat index and centre.

        The index runs over one signal's flattened spatial dims; ties go to the lowest index.
        """
        vectors = self.vectors(self.resolution(size)).reshape(-1, 3)
        index = int(np.argmax(vectors @ np.asarray(point, dtype=np.float64)))
        return index, vectors[index].copy()

    def pole_turns(self, size: object) -> int:
        r"""How many rotations about the pole per turn are exact pixel permutations at ``size`` (0: none known).

        With ``n`` of them, :meth:`turn_about_pole` rotates by multiples of :math:`2\pi / n`.
        """
        return 0

    def turn_about_pole(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Rotate ``x`` about the pole by ``steps`` of :meth:`pole_turns`'s exact turns, as a permutation."""
        raise ParameterError(f"grid {self.name!r} has no exact rotation about the pole (pole_turns is 0)")

    def sample_field(self, field: BandLimitedField, size: object) -> torch.Tensor:
        """The field at this grid's pixel centres: ``shape(B, C, size)`` in the field's dtype."""
        return field.evaluate(torch.from_numpy(np.ascontiguousarray(self.vectors(self.resolution(size)))))

    def random_signal(
        self, batch: int, channels: int, size: object, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A smooth random signal: a white band-limited field of band limit :meth:`default_lmax`, default dtype.

        >>> from geoconv.grids import get_grid
        >>> get_grid("healpix").random_signal(2, 3, 4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 12, 4, 4])
        """
        from geoconv.grids.fields import BandLimitedField

        lmax = self.default_lmax(size)
        field = BandLimitedField.random(lmax, batch=batch, channels=channels, generator=generator)
        return self.sample_field(field, size).to(torch.get_default_dtype())

    def to_equirect(self, x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
        r"""Resample ``x`` onto the equirect grid ``(B, C, H, W)`` (``W = 2H`` by default), bilinearly.

        Output pixel ``(i, j)`` is :meth:`interpolate` at colatitude :math:`(i + \frac12)\pi/H`
        and longitude :math:`2\pi j/W`.
        """
        return self.interpolate(self.check(x), *equirect_centres(height, width))

    def from_equirect(self, x: torch.Tensor, size: object) -> torch.Tensor:
        """Resample an equirect map ``(B, C, H, W)`` onto this grid at ``size``, bilinearly at the pixel centres."""
        from geoconv.grids.registry import get_grid

        return get_grid("equirect").interpolate(x, *self.centres(self.resolution(size)))

    def draw_map(self, figure: Any, values: np.ndarray, size: object, *, cmap: str = "viridis") -> None:
        """Draw one signal as a latitude-longitude image (longitude 0°..360° across, north up).

        This default resamples to a ``2N x 4N`` equirect map first, ``N`` = :meth:`equator_pixels` / 4
        (:meth:`to_equirect`); HEALPix draws a Mollweide map instead. :func:`geoconv.viz.plot_map`
        draws this way for ``view="native"``; its other views (orthographic, gnomonic, Mollweide,
        lat-lon, centred on the signal) sample the map through :meth:`interpolate` instead.
        """
        from geoconv.grids._maps import draw_lat_lon

        quarter = max(1, self.equator_pixels(size) // 4)
        signal = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))[None, None]
        draw_lat_lon(figure, self.to_equirect(signal, 2 * quarter, 4 * quarter)[0, 0].numpy(), cmap=cmap)
