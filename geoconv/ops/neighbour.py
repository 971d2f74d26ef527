r"""``neighbour_conv``: the HEALPix 9-tap neighbour convolution of NNhealpix.

Krachmalnicoff & Tomasi (2019), *Convolutional neural networks on the HEALPix sphere: a
pixel-based algorithm and its application to CMB data analysis*, A&A 628, A129. Each pixel
is convolved with its 8 healpy neighbours and itself:

.. math::

    y_o(q) = b_o + \sum_{c} \sum_{s=0}^{8} w_{o,c,s}\; x_c\big(\mathrm{nb}(q, s)\big)

where :math:`\mathrm{nb}(q, s)` is the pixel in stencil cell :math:`s` around :math:`q`
(``healpy.get_all_neighbours`` and the pixel itself; see :mod:`geoconv.ops._healpix_graph`
for the cell of each compass direction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from geoconv._checks import check_bool, check_choice, check_pair
from geoconv.ops._common import GridOp, check_axis, check_input_size, init_conv_parameters
from geoconv.ops._healpix_graph import MISSING_POLICIES, StencilTables, check_healpix_input, stencil_tables
from geoconv.ops.registry import register_op
from geoconv.sizes import Layer

__all__ = ["NeighbourConv", "NeighbourConvConfig"]


@dataclass
class NeighbourConvConfig:
    """Parameters of ``neighbour_conv``.

    Attributes
    ----------
    bias : bool
        Add a learned bias.
    missing : ``"mean"``, ``"centre"`` or ``"zero"``
        What the stencil corner reads at the pixels where healpy has no neighbour there
        (24 pixels, next to the 8 points where only 3 base faces meet; at nside 1 two
        corners of every pixel): the mean of the
        two stencil cells it shares an edge with (the neighbours on either side of it), the
        centre pixel, or zero. ``"mean"`` and ``"centre"`` keep a constant map constant.
    """

    bias: bool = True
    missing: str = "mean"

    def __post_init__(self) -> None:
        self.bias = check_bool("bias", self.bias)
        self.missing = check_choice("missing", self.missing, MISSING_POLICIES)


@register_op("neighbour_conv", grids=("healpix",), config=NeighbourConvConfig)
class NeighbourConv(GridOp):
    r"""HEALPix neighbour convolution (NNhealpix; Krachmalnicoff & Tomasi 2019): a learned 9-tap filter.

    Every pixel and its 8 healpy neighbours (``healpy.get_all_neighbours``, NESTED) are
    mixed by a learned filter shared over the sphere:

    .. math::

        y_o(q) = b_o + \sum_{c} \sum_{d \in \{-1,0,1\}^2} w_{o,c,1+d_0,1+d_1}\, x_c\big(\mathrm{nb}(q, d)\big)

    The weight is a 3x3 kernel, ``(C_out, C_in, 3, 3)``, laid out like ``conv``'s: inside a
    face, cell ``(1 + di, 1 + dj)`` multiplies ``x[..., f, i + di, j + dj]``, and healpy's
    compass directions sit at ``[[S, SW, W], [SE, centre, NW], [E, NE, N]]``. Across face
    borders the taps follow healpy's neighbours. Where healpy has no neighbour (a missing
    corner, 24 pixels) the tap follows ``missing`` (default: the mean of the two cells
    next to the corner).

    The stencil directions are the same for every base face of a row, so the op commutes
    exactly with the 90 degree turn about the polar axis for any weights.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    grid : str
        ``"healpix"``.
    config : NeighbourConvConfig
        ``bias`` and the ``missing``-neighbour policy.

    Shapes
    ------
    ``(B, C_in, 12, n, n) -> (B, C_out, 12, n, n)``, n = nside a power of two.

    Notes
    -----
    Inside a face the stencil is a 3x3 convolution, and healpy's neighbours across face
    borders are what ``healpix`` padding by one pixel puts there; at the missing corners
    that padding holds the mean of the two adjacent cells (the ``"mean"`` policy). So the
    op runs as ``healpix`` padding, ``conv2d`` on the 12 faces, and a correction at the 24
    pixels from the padding's corner value to the policy's (zero for ``"mean"``): about
    the cost of ``conv``, and no 9-fold tap tensor.
    :meth:`taps` is the literal gather (the reference path, ``(B, C, 9, 12 n^2)``).

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> conv = build_op("neighbour_conv", 3, 8, grid="healpix")
    >>> conv(torch.randn(2, 3, 12, 4, 4)).shape
    torch.Size([2, 8, 12, 4, 4])
    >>> conv.weight.shape
    torch.Size([8, 3, 3, 3])
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "healpix", config: NeighbourConvConfig | None = None
    ) -> None:
        # The stencil is healpy's neighbours: the healpix padding, whatever the grid's default.
        super().__init__(grid, "healpix", op_name="neighbour_conv")
        config = config or NeighbourConvConfig()
        self.config = config
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.empty(out_channels)) if config.bias else None
        init_conv_parameters(self.weight, self.bias)

    def _missing_values(self, flat: torch.Tensor, tables: StencilTables) -> torch.Tensor:
        """What each missing corner reads under the policy, ``(B, C, m)``, from ``flat`` ``(B, C, 12 n^2)``."""
        policy = self.config.missing
        if policy == "mean":
            return 0.5 * (flat[..., tables.adjacent[0]] + flat[..., tables.adjacent[1]])
        if policy == "centre":
            return flat[..., tables.pixel]
        return flat.new_zeros(*flat.shape[:-1], tables.pixel.numel())

    def taps(self, x: torch.Tensor) -> torch.Tensor:
        """The 9 stencil taps of every pixel, ``(B, C, 9, 12 n^2)``, cell ``s = 3 (di + 1) + (dj + 1)``.

        The literal gather (9 values per pixel, the missing-corner policy applied): the
        reference the fast :meth:`forward` is tested against, and a way to inspect what
        each weight multiplies. ``forward(x)`` equals
        ``einsum("ocs,bcsp->bop", weight.flatten(2), taps(x)) + bias``.
        """
        nside, npix = check_healpix_input(x, self.in_channels, self.weight, op="neighbour_conv")
        tables = stencil_tables(nside, x.device)
        batch, channels = x.shape[:2]
        flat = x.reshape(batch, channels, npix)
        taps = flat.index_select(-1, tables.index)
        taps[..., tables.cell * npix + tables.pixel] = self._missing_values(flat, tables)
        return taps.view(batch, channels, 9, npix)

    def gather_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The op as NNhealpix computes it: the 9-tap gather of :meth:`taps`, then one contraction.

        Equal to :meth:`forward` (the reference it is tested against) and about 9x its memory
        traffic: the benchmark's ``neighbour_gather`` baseline.
        """
        y = torch.einsum("ocs,bcsp->bop", self.weight.flatten(2), self.taps(x))
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(x.shape[0], self.out_channels, *x.shape[2:])

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The face size is kept: ``(n, n)``."""
        return check_pair("input_size", input_size, minimum=1)

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """One 3x3 layer with padding 1: inside a face the stencil is a 3x3 convolution.

        Across face borders the taps follow healpy's neighbours, which the ``healpix``
        padding by one pixel puts there.

        >>> from geoconv import build_op
        >>> build_op("neighbour_conv", 1, 1, grid="healpix").layers()
        [Layer(kernel_size=3, stride=1, padding=1, dilation=1)]
        """
        check_axis(axis)
        check_input_size(input_size)
        return [Layer(kernel_size=3, stride=1, padding=1, dilation=1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nside, npix = check_healpix_input(x, self.in_channels, self.weight, op="neighbour_conv")
        batch, channels = x.shape[:2]
        tables = stencil_tables(nside, x.device)
        wanted = self._missing_values(x.reshape(batch, channels, npix), tables)
        side = nside + 2
        face, cell = tables.padded // (side * side), tables.padded % (side * side)

        def kernel(planes: torch.Tensor, _: tuple[int, int]) -> torch.Tensor:
            y = F.conv2d(planes, self.weight, self.bias)  # (B * 12, O, n, n)
            # The padding's value at each missing corner is replaced by the policy's, through the
            # corner's weight: y[q] += sum_c w[:, c, s] (wanted - padded) at the 24 pixels.
            # The face count, not -1: an empty batch (B = 0) has no size to infer.
            padded = planes.reshape(batch, 12, channels, side * side)[:, face, :, cell]  # (m, B, C)
            delta = wanted - padded.permute(1, 2, 0)
            correction = torch.einsum("bcm,ocm->mbo", delta, self.weight.flatten(2)[:, :, tables.cell])
            # y's memory is (B, 12, O, n, n); address it as (12, n * n, B, O) to add per pixel,
            # accumulating because at nside 1 one pixel has two missing corners.
            area = nside * nside
            by_pixel = y.view(batch, 12, self.out_channels, area).permute(1, 3, 0, 2)
            by_pixel.index_put_((tables.pixel // area, tables.pixel % area), correction, accumulate=True)
            return y

        return self.run_planar(x, kernel, (1, 1, 1, 1), (nside, nside))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, bias={self.config.bias}, missing={self.config.missing!r}, "
            f"grid={self.grid.name!r}"
        )
