r"""``spectral_conv``: an SO(3)-equivariant convolution on the equirectangular grid, in spherical harmonics.

The input is taken to spherical-harmonic coefficients, each degree :math:`l` mixes the
channels with its own matrix (the same for every order :math:`m`: a zonal, isotropic
filter), and the result goes back to the same grid:

.. math::

    y_o = b_o + \sum_{l=0}^{L} \sum_{c} w_{l o c}\, \mathcal{P}_l x_c,
    \qquad
    (\mathcal{P}_l f)(v) = \sum_{m=-l}^{l} \langle f, Y_{lm} \rangle\, Y_{lm}(v),

which is the spherical convolution of :math:`x` with the zonal kernels
:math:`k_{oc}(u \cdot v) = \sum_l w_{loc} \frac{2l+1}{4\pi} P_l(u \cdot v)`. Each
:math:`\mathcal{P}_l` commutes with every rotation, so for inputs band-limited to
:math:`l \le L` the op is exactly SO(3)-equivariant: :math:`F(R \cdot x) = R \cdot F(x)`,
with :math:`(R \cdot x)(v) = x(R^\top v)`.

Discretisation. On the equirect grid (rows at colatitude :math:`\theta_i = (i + \frac12)\pi/H`,
columns at longitude :math:`\phi_j = 2\pi j / W`, the sampling of e3nn's ``s2_grid``), the
inner products are the quadrature

.. math::

    \langle f, Y_{lm} \rangle = \sum_{i, j} \omega_i \frac{2\pi}{W} f(\theta_i, \phi_j) Y_{lm}(\theta_i, \phi_j),

with :math:`\omega_i` Fejér's first rule in :math:`\cos\theta` (exact for polynomials of degree
:math:`\le H - 1`; for even :math:`H` these are the Driscoll–Healy weights e3nn's ``FromS2Grid``
uses) and the FFT in longitude. The product of two harmonics of degree :math:`\le L` is a
polynomial of degree :math:`\le 2L` in :math:`\cos\theta` and a trigonometric polynomial of
degree :math:`\le 2L` in :math:`\phi`, so the transform is exact for band-limited inputs if and
only if

.. math::

    H > 2L \quad\text{and}\quad W > 2L,

which is what the op checks (``max_lmax(H, W) = (min(H, W) - 1) // 2``; with ``W = 2H`` that is
``(H - 1) // 2``). The transform is the one e3nn's ``FromS2Grid``/``ToS2Grid`` compute (the tests
compare them), written here for two reasons. Accuracy: the associated Legendre functions come from
the stable three-term recurrence in float64 and are rounded once to the input's dtype, whereas
e3nn expands them as polynomials, which lose digits with the degree (a float64 round trip is off
by 6e-7 at ``lmax=32`` and 2e-4 at 40; built in float32, by 6.6e-4 at 16 and 0.24 at 24). Cost: the
tables take :math:`(L+1) \times H \times (L+1)` numbers stored per order :math:`m`, not e3nn's
dense :math:`(2L+1) \times H \times (L+1)^2`, and build in milliseconds (0.15 s at ``lmax=127``)
where e3nn takes tens of seconds at ``lmax=32``. They are kept in a bounded cache per
``(lmax, H, dtype, device)``; nothing about them is saved with the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from geoconv._cache import cached, register_builder
from geoconv._checks import check_bool, check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids import get_grid
from geoconv.ops._common import check_axis, check_input_size, check_op_input
from geoconv.ops.registry import register_op
from geoconv.sizes import Layer

__all__ = ["SpectralConv", "SpectralConvConfig", "max_lmax", "sh_analysis", "sh_synthesis"]


def max_lmax(height: int, width: int) -> int:
    """The largest degree the equirect grid ``(H, W)`` transforms exactly: ``(min(H, W) - 1) // 2``.

    >>> max_lmax(12, 24), max_lmax(13, 26), max_lmax(32, 10)
    (5, 6, 4)
    """
    return (min(int(height), int(width)) - 1) // 2


def _fejer_weights(n: int) -> np.ndarray:
    r"""Fejér's first quadrature rule on the cell-centred colatitudes :math:`\theta_i = (i + \frac12)\pi/n`.

    .. math::

        \int_0^\pi g(\theta) \sin\theta \, d\theta \approx \sum_i \omega_i g(\theta_i), \qquad
        \omega_i = \frac{2}{n}\Bigl(1 - 2 \sum_{k=1}^{\lfloor n/2 \rfloor}
                   \frac{\cos 2k\theta_i}{4k^2 - 1}\Bigr),

    exact when :math:`g` is a polynomial of degree :math:`\le n - 1` in :math:`\cos\theta`.
    Returns float64, shape ``(n,)``.
    """
    theta = (np.arange(n) + 0.5) * np.pi / n
    k = np.arange(1, n // 2 + 1)
    series = np.cos(2 * np.outer(theta, k)) / (4 * k**2 - 1)
    return 2.0 / n * (1.0 - 2.0 * series.sum(axis=1))


def _legendre(lmax: int, theta: np.ndarray) -> np.ndarray:
    r"""Orthonormal associated Legendre functions :math:`\lambda_l^m(\theta)`, float64, shape ``(m, len(theta), l)``.

    .. math::

        \lambda_l^m(\theta) = \sqrt{\tfrac{2l+1}{4\pi}\tfrac{(l-m)!}{(l+m)!}}\, P_l^m(\cos\theta),
        \qquad 0 \le m \le l \le L,

    without the Condon–Shortley phase, zero for :math:`m > l`. The real harmonics are
    :math:`Y_{l0} = \lambda_l^0`, :math:`Y_{l,\pm m} = \sqrt2 \lambda_l^m \cos m\phi` and
    :math:`\sqrt2 \lambda_l^m \sin m\phi`, orthonormal on the sphere. Computed by the standard
    recurrence in :math:`l` at fixed :math:`m`, which is stable; the sectoral seeds
    :math:`\lambda_m^m \propto \sin^m\theta` are formed in log space so that they underflow to
    zero near the poles at large :math:`m` instead of overflowing on the way.
    """
    x, s = np.cos(theta), np.sin(theta)
    m = np.arange(lmax + 1)
    # log lambda_m^m = -log(4 pi) / 2 + sum_{k <= m} log((2k + 1) / 2k) / 2 + m log sin(theta)
    log_seed = np.concatenate([[0.0], np.cumsum(0.5 * np.log((2 * m[1:] + 1) / (2 * m[1:])))]) - 0.5 * np.log(4 * np.pi)
    with np.errstate(divide="ignore"):
        log_s = np.log(s)
    table = np.zeros((lmax + 1, len(theta), lmax + 1))
    # m = 0 needs no power of sin(theta) (which is 0 * -inf at a pole)
    powers = np.where(m[:, None] == 0, 0.0, m[:, None] * log_s[None, :])
    table[m, :, m] = np.exp(log_seed[:, None] + powers)
    for deg in range(1, lmax + 1):
        # lambda_l^{l-1} = sqrt(2l + 1) cos(theta) lambda_{l-1}^{l-1}
        table[deg - 1, :, deg] = math.sqrt(2 * deg + 1) * x * table[deg - 1, :, deg - 1]
        if deg >= 2:
            mm = m[: deg - 1]
            a = np.sqrt((4.0 * deg * deg - 1) / (deg * deg - mm**2))
            b = np.sqrt(((deg - 1.0) ** 2 - mm**2) / (4.0 * (deg - 1) ** 2 - 1))
            table[mm, :, deg] = a[:, None] * (x[None, :] * table[mm, :, deg - 1] - b[:, None] * table[mm, :, deg - 2])
    return table


@register_builder("spectral_legendre")
def _build_legendre(lmax: int, height: int, dtype: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    theta = (np.arange(height) + 0.5) * np.pi / height
    # Built in float64 and rounded once, so float32 keeps float32 accuracy at any lmax.
    legendre = torch.from_numpy(_legendre(lmax, theta)).to(device=device, dtype=getattr(torch, dtype))
    weights = torch.from_numpy(_fejer_weights(height)).to(device=device, dtype=getattr(torch, dtype))
    return legendre, weights


def _legendre_tables(
    lmax: int, height: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(legendre, weights)`` on ``device`` in ``dtype``, from the shared bounded cache."""
    return cached("spectral_legendre", device, lmax, height, str(dtype).removeprefix("torch."))  # type: ignore[return-value]


