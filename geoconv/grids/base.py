"""The grid interface: a tensor layout, a set of padding modes, and a way to planes.

A grid is geometry only. It says how a signal is laid out in a tensor, which padding
modes it offers (what lies beyond each face's border), and how its faces fold into a
batch of planar images so that one planar operator serves every grid::

    padded = grid.pad(x, (top, bottom, left, right), mode)   # still in the grid's layout
    planes = grid.to_planes(padded)                            # (B * faces, C, H', W')
    y = planar_op(planes)
    y = grid.from_planes(y, batch=x.shape[0])                  # back to the grid's layout

Widths are always given per side, ``(top, bottom, left, right)``, because TensorFlow-style
"same" padding with a stride puts the odd extra pixel on the bottom/right.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from geoconv._checks import check_choice, check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError

__all__ = ["Grid", "PadWidths", "check_batch_channels", "check_pad_widths", "check_planar_tensor"]

if TYPE_CHECKING:
    import numpy as np

    from geoconv.grids.fields import BandLimitedField

PadWidths = tuple[int, int, int, int]
"""Padding widths per side: ``(top, bottom, left, right)``."""


def check_pad_widths(widths: object, name: str = "widths") -> PadWidths:
    """Return ``widths`` as a 4-tuple ``(top, bottom, left, right)`` of ints >= 0.

    An int pads every side by the same amount; a pair ``(h, w)`` pads top and bottom by
    ``h`` and left and right by ``w``.

    >>> check_pad_widths(1)
    (1, 1, 1, 1)
    >>> check_pad_widths((1, 2))
    (1, 1, 2, 2)
    """
    if isinstance(widths, int) and not isinstance(widths, bool):
        w = check_int(name, widths, minimum=0)
        return (w, w, w, w)
    if isinstance(widths, tuple | list) and len(widths) in (2, 4):
        values = [check_int(f"{name}[{i}]", v, minimum=0) for i, v in enumerate(widths)]
        if len(values) == 2:
            return (values[0], values[0], values[1], values[1])
        return (values[0], values[1], values[2], values[3])
    raise ParameterError(
        f"{name} must be an int, a pair (height, width) or a 4-tuple (top, bottom, left, right) "
        f"of ints >= 0, got {widths!r}"
    )


def check_batch_channels(batch: object, channels: object) -> tuple[int, int]:
    """Validate the ``batch`` (>= 0) and ``channels`` (>= 1) arguments of :meth:`Grid.shape`."""
    return check_int("batch", batch, minimum=0), check_int("channels", channels, minimum=1)


class Grid(ABC):
    """A discretisation of the plane or the sphere as a stack of planar faces.

    Subclasses set the class attributes and implement :meth:`check`, :meth:`pad`,
    :meth:`to_planes` and :meth:`from_planes`.

    Attributes
    ----------
    name : str
        The name used in configs (``grid="planar"``).
    layout : str
        The tensor layout, e.g. ``"(B, C, H, W)"``.
    padding_modes : tuple of str
        Every padding mode :meth:`pad` accepts.
    default_padding_mode : str
        The grid's own padding (``"zeros"`` on the plane, ``"sphere"`` on equirect, ...).
    spherical : bool
        True for a discretisation of the sphere (rotation probes apply), False for a flat
        domain such as the plane or a torus (shift probes apply).
    default_size : int
        The resolution a config gets when it names none (the Hydra node ``grid=NAME``
        that :func:`geoconv.experiment.config.register_configs` stores for a grid
        without a YAML file); :func:`~geoconv.grids.register_grid` checks that
        :meth:`shape` accepts it.
    bounded : bool
        True for a domain with an edge, beyond which nothing lies (the plane): its padding
        is a convention, so an op may choose its own default there, and torch's kernels
        may pad zeros themselves. False where every padded pixel is a real neighbour (a
        torus, the sphere). Ops ask this, never the grid's name.
    """

    spherical: ClassVar[bool] = False
    default_size: ClassVar[int] = 16
    bounded: ClassVar[bool] = False
    name: ClassVar[str]
    layout: ClassVar[str]
    padding_modes: ClassVar[tuple[str, ...]]
    default_padding_mode: ClassVar[str]

    def check_mode(self, mode: str | None) -> str:
        """Return ``mode``, or the grid's default for ``None``; raise for an unknown mode."""
        if mode is None:
            return self.default_padding_mode
        return check_choice(f"padding_mode for grid {self.name!r}", mode, self.padding_modes)

    @abstractmethod
    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """The tensor shape of ``batch`` signals with ``channels`` channels at resolution ``size``.

        ``size`` is the grid's natural resolution parameter: the side of the image on the
        plane, the height on equirect, the face side on the cube, nside on HEALPix.
        """

    @abstractmethod
    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a tensor in this grid's layout, else raise ``ShapeError``."""

    @abstractmethod
    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        """Pad every face of ``x`` by ``widths`` with ``mode``; the layout is kept."""

    def pad_to_planes(
        self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0
    ) -> torch.Tensor:
        """``to_planes(pad(x, widths, mode, value))``; grids with faces write it without a transposing copy."""
        return self.to_planes(self.pad(x, widths, mode, value))

    @abstractmethod
    def to_planes(self, x: torch.Tensor) -> torch.Tensor:
        """Fold the faces into the batch: ``(B * faces, C, H, W)``."""

    @abstractmethod
    def from_planes(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        """Undo :meth:`to_planes` for a batch of ``batch`` signals."""

    def pad_adjoint(self, y: torch.Tensor, widths: object, mode: str | None, source: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`pad` for inputs shaped like ``source``.

        ``<pad(x), y> = <x, pad_adjoint(y)>``; the transposed convolution is the adjoint
        of "pad, then convolve". Padding is linear, so its adjoint is its vector-Jacobian
        product, which is what this default computes (differentiably).
        """
        zeros = torch.zeros_like(source)
        _, vjp = torch.func.vjp(lambda t: self.pad(t, widths, mode), zeros)
        return vjp(y)[0]

    def face_problem(self, height: int, width: int) -> str | None:
        """Why faces of ``height`` x ``width`` pixels are not valid on this grid, or ``None`` if they are.

        Ops check their output's face size with this before computing it, so that an op
        never returns a tensor the next op on the same grid would refuse.

        >>> from geoconv.grids import get_grid
        >>> get_grid("healpix").face_problem(3, 3)
        'square faces n x n with n = nside a power of two'
        """
        if height < 1 or width < 1:
            return "faces of at least 1x1 pixels"
        return None

    def spatial_shape(self, x: torch.Tensor) -> tuple[int, int]:
        """The height and width of one face."""
        return int(x.shape[-2]), int(x.shape[-1])

    # -- signals and maps: what probes, data and figures ask of any grid -------------------

    def signal_shape(self, size: Any) -> tuple[int, ...]:
        """The dims of one signal (one channel) at ``size``: ``(H, W)``, ``(6, F, F)``, ``(12, n, n)``.

        ``size`` as :meth:`shape_at` takes it (a resolution, or a face ``(H, W)``).

        >>> from geoconv.grids import get_grid
        >>> get_grid("equirect").signal_shape(4), get_grid("healpix").signal_shape(2)
        ((4, 8), (12, 2, 2))
        """
        return tuple(self.shape_at(1, 1, size)[2:])

    def random_signal(
        self, batch: int, channels: int, size: Any, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A random test signal ``shape(batch, channels, size)`` in the default dtype.

        White noise, :math:`x \\sim \\mathcal N(0, 1)` per pixel, on a flat grid; spherical
        grids return a smooth band-limited field instead
        (:meth:`geoconv.grids.sphere.SphericalGrid.random_signal`).

        Examples
        --------
        >>> from geoconv.grids import get_grid
        >>> get_grid("planar").random_signal(2, 3, 4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 4, 4])
        """
        return torch.randn(self.shape(batch, channels, size), generator=generator)

    def sample_field(self, field: BandLimitedField, size: Any) -> torch.Tensor:
        """The field on the sphere ``field`` sampled at this grid's pixel centres.

        A flat grid has no sphere to sample: this default raises; spherical grids sample
        (:meth:`geoconv.grids.sphere.SphericalGrid.sample_field`).

        Raises
        ------
        ParameterError
            Always, naming the spherical grids that can sample a field.
        """
        # Imported on call: the registry sits above this module (it registers Grid subclasses).
        from geoconv.grids.registry import spherical_grids

        raise ParameterError(
            f"grid {self.name!r} is flat ({self.layout}): a field on the sphere is sampled on a spherical grid, "
            f"one of {spherical_grids()}"
        )

    def draw_map(self, figure: Any, values: np.ndarray, size: Any, *, cmap: str = "viridis") -> None:
        """Draw one signal on a matplotlib ``figure``: ``values`` in the layout of one signal at ``size``.

        This default shows the faces as one image, stacked top to bottom (one face on a
        flat grid: the image itself, row 0 at the top). Spherical grids draw a world map
        (:meth:`geoconv.grids.sphere.SphericalGrid.draw_map`). :func:`geoconv.viz.plot_map`
        checks ``values`` against the grid before it calls this (for a spherical grid, only with
        ``view="native"``).
        """
        from geoconv.grids._maps import draw_image

        draw_image(figure, values.reshape(-1, values.shape[-1]), cmap=cmap)

    # -- quadrature: what global pooling and the norms weight each pixel by -------------

    def quadrature_weights(self, size: Any) -> np.ndarray:
        r"""Quadrature weights of one signal at ``size`` (float64, one signal's layout); they sum to 1.

        The mean of a signal :math:`x` over the domain is :math:`\sum_p w_p x_p`. A flat
        grid's pixels are all alike, so this default is uniform, :math:`w_p = 1/N`;
        spherical grids weight by solid angle
        (:meth:`geoconv.grids.sphere.SphericalGrid.quadrature_weights`).

        >>> from geoconv.grids import get_grid
        >>> get_grid("planar").quadrature_weights(2)
        array([[0.25, 0.25],
               [0.25, 0.25]])
        """
        import numpy as np

        shape = self.signal_shape(size)
        return np.full(shape, 1.0 / math.prod(shape))

    def quadrature_weights_of(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`quadrature_weights` for the resolution of ``x``: shape ``x.shape[2:]``, ``x``'s dtype and device.

        This default is uniform over every dim after ``C`` (any flat layout, faces too).

        >>> from geoconv.grids import get_grid
        >>> get_grid("planar").quadrature_weights_of(torch.zeros(1, 1, 2, 4)).sum().item()
        1.0
        """
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            raise ShapeError(f"x must be a tensor of shape (B, C, *spatial), got {_describe(x)}")
        spatial = tuple(x.shape[2:])
        return torch.full(spatial, 1.0 / math.prod(spatial), dtype=x.dtype, device=x.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- resolutions as configs write them (the benchmark job's sizes) --------------------

    def shape_at(self, batch: int, channels: int, size: object) -> tuple[int, ...]:
        """The tensor shape at a resolution written as a config writes it.

        Parameters
        ----------
        batch, channels : int
            As in :meth:`shape`.
        size : int or (int, int)
            The grid's resolution parameter (what :meth:`shape` takes), or a pair ``(H, W)``:
            faces of ``H x W`` pixels, which :meth:`face_problem` must accept (an equirect
            map need not be 2:1; a cube's faces must be square).

        Returns
        -------
        tuple of int
            ``shape(batch, channels, size)``; for a pair, ``shape(batch, channels, H)`` with
            its last two dims (one face) replaced by ``(H, W)``.

        Raises
        ------
        ParameterError
            For a resolution or faces the grid does not accept, saying why.

        Examples
        --------
        >>> from geoconv.grids import get_grid
        >>> get_grid("equirect").shape_at(1, 2, [4, 6]), get_grid("cubemap").shape_at(1, 2, 4)
        ((1, 2, 4, 6), (1, 2, 6, 4, 4))
        """
        if not isinstance(size, tuple | list):
            return tuple(self.shape(batch, channels, size))  # type: ignore[arg-type]
        if len(size) != 2:
            raise ParameterError(f"size for grid {self.name!r} must be a resolution or a pair [H, W], got {size!r}")
        height = check_int(f"size[0] (H) for grid {self.name!r}", size[0], minimum=1)
        width = check_int(f"size[1] (W) for grid {self.name!r}", size[1], minimum=1)
        problem = self.face_problem(height, width)
        if problem is not None:
            raise ParameterError(f"size {list(size)} for grid {self.name!r}: the grid needs {problem}")
        return (*self.shape(batch, channels, height)[:-2], height, width)

    def size_for_pixels(self, pixels: int) -> int:
        """The resolution whose signals have the pixel count nearest ``pixels`` (the smaller on a tie).

        The pixel count of one signal is the product of :meth:`shape`'s dims after ``C``. This
        default tries the resolutions 1, 2, 3, ... that :meth:`shape` accepts until the count
        reaches ``pixels``; a grid with a closed form may override it.

        Examples
        --------
        >>> from geoconv.grids import get_grid
        >>> get_grid("equirect").size_for_pixels(192)  # 2 H^2 = 192 at H = 9.8: 200 pixels at H = 10
        10
        >>> get_grid("healpix").size_for_pixels(700)  # 12 nside^2: 192 (nside 4) or 768 (nside 8)
        8
        """
        pixels = check_int("pixels", pixels, minimum=1)
        best, best_gap = None, None
        for size in range(1, pixels + 1):  # every grid has at least `size` pixels at resolution `size`
            try:
                count = int(torch.Size(self.shape(1, 1, size)[2:]).numel())
            except ValueError:  # not a resolution of this grid (GeoconvError is a ValueError)
                continue
            if best_gap is None or abs(count - pixels) < best_gap:
                best, best_gap = size, abs(count - pixels)
            if count >= pixels:
                break
        if best is None:
            raise ParameterError(f"grid {self.name!r} accepts no resolution from 1 to {pixels}")
        return best

    def size_label(self, size: object) -> str:
        """A short readable label of the resolution ``size`` for tables: one signal's dims by default.

        Examples
        --------
        >>> from geoconv.grids import get_grid
        >>> get_grid("equirect").size_label(64), get_grid("healpix").size_label(4), get_grid("cubemap").size_label(8)
        ('64×128', 'nside 4', 'face 8')
        """
        return "×".join(str(n) for n in self.shape_at(1, 1, size)[2:])


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dim()}-D tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def check_planar_tensor(x: object, name: str = "x") -> torch.Tensor:
    """Check the planar layout ``(B, C, H, W)`` with non-empty spatial dims."""
    x = check_tensor(x, ndim=4, name=name, layout="(B, C, H, W)")
    if x.shape[-1] == 0 or x.shape[-2] == 0 or x.shape[1] == 0:
        raise ShapeError(f"{name} must have C, H and W >= 1, got shape {tuple(x.shape)}")
    return x
