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
import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
from torch.fx.experimental.symbolic_shapes import guard_scalar

from geoconv._checks import check_int
from geoconv.errors import ParameterError
from geoconv.grids._blocks import PaddingPlan, compile_padding, pad_adjoint_with_plan, pad_with_plan
from geoconv.grids._gather import TABLES, PadTable, cached, gather, gather_adjoint, register_builder
from geoconv.grids.base import Grid, PadWidths, check_pad_widths
from geoconv.grids.planar import PLANAR_PADDING_MODES, pad_planes

__all__ = ["SphericalGrid", "angles_to_vectors", "equirect_centres", "reference_padding", "vectors_to_angles"]


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
    """Colatitude in ``[0, pi]`` and longitude in ``[0, 2 pi)`` of vectors ``(..., 3)``."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1)
    colat = np.arccos(np.clip(v[..., 2] / norm, -1.0, 1.0))
    lon = np.mod(np.arctan2(v[..., 1], v[..., 0]), 2 * np.pi)
    return colat, lon


@register_builder("padding_plan")
def _build_plan(grid: str, mode: str, *numbers: int, device: torch.device) -> PaddingPlan:
    """The padding plan of ``grid``'s ``mode``; ``numbers`` are the spatial shape, then the 4 widths."""
    from geoconv.grids import get_grid

    owner: SphericalGrid = get_grid(grid)  # type: ignore[assignment]
    spatial, widths = tuple(numbers[:-4]), tuple(numbers[-4:])
    return compile_padding(owner._build_table(spatial, widths, mode), widths, device)  # type: ignore[arg-type]


class SphericalGrid(Grid):
    """Base class of the spherical grids.

    Subclasses set :attr:`name`, :attr:`layout`, :attr:`own_modes`, :attr:`faces`
    (0 for a single-face layout ``(B, C, H, W)``, else the number of faces in dim -3) and
    implement :meth:`shape`, :meth:`check`, :meth:`pad_table`, :meth:`centres` and
    :meth:`interpolate`.
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
