"""The plane: one face, layout ``(B, C, H, W)``, and torch's padding modes.

Padding modes
-------------
``zeros``
    zeros beyond the border (what ``torch.nn.Conv2d`` does).
``constant``
    a constant ``value`` beyond the border.
``reflect``
    the mirror image without repeating the edge pixel: ``[c b | a b c d | c b]``;
    each width must be smaller than the size of its dimension.
``replicate``
    the edge pixel repeated: ``[a a | a b c d | d d]``.
``circular``
    the opposite border, as on a torus: ``[c d | a b c d | a b]``; each width at most
    the size of its dimension. A stride-1 convolution with circular padding commutes
    exactly with integer circular shifts.

Examples
--------
>>> import torch
>>> from geoconv.grids import planar
>>> x = torch.arange(4.0).view(1, 1, 1, 4)
>>> planar.pad(x, (0, 0, 2, 2), "circular")
tensor([[[[2., 3., 0., 1., 2., 3., 0., 1.]]]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from geoconv._checks import check_int
from geoconv.errors import ParameterError
from geoconv.grids.base import Grid, check_batch_channels, check_pad_widths, check_planar_tensor

__all__ = ["GRID", "PlanarGrid", "PLANAR_PADDING_MODES", "pad", "pad_planes"]

PLANAR_PADDING_MODES: tuple[str, ...] = ("zeros", "constant", "reflect", "replicate", "circular")


def pad_planes(x: torch.Tensor, widths: object, mode: str, value: float = 0.0, name: str = "x") -> torch.Tensor:
    """Pad the last two dims of ``x`` (any leading dims) with a planar mode.

    This is the per-face baseline every grid offers. Widths are ``(top, bottom, left,
    right)``; validation happens here so that torch never sees an impossible request.
    """
    top, bottom, left, right = check_pad_widths(widths)
    if mode not in PLANAR_PADDING_MODES:
        raise ParameterError(f"planar padding mode must be one of {PLANAR_PADDING_MODES}, got {mode!r}")
    if top == bottom == left == right == 0:
        return x
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if mode == "reflect" and (max(top, bottom) >= height or max(left, right) >= width):
        raise ParameterError(
            f"reflect padding needs each width smaller than its dimension: got widths "
            f"(top, bottom, left, right)={(top, bottom, left, right)} for {name} of spatial size "
            f"{height}x{width}; use 'replicate' or 'circular', or pad less"
        )
    if mode == "circular" and (max(top, bottom) > height or max(left, right) > width):
        raise ParameterError(
            f"circular padding needs each width at most its dimension: got widths "
            f"(top, bottom, left, right)={(top, bottom, left, right)} for {name} of spatial size "
            f"{height}x{width}"
        )
    torch_widths = (left, right, top, bottom)
    if mode in ("zeros", "constant"):
        return F.pad(x, torch_widths, mode="constant", value=0.0 if mode == "zeros" else float(value))
    if x.dtype == torch.bool:
        # torch has no reflection/replication padding for bool: pad the same bytes as uint8.
        return pad_planes(x.view(torch.uint8), widths, mode, value, name).view(torch.bool)
    # torch's non-constant modes want (N, C, H, W); fold any other leading dims.
    lead = x.shape[:-2]
    planes = x.reshape(-1, 1, height, width) if x.dim() != 4 else x
    out = F.pad(planes, torch_widths, mode=mode)
    return out.reshape(*lead, out.shape[-2], out.shape[-1])


class PlanarGrid(Grid):
    """The plane as one face: layout ``(B, C, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from geoconv.grids import get_grid
    >>> grid = get_grid("planar")
    >>> grid.pad(torch.ones(1, 1, 2, 2), 1).shape
    torch.Size([1, 1, 4, 4])
    """

    name = "planar"
    layout = "(B, C, H, W)"
    padding_modes = PLANAR_PADDING_MODES
    default_padding_mode = "zeros"
    default_size = 32
    bounded = True  # nothing lies beyond the image's border: zeros by convention

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        """``(batch, channels, size, size)``."""
        batch, channels = check_batch_channels(batch, channels)
        size = check_int("size for grid 'planar'", size, minimum=1)
        return (batch, channels, size, size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        return check_planar_tensor(x, name)

    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        """Pad ``x`` of shape ``(B, C, H, W)`` to ``(B, C, H + top + bottom, W + left + right)``."""
        x = self.check(x)
        return pad_planes(x, widths, self.check_mode(mode), value)

    def to_planes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def from_planes(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        return y


GRID = PlanarGrid()


def pad(x: torch.Tensor, widths: object, mode: str = "zeros", value: float = 0.0) -> torch.Tensor:
    """Pad a planar tensor ``(B, C, H, W)``; see the module docstring for the modes.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(B, C, H, W)``.
    widths : int, pair or 4-tuple
        ``w``, ``(h, w)`` or ``(top, bottom, left, right)``.
    mode : str
        One of ``zeros``, ``constant``, ``reflect``, ``replicate``, ``circular``.
    value : float
        The fill value for ``constant``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, C, H + top + bottom, W + left + right)``.
    """
    return GRID.pad(x, widths, mode, value)