def _order_scales(lmax: int, width: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-order factors: analysis ``(2 pi / W) g_m`` and synthesis ``W g_m / 2`` (``W`` at m = 0).

    ``g_m`` is sqrt(2) for m > 0 and 1 for m = 0, the factor of the real harmonics.
    """
    g = torch.full((lmax + 1,), math.sqrt(2.0), dtype=torch.float64)
    g[0] = 1.0
    analysis = 2 * math.pi / width * g
    synthesis = width * g / 2
    synthesis[0] = width
    return analysis.to(device=device, dtype=dtype), synthesis.to(device=device, dtype=dtype)


def _analysis(x: torch.Tensor, lmax: int) -> torch.Tensor:
    r"""Real spherical-harmonic coefficients of ``x`` (``(..., H, W)``) as ``(..., l, m, 2)``.

    Entry ``[l, m, 0]`` is the coefficient of :math:`Y_{l,m}` (cosine, :math:`m \ge 0`),
    ``[l, m, 1]`` of :math:`Y_{l,-m}` (sine); entries with :math:`m > l` and ``[l, 0, 1]`` are zero.
    """
    height, width = x.shape[-2:]
    legendre, weights = _legendre_tables(lmax, height, x.dtype, x.device)
    scale, _ = _order_scales(lmax, width, x.dtype, x.device)
    spectrum = torch.fft.rfft(x, dim=-1)[..., : lmax + 1]  # (..., H, m)
    # sum_j x_j cos(m phi_j) = Re X_m and sum_j x_j sin(m phi_j) = -Im X_m
    parts = torch.stack([spectrum.real, -spectrum.imag], dim=-1) * weights[:, None, None]
    coeffs = torch.einsum("mil,...imr->...lmr", legendre, parts)
    return coeffs * scale[:, None]


def _synthesis(coeffs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The field ``(..., H, W)`` with the real spherical-harmonic coefficients ``(..., l, m, 2)``."""
    lmax = coeffs.shape[-3] - 1
    legendre, _ = _legendre_tables(lmax, height, coeffs.dtype, coeffs.device)
    _, scale = _order_scales(lmax, width, coeffs.dtype, coeffs.device)
    parts = torch.einsum("mil,...lmr->...imr", legendre, coeffs) * scale[:, None]
    # irfft gives (1/W)[Z_0 + 2 sum_m Re(Z_m e^{i m phi})]: Z_m = (W g_m / 2)(C_m - i S_m) restores
    # g_m (C_m cos m phi + S_m sin m phi).
    spectrum = torch.complex(parts[..., 0], -parts[..., 1])
    return torch.fft.irfft(spectrum, n=width, dim=-1)


def sh_analysis(x: torch.Tensor, lmax: int) -> torch.Tensor:
    r"""Real spherical-harmonic coefficients up to degree ``lmax`` of equirect maps ``x`` (``(..., H, W)``).

    The public name of the transform ``spectral_conv`` uses (no checks: the caller keeps
    ``H > 2 lmax`` and ``W > 2 lmax`` for an exact transform). Returns ``(..., lmax + 1, lmax + 1, 2)``:
    ``[l, m, 0]`` is the coefficient of :math:`Y_{l,m}` (cosine), ``[l, m, 1]`` of :math:`Y_{l,-m}`
    (sine); entries with :math:`m > l` and ``[l, 0, 1]`` are zero.

    >>> import torch
    >>> c = sh_analysis(torch.ones(1, 6, 12, dtype=torch.float64), 2)   # 1 = sqrt(4 pi) Y_00
    >>> c00 = c[0, 0, 0, 0].item()
    >>> round(c00**2 / (4 * 3.141592653589793), 12), round(c.abs().sum().item() - c00, 12)
    (1.0, 0.0)
    """
    return _analysis(x, lmax)


def sh_synthesis(coeffs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The equirect maps ``(..., height, width)`` with the real harmonic coefficients ``coeffs`` (``(..., l, m, 2)``).

    The inverse of :func:`sh_analysis` for band-limited fields; any grid may be the target (the
    field is evaluated at its pixel centres).

    >>> import torch
    >>> x = torch.randn(2, 8, 16, dtype=torch.float64)
    >>> y = sh_synthesis(sh_analysis(x, 3), 8, 16)   # the projection onto degrees <= 3
    >>> bool(torch.allclose(sh_synthesis(sh_analysis(y, 3), 8, 16), y))
    True
    """
    return _synthesis(coeffs, height, width)


@dataclass
class SpectralConvConfig:
    """Parameters of ``spectral_conv``.

    Attributes
    ----------
    lmax : int, optional
        The largest spherical-harmonic degree :math:`L`; the grid must have ``H > 2 lmax`` and
        ``W > 2 lmax``. ``None`` takes the largest the first input's grid allows,
        ``(min(H, W) - 1) // 2``, and keeps it (the weight is created at the first call).
    bias : bool
        Add a learned constant per output channel (the degree-0 harmonic, so still equivariant).
    """

    lmax: int | None = None
    bias: bool = True

    def __post_init__(self) -> None:
        if self.lmax is not None:
            self.lmax = check_int("lmax", self.lmax, minimum=0)
        self.bias = check_bool("bias", self.bias)


@register_op("spectral_conv", grids=("equirect",), config=SpectralConvConfig)
class SpectralConv(LazyModuleMixin, nn.Module):
    r"""Spherical convolution with isotropic filters, in spherical harmonics: SO(3)-equivariant.

    Grid → real spherical-harmonic coefficients up to ``lmax`` → per-degree channel mixing
    :math:`c'_{lm,o} = \sum_c w_{loc}\, c_{lm,c}` → back to the same grid, plus a constant
    bias; see :mod:`geoconv.ops.spectral` for the maths and the exactness condition
    ``H > 2 lmax`` and ``W > 2 lmax``. The output is band-limited to ``lmax``; for inputs
    band-limited to ``lmax`` the op commutes exactly with every rotation.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    grid : str
        ``"equirect"``.
    config : SpectralConvConfig
        ``lmax`` and ``bias``.

    Attributes
    ----------
    weight : torch.nn.Parameter
        Shape ``(lmax + 1, C_out, C_in)``, initialised :math:`\mathcal N(0, 1/C_{in})`, so that
        the output keeps the power of a band-limited input per degree in expectation. With
        ``lmax=None`` it is created at the first call from a seed drawn at construction (the
        buffer ``init_seed``, saved with the state), so construction under a seed and a
        ``state_dict`` round trip before the first call stay reproducible.
    bias : torch.nn.Parameter or None
        Shape ``(C_out,)``, initialised to zero.

    Shapes
    ------
    ``(B, C_in, H, W) -> (B, C_out, H, W)``, ``W`` even, ``H > 2 lmax``, ``W > 2 lmax``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> conv = build_op("spectral_conv", 2, 3, grid="equirect", lmax=4)
    >>> conv(torch.randn(1, 2, 10, 20)).shape
    torch.Size([1, 3, 10, 20])
    >>> conv.weight.shape   # (lmax + 1, C_out, C_in)
    torch.Size([5, 3, 2])
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "equirect", config: SpectralConvConfig | None = None
    ) -> None:
        super().__init__()
        config = config or SpectralConvConfig()
        self.config = config
        self.grid = get_grid(grid)
        self.in_channels, self.out_channels = in_channels, out_channels
        if config.lmax is None:
            self.weight = UninitializedParameter()
            seed = torch.randint(0, 2**62, (), dtype=torch.int64)
            self.register_buffer("init_seed", seed)
        else:
            self.weight = nn.Parameter(torch.empty(config.lmax + 1, out_channels, in_channels))
            with torch.no_grad():
                self.weight.normal_(0.0, 1.0 / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if config.bias else None

    @property
    def lmax(self) -> int | None:
        """The degree :math:`L`, or ``None`` while ``lmax=None`` has not yet seen an input."""
        return None if isinstance(self.weight, UninitializedParameter) else int(self.weight.shape[0]) - 1

    def initialize_parameters(self, x: torch.Tensor, *args: object, **kwargs: object) -> None:
        """Create the weight for ``lmax=None`` from the first input's grid (called before the first forward)."""
        if not isinstance(self.weight, UninitializedParameter):
            return
        x = self._check(x)
        lmax = max_lmax(*x.shape[-2:])
        generator = torch.Generator().manual_seed(int(self.init_seed))
        values = torch.randn(lmax + 1, self.out_channels, self.in_channels, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            self.weight.materialize((lmax + 1, self.out_channels, self.in_channels))
            self.weight.copy_(values / math.sqrt(self.in_channels))

    def _check(self, x: object) -> torch.Tensor:
        initialised = not isinstance(self.weight, UninitializedParameter)
        like = self.weight if initialised else None
        x = check_op_input("spectral_conv", self.grid, x, self.in_channels, floating=True, like=like)
        if initialised:
            height, width = x.shape[-2:]
            lmax = int(self.weight.shape[0]) - 1
            if 2 * lmax >= min(height, width):
                raise ShapeError(
                    f"spectral_conv with lmax={lmax} needs an equirect grid with H > 2*lmax and W > 2*lmax "
                    f"(H >= {2 * lmax + 1}, W >= {2 * lmax + 2}) for an exact transform, got x of shape "
                    f"{tuple(x.shape)} (H={height}, W={width}), which allows lmax <= {max_lmax(height, width)}"
                )
        return x

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: the op is not local. Every output pixel depends on every input pixel.

        A filter that is a function of the harmonic degree alone is a zonal kernel on the
        whole sphere; truncated at ``lmax`` it has no compact support, so no planar kernel
        size describes it.
        """
        check_axis(axis)
        check_input_size(input_size)
        raise ParameterError(
            "spectral_conv is not local: it filters in spherical harmonics, so every output pixel depends on "
            "every input pixel and no planar kernel (geoconv.sizes.Layer) describes it"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        height, width = x.shape[-2:]
        if x.shape[0] == 0:
            # An empty batch: the FFT backends refuse zero-length batches.
            return x.new_zeros(0, self.out_channels, height, width)
        # torch's FFTs take no half precision on the CPU: compute in float32 and return the input dtype.
        dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        coeffs = _analysis(x.to(dtype), self.lmax)  # (B, C_in, l, m, 2)
        mixed = torch.einsum("loc,bclmr->bolmr", self.weight.to(dtype), coeffs)
        y = _synthesis(mixed, height, width)
        if self.bias is not None:
            y = y + self.bias.to(dtype)[:, None, None]
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        lmax = self.lmax if self.lmax is not None else "None (from the first input)"
        return f"{self.in_channels}, {self.out_channels}, lmax={lmax}, bias={self.bias is not None}, grid='equirect'"
