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

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from geoconv._checks import check_choice, check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError

__all__ = ["Grid", "PadWidths", "check_batch_channels", "check_pad_widths", "check_planar_tensor"]

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
    """

    spherical: ClassVar[bool] = False
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_planar_tensor(x: object, name: str = "x") -> torch.Tensor:
    """Check the planar layout ``(B, C, H, W)`` with non-empty spatial dims."""
    x = check_tensor(x, ndim=4, name=name, layout="(B, C, H, W)")
    if x.shape[-1] == 0 or x.shape[-2] == 0 or x.shape[1] == 0:
        raise ShapeError(f"{name} must have C, H and W >= 1, got shape {tuple(x.shape)}")
    return x
