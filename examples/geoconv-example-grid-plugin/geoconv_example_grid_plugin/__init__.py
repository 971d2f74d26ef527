r"""An example geoconv grid plugin: the flat torus, registered as ``torus``.

geoconv finds this module through the entry point this distribution declares in the
``geoconv.grids`` group (see ``pyproject.toml``). The first time geoconv's grid registry
is read it imports this module, and :func:`geoconv.grids.register_grid` below adds the
grid, recorded as coming from ``geoconv-example-grid-plugin``. Nothing else is needed:
after ``pip install`` every op registered for every grid (``conv``, ``max_pool``,
``blur_pool``, ...) runs on ``grid="torus"``, and ``python experiments/run.py
experiment=shift_invariance grid=torus`` measures it.

The torus is the square :math:`[0, H) \times [0, W)` with opposite edges glued: one face,
layout ``(B, C, H, W)``, whose own padding is ``circular`` in both directions (what lies
beyond the right edge is the left edge, beyond the bottom the top). The planar modes
(``zeros``, ``constant``, ``reflect``, ``replicate``) are offered as baselines. A
stride-1 convolution with the torus's padding commutes exactly with every translation
:meth:`TorusGrid.roll`, the torus's symmetries; it is flat, so the shift probes apply,
not the rotation probes.

The grid only uses geoconv's public API (:class:`geoconv.grids.Grid`,
:func:`geoconv.grids.register_grid`, :mod:`geoconv.grids.planar`), as a plugin should.

Examples
--------
>>> import torch
>>> from geoconv.grids import get_grid
>>> torus = get_grid("torus")
>>> torus.pad(torch.arange(4.0).view(1, 1, 2, 2), 1)[0, 0]
tensor([[3., 2., 3., 2.],
        [1., 0., 1., 0.],
        [3., 2., 3., 2.],
        [1., 0., 1., 0.]])
"""

from __future__ import annotations

import torch

from geoconv.errors import ParameterError
from geoconv.grids import Grid, register_grid
from geoconv.grids.base import check_batch_channels, check_planar_tensor
from geoconv.grids.planar import PLANAR_PADDING_MODES, pad_planes

__all__ = ["TorusGrid"]

__version__ = "0.1.0"


class TorusGrid(Grid):
    """The flat torus: one periodic face, layout ``(B, C, H, W)``, ``circular`` padding by default.

    A grid is geometry only: it says how a signal is laid out (:meth:`shape`,
    :meth:`check`), what lies beyond the face's border (:meth:`pad`, in every mode of
    :attr:`padding_modes`) and how the faces fold into a batch of planes
    (:meth:`to_planes`, :meth:`from_planes`; one face here, so they pass through).
    geoconv's ops are written against exactly this interface.

    Examples
    --------
    >>> grid = TorusGrid()
    >>> grid.shape(2, 3, 8)
    (2, 3, 8, 8)
    >>> x = torch.arange(3.0).view(1, 1, 1, 3)
    >>> grid.pad(x, (0, 0, 1, 1))[0, 0]                # circular: the other edge
    tensor([[2., 0., 1., 2., 0.]])
    >>> grid.pad(x, (0, 0, 1, 1), "zeros")[0, 0]       # a planar baseline
    tensor([[0., 0., 1., 2., 0.]])
    """

    name = "torus"
    layout = "(B, C, H, W)"
    padding_modes = ("circular", *(mode for mode in PLANAR_PADDING_MODES if mode != "circular"))
    default_padding_mode = "circular"
    default_size = 16  # what `grid=torus` gets in Hydra without a conf/grid/torus.yaml
    spherical = False  # a flat domain: the shift probes apply, not the rotation probes

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, size, size)``: ``size`` is the side of the square torus, an integer >= 1."""
        batch, channels = check_batch_channels(batch, channels)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ParameterError(f"size for grid 'torus' must be an integer >= 1 (the side), got {size!r}")
        return (batch, channels, size, size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        """Return ``x`` if it is a ``(B, C, H, W)`` tensor with ``C, H, W >= 1``, else raise ``ShapeError``."""
        return check_planar_tensor(x, name)

    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        """Pad ``x`` ``(B, C, H, W)`` to ``(B, C, H + top + bottom, W + left + right)``.

        ``circular`` (the default) wraps both ways, each width at most its dimension; the
        planar modes are :func:`geoconv.grids.planar.pad_planes`'s.
        """
        x = self.check(x)
        return pad_planes(x, widths, self.check_mode(mode), value)

    def to_planes(self, x: torch.Tensor) -> torch.Tensor:
        """One face: the tensor is already a batch of planes."""
        return x

    def from_planes(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        """One face: nothing to unfold."""
        return y

    def roll(self, x: torch.Tensor, shifts: tuple[int, int]) -> torch.Tensor:
        """Translate ``x`` by ``shifts = (rows, columns)`` around the torus: an exact symmetry.

        >>> TorusGrid().roll(torch.arange(3.0).view(1, 1, 1, 3), (0, 1))[0, 0]
        tensor([[2., 0., 1.]])
        """
        return torch.roll(self.check(x), tuple(int(s) for s in shifts), dims=(-2, -1))


register_grid("torus", TorusGrid)
