r"""``spectral_pool``: band-limited downsampling of equirect maps, in spherical harmonics.

The input is projected onto the spherical harmonics of degree at most :math:`L` and the
result is evaluated on the coarser grid:

.. math::

    y(\theta'_i, \phi'_j) = (\mathcal{P}_L f)(\theta'_i, \phi'_j), \qquad
    \mathcal{P}_L f = \sum_{l=0}^{L} \sum_{m=-l}^{l} \langle f, Y_{lm} \rangle\, Y_{lm},

with the coarse grid's pixel centres :math:`\theta'_i = (i + \frac12)\pi/H'`,
:math:`\phi'_j = 2\pi j / W'` (``H' = H / factor``, ``W' = W / factor``) and by default the
largest band limit the coarse grid resolves, :math:`L = \lfloor(\min(H', W') - 1)/2\rfloor`
(:func:`geoconv.ops.spectral.max_lmax`). The inner products are the quadrature of
:mod:`geoconv.ops.spectral` on the input grid (Fejér's rule in :math:`\cos\theta`, the FFT in
longitude), the synthesis the exact evaluation of the finite sum.

Why it is alias-free. Strided subsampling folds every longitude frequency :math:`m \ge W'/2`
and every fine latitude structure onto lower ones. Here nothing above degree :math:`L` reaches
the output, and the coarse grid transforms degree :math:`\le L` exactly (``H' > 2L``,
``W' > 2L``): analysed again on the coarse grid, the output has exactly the coefficients of
:math:`\mathcal{P}_L f`, no more. On the input side, the quadrature of :math:`f Y_{lm}` with
:math:`f` of degree :math:`l'` is exact when :math:`l' + l \le H - 1` and :math:`|m'| + |m| < W`;
so for every input band-limited to what its own grid resolves (degree :math:`\le`
``max_lmax(H, W)``), and more generally to degree :math:`\le H - 1 - L` and order
:math:`|m'| < W - L`, the output is exactly the samples of :math:`\mathcal{P}_L f`. Content
above that, which the input grid cannot represent anyway, may alias into the kept degrees.

Symmetries. A rotation about the polar axis by :math:`\alpha` maps the pair
:math:`(Y_{l,m}, Y_{l,-m})` onto itself (a rotation by :math:`m\alpha`), so it commutes with
:math:`\mathcal{P}_L`. On the grids, rolling the input by ``factor * k`` pixels
(:math:`\alpha = 2\pi k / W'`) multiplies its longitude DFT bin :math:`m` by
:math:`e^{-im\alpha}`, which the synthesis turns into a roll of the output by ``k`` pixels:
exact for every input, band-limited or not. Every rotation :math:`R` maps the space of
degree-:math:`l` harmonics onto itself (by a Wigner matrix), and :math:`\mathcal{P}_l` is the
orthogonal projection onto that space, so :math:`R\,\mathcal{P}_L = \mathcal{P}_L R`: for inputs
band-limited as above the op commutes with every rotation,
:math:`F(R \cdot x) = R \cdot F(x)` with :math:`(R \cdot x)(v) = x(R^\top v)` sampled on the two
grids. The degree-0 coefficient, :math:`\sqrt{4\pi}` times the mean over the sphere, is kept:
the area-weighted mean passes through exactly. Unlike an average, :math:`\mathcal{P}_L` is not
positive (a sharp edge rings, Gibbs).

Cost: one real FFT of every row, ``(L + 1)^2 H`` multiply-adds per map for the analysis and
``(L + 1)^2 H'`` for the synthesis, and one inverse FFT per coarse row. No parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geoconv._checks import check_int, check_pair
from geoconv.errors import ParameterError, ShapeError
from geoconv.ops._common import SameChannelsOp, check_axis, check_input_size, check_output_faces
from geoconv.ops.registry import register_op
from geoconv.ops.spectral import max_lmax, sh_analysis, sh_synthesis
from geoconv.sizes import Layer

__all__ = ["SpectralPool", "SpectralPoolConfig"]


@dataclass
class SpectralPoolConfig:
    """Parameters of ``spectral_pool``.

    Attributes
    ----------
    factor : int
        The output is ``(H / factor, W / factor)``; ``factor`` must divide both, and
        ``W / factor`` must be even (an equirect grid). ``1`` keeps the grid: the pure
        band-limited projection.
    lmax : int, optional
        The band limit :math:`L`. ``None`` takes the largest the output grid resolves,
        ``max_lmax(H', W') = (min(H', W') - 1) // 2``; a given ``lmax`` must not exceed it.
    """

    factor: int = 2
    lmax: int | None = None

    def __post_init__(self) -> None:
        self.factor = check_int("factor", self.factor, minimum=1)
        if self.lmax is not None:
            self.lmax = check_int("lmax", self.lmax, minimum=0)


@register_op("spectral_pool", grids=("equirect",), config=SpectralPoolConfig, same_channels=True)
class SpectralPool(SameChannelsOp):
    r"""Band-limited (spectral) downsampling of equirect maps: alias-free, commutes with rotations.

    Projects every channel onto the spherical harmonics of degree ``<= lmax`` (analysis on
    the input grid) and evaluates the projection on the grid ``factor`` times coarser
    (synthesis); see :mod:`geoconv.ops.spectral_pool` for the maths. ``lmax`` defaults to the
    largest degree the coarse grid resolves. Keeps the channel count; has no parameters and
    no padding (``padding_mode`` is refused, as for ``spectral_conv``).

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        ``"equirect"``.
    config : SpectralPoolConfig
        ``factor`` and ``lmax``.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H / factor, W / factor)``, ``factor`` dividing ``H`` and ``W``,
    ``W / factor`` even, ``H / factor > 2 lmax`` and ``W / factor > 2 lmax``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> pool = build_op("spectral_pool", 2, grid="equirect")
    >>> pool(torch.randn(1, 2, 16, 32)).shape
    torch.Size([1, 2, 8, 16])
    >>> pool.band_limit(16, 32)   # max_lmax(8, 16)
    3
    >>> x = torch.full((1, 1, 8, 16), 2.5, dtype=torch.float64)   # a constant is degree 0
    >>> y = build_op("spectral_pool", 1, grid="equirect", factor=4)(x)
    >>> y.shape, round(float((y - 2.5).abs().max()), 12)
    (torch.Size([1, 1, 2, 4]), 0.0)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "equirect",
        config: SpectralPoolConfig | None = None,
    ) -> None:
        super().__init__("spectral_pool", in_channels, out_channels, grid)
        self.config = config or SpectralPoolConfig()

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``(H / factor, W / factor)`` for an input ``(H, W)``; ``ShapeError`` when ``factor`` does not divide."""
        height, width = check_pair("input_size", input_size, minimum=1)
        return self._coarse(height, width, f"input_size={(height, width)}")

    def band_limit(self, height: int, width: int) -> int:
        """The degree :math:`L` used for an input grid ``(H, W)``: ``lmax``, or ``max_lmax(H', W')``."""
        height, width = check_pair("input_size", (height, width), minimum=1)
        return self._plan(height, width, f"input_size={(height, width)}")[2]

    def _coarse(self, height: int, width: int, what: str) -> tuple[int, int]:
        factor = self.config.factor
        if factor > height or factor > width:
            raise ShapeError(
                f"spectral_pool: factor={factor} is larger than the grid it pools ({what}, H={height}, W={width}): "
                "the output would have no rows or columns, so no band limit (not even l=0, the mean) is left; "
                f"use factor <= {min(height, width)}"
            )
        if height % factor or width % factor:
            raise ShapeError(
                f"spectral_pool: factor={factor} must divide the height H and the width W ({what}, H={height}, "
                f"W={width}; H % factor = {height % factor}, W % factor = {width % factor}), so that the output is "
                "an equirect grid whose pixel centres sit at the same longitudes"
            )
        return height // factor, width // factor

    def _plan(self, height: int, width: int, what: str) -> tuple[int, int, int]:
        """``(H', W', L)`` for an input grid ``(H, W)``, checked."""
        out_h, out_w = self._coarse(height, width, what)
        limit = max_lmax(out_h, out_w)
        lmax = self.config.lmax
        if lmax is None:
            return out_h, out_w, limit
        if lmax > limit:
            # The coarse grid is the tighter bound (H' <= H, W' <= W); both are named.
            raise ShapeError(
                f"spectral_pool: lmax={lmax} is more than the output grid resolves ({what}, factor="
                f"{self.config.factor}, output H'={out_h}, W'={out_w}): an exact transform needs H' > 2*lmax and "
                f"W' > 2*lmax, i.e. lmax <= {limit} here (the input grid H={height}, W={width} resolves lmax <= "
                f"{max_lmax(height, width)}); lower lmax or the factor, or leave lmax=None"
            )
        return out_h, out_w, lmax

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        r"""Refuse: the op is not local. Every output pixel depends on every input pixel.

        The projection :math:`\mathcal{P}_L` is a convolution with the zonal kernel
        :math:`\sum_{l \le L} \frac{2l+1}{4\pi} P_l(u \cdot v)`, which has no compact support.
        """
        check_axis(axis)
        check_input_size(input_size)
        raise ParameterError(
            "spectral_pool is not local: it band-limits in spherical harmonics, so every output pixel depends on "
            "every input pixel and no planar kernel (geoconv.sizes.Layer) describes it"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x, floating=True)
        height, width = int(x.shape[-2]), int(x.shape[-1])
        out_h, out_w, lmax = self._plan(height, width, f"x of shape {tuple(x.shape)}")
        check_output_faces(self.op_name, self.grid, x, (out_h, out_w), factor=self.config.factor)
        if x.shape[0] == 0:
            # An empty batch: the FFT backends refuse zero-length batches.
            return x.new_zeros(0, x.shape[1], out_h, out_w)
        # torch's FFTs take no half precision on the CPU: compute in float32 and return the input dtype.
        dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        coeffs = sh_analysis(x.to(dtype), lmax)  # (B, C, L + 1, L + 1, 2)
        return sh_synthesis(coeffs, out_h, out_w).to(x.dtype)

    def extra_repr(self) -> str:
        lmax = self.config.lmax if self.config.lmax is not None else "None (max_lmax of the output grid)"
        return f"{self.in_channels}, factor={self.config.factor}, lmax={lmax}, grid='equirect'"
