r"""The SO(3) family of Cohen et al. 2018 (Spherical CNNs, s2cnn): ``s2_conv``, ``so3_conv``, ``so3_integrate``.

``s2_conv`` correlates a signal on the sphere with learned filters and gives a signal on the
rotation group; ``so3_conv`` correlates signals on SO(3); ``so3_integrate`` integrates over
SO(3) with the Haar measure, giving rotation-invariant features:

.. math::

    [\psi \star f](R) = \int_{S^2} \psi(R^{-1} x) f(x)\, dx,
    \qquad
    [\psi \star h](R) = \int_{SO(3)} \psi(R^{-1} g) h(g)\, dg .

Both commute with rotations, :math:`[\psi \star (L_Q f)] = L_Q [\psi \star f]` with
:math:`(L_Q f)(x) = f(Q^{-1} x)`. As in s2cnn, a filter is a weighted sum of point masses on a
small grid of points near the north pole (``s2_conv``) or near the identity (``so3_conv``), cut
to the output band limit ``b_out``; then the correlation is, exactly,

.. math::

    [\psi \star f](R) = \sum_p w_p\, (P_{b_out} f)(R\, x_p),

the band-limited input read at the rotated kernel points (:math:`R g_p` on SO(3)). It is computed
in the Fourier domain: :math:`\hat h^l = \hat f^l\, \hat\psi^{l\dagger}` per degree (see
:mod:`geoconv.ops._so3_fft` for the grid, the transforms and the conventions).

Layouts. The input of ``s2_conv`` is equirect ``(B, C, 2b_in, W)`` with ``W = 2b_in`` (s2cnn's
grid) or ``W = 4b_in`` (geoconv's 2:1 maps). The **so3 layout** is ``(B, C, 2b, 2b, 2b)`` with the
axes (β, α, γ) of the SOFT grid. The so3 layout is not a registered grid, so ``so3_conv`` and
``so3_integrate`` are registered on ``"equirect"`` (the grid their signals come from); their
input is the so3 layout, and they say so when given anything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geoconv._cache import cached, register_builder
from geoconv._checks import check_bool, check_float, check_int, check_tensor
from geoconv.errors import DTypeError, ParameterError, ShapeError
from geoconv.grids import get_grid
from geoconv.ops._common import check_axis, check_input_size, check_op_input
from geoconv.ops._so3_fft import s2_analysis, so3_analysis, so3_quadrature_weights, so3_synthesis, wigner_d_small
from geoconv.ops.registry import register_op
from geoconv.sizes import Layer

__all__ = [
    "S2Conv",
    "S2ConvConfig",
    "SO3Conv",
    "SO3ConvConfig",
    "SO3Integrate",
    "SO3IntegrateConfig",
    "SO3_FAMILY",
    "s2_near_identity_grid",
    "so3_near_identity_grid",
]

SO3_LAYOUT = "(B, C, 2b, 2b, 2b)"

SO3_FAMILY = frozenset({"s2_conv", "so3_conv", "so3_integrate"})
"""The ops whose input or output is the so3 layout, not their grid's: generic grid-in, grid-out
machinery (UNet blocks, the op contract's layout clauses, the fuzzers) must leave them out."""


def s2_near_identity_grid(max_beta: float = math.pi / 8, n_alpha: int = 8, n_beta: int = 3) -> torch.Tensor:
    r"""s2cnn's kernel points near the north pole: rings :math:`\beta = \beta_{max} i / n_\beta`, ``i = 1..n_beta``.

    Returns float64 ``(n_beta * n_alpha, 2)``: (colatitude β, longitude α), α = 2π j / n_alpha.

    >>> s2_near_identity_grid(0.4, 4, 2).shape
    torch.Size([8, 2])
    """
    beta = torch.arange(1, n_beta + 1, dtype=torch.float64) * (max_beta / n_beta)
    alpha = torch.arange(n_alpha, dtype=torch.float64) * (2 * math.pi / n_alpha)
    b, a = torch.meshgrid(beta, alpha, indexing="ij")
    return torch.stack([b.reshape(-1), a.reshape(-1)], dim=-1)


def so3_near_identity_grid(
    max_beta: float = math.pi / 8,
    max_gamma: float = 2 * math.pi,
    n_alpha: int = 8,
    n_beta: int = 3,
    n_gamma: int | None = None,
) -> torch.Tensor:
    r"""s2cnn's kernel points near the identity of SO(3): float64 ``(n_beta * n_alpha * n_gamma, 3)`` as (α, β, γ).

    β as :func:`s2_near_identity_grid`, α = 2π j / n_alpha, γ = γ' − α with γ' on ``n_gamma``
    points of ``[-max_gamma, max_gamma]`` (so the points cluster around the identity for small β).

    >>> so3_near_identity_grid(n_alpha=4, n_beta=2, n_gamma=3).shape
    torch.Size([24, 3])
    """
    n_gamma = n_alpha if n_gamma is None else n_gamma
    beta = torch.arange(1, n_beta + 1, dtype=torch.float64) * (max_beta / n_beta)
    alpha = torch.arange(n_alpha, dtype=torch.float64) * (2 * math.pi / n_alpha)
    pre_gamma = torch.linspace(-max_gamma, max_gamma, n_gamma, dtype=torch.float64)
    b, a, g = torch.meshgrid(beta, alpha, pre_gamma, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1), (g - a).reshape(-1)], dim=-1)


def _complex(dtype: str) -> torch.dtype:
    return torch.complex64 if dtype == "float32" else torch.complex128


@register_builder("s2_kernel_table")
def _build_s2_kernel(
    b: int, max_beta: float, n_alpha: int, n_beta: int, dtype: str, device: torch.device
) -> torch.Tensor:
    # Y^l_n(x_p) = sqrt((2l+1)/4pi) e^{i n alpha_p} d^l_{n0}(beta_p): (b, 2b-1, P)
    points = s2_near_identity_grid(max_beta, n_alpha, n_beta)
    d0 = wigner_d_small(b, points[:, 0])[:, :, b - 1, :]
    n = torch.arange(1 - b, b, dtype=torch.float64)
    degree = torch.arange(b, dtype=torch.float64)[:, None, None]
    table = d0 * torch.sqrt((2 * degree + 1) / (4 * math.pi)) * torch.exp(1j * n[:, None] * points[:, 1])
    return table.to(device=device, dtype=_complex(dtype))


@register_builder("so3_kernel_table")
def _build_so3_kernel(
    b: int, max_beta: float, max_gamma: float, n_alpha: int, n_beta: int, n_gamma: int, dtype: str, device: torch.device
) -> torch.Tensor:
    # conj D^l_{mn}(g_p) = e^{i m alpha_p} d^l_{mn}(beta_p) e^{i n gamma_p}: (b, 2b-1, 2b-1, P)
    points = so3_near_identity_grid(max_beta, max_gamma, n_alpha, n_beta, n_gamma)
    d = wigner_d_small(b, points[:, 1])
    m = torch.arange(1 - b, b, dtype=torch.float64)
    phase_a = torch.exp(1j * m[:, None] * points[:, 0])
    phase_g = torch.exp(1j * m[:, None] * points[:, 2])
    table = d * phase_a[None, :, None, :] * phase_g[None, None, :, :]
    return table.to(device=device, dtype=_complex(dtype))


@register_builder("so3_haar_weights")
def _build_haar_weights(b: int, dtype: str, device: torch.device) -> torch.Tensor:
    # w_b(k) / (2b)^2: summed over the (beta, alpha, gamma) grid, the Haar integral of mass 1.
    return (so3_quadrature_weights(b) / (2 * b) ** 2).to(device=device, dtype=getattr(torch, dtype))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    # torch's FFTs take no half precision on the CPU: compute in float32, return the input's dtype.
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return "float64" if dtype == torch.float64 else "float32"


def _check_b(op: str, config_b: int | None, b: int, what: str, shape: tuple[int, ...]) -> None:
    if config_b is not None and config_b != b:
        raise ShapeError(f"{op}: {what}={config_b} needs grid sides 2*{what}={2 * config_b}, got x of shape {shape}")


def _check_so3(op: str, x: object, channels: int, like: torch.Tensor | None) -> torch.Tensor:
    """Check an so3-layout input ``(B, C, 2b, 2b, 2b)``: rank, channels, equal even sides, dtype, device."""
    x = check_tensor(
        x, ndim=5, name=f"{op}: x", layout=f"{SO3_LAYOUT} (the so3 layout: beta, alpha, gamma)", floating=True
    )
    shape = tuple(x.shape)
    if shape[1] != channels:
        raise ShapeError(f"{op}: x must have in_channels={channels} channels in dim 1 of {SO3_LAYOUT}, got {shape}")
    if not (shape[2] == shape[3] == shape[4]) or shape[2] % 2:
        raise ShapeError(
            f"{op}: x must have the so3 layout {SO3_LAYOUT}: three equal, even sides 2b (beta, alpha, gamma), "
            f"got shape {shape}"
        )
    if like is not None:
        if x.device != like.device:
            raise DTypeError(f"{op}: x is on {x.device} but the parameters are on {like.device}")
        if x.dtype != like.dtype:
            raise DTypeError(f"{op}: x has dtype {x.dtype} but the parameters have dtype {like.dtype}")
    return x


def _not_local(op: str, input_size: object, axis: object) -> list[Layer]:
    check_axis(axis)
    check_input_size(input_size)
    raise ParameterError(
        f"{op} is not local: it works in the SO(3) Fourier domain, so every output sample depends on every "
        "input sample and no planar kernel (geoconv.sizes.Layer) describes it"
    )


def _check_kernel(op: str, max_beta: float, n_alpha: int, n_beta: int) -> tuple[float, int, int]:
    return (
        check_float(f"{op}.max_beta", max_beta, minimum=0.0),
        check_int(f"{op}.n_alpha", n_alpha, minimum=1),
        check_int(f"{op}.n_beta", n_beta, minimum=1),
    )


def _check_band_limits(b_in: object, b_out: object) -> tuple[int | None, int | None]:
    """A correlation's configured band limits: each ``None`` (read from the input) or an int >= 1, ``b_out <= b_in``."""
    b_in = None if b_in is None else check_int("b_in", b_in, minimum=1)
    b_out = None if b_out is None else check_int("b_out", b_out, minimum=1)
    if b_in is not None and b_out is not None and b_out > b_in:
        raise ParameterError(f"b_out must be <= b_in={b_in}, got b_out={b_out}")
    return b_in, b_out


class _Correlation(nn.Module):
    """What ``s2_conv`` and ``so3_conv`` share: one weight per kernel point, a bias, band limits, the output.

    Both compute :math:`h_o(R) = \\sum_c \\sum_p w_{cop} (P_{b_{out}} f_c)(R\\,p) + \text{bias}_o` in the
    Fourier domain and synthesise :math:`h` on the SOFT grid of ``b_out``.
    """

    op_name: str

    def __init__(self, in_channels: int, out_channels: int, grid: str, config: Any, points: int) -> None:
        super().__init__()
        self.config = config
        self.grid = get_grid(grid)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels, points) / math.sqrt(points * in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if config.bias else None

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: the op is not local (it works in the Fourier domain)."""
        return _not_local(self.op_name, input_size, axis)

    def _band_limits(self, b_in: int, shape: tuple[int, ...]) -> tuple[int, int]:
        """``(b_in, b_out)`` for an input of band limit ``b_in``, checked against the config."""
        _check_b(self.op_name, self.config.b_in, b_in, "b_in", shape)
        b_out = self.config.b_out if self.config.b_out is not None else b_in
        if b_out > b_in:
            raise ParameterError(
                f"{self.op_name}: b_out={b_out} is too large for the input of band limit b_in={b_in} "
                f"(x of shape {shape}); need b_out <= b_in"
            )
        return b_in, b_out

    def _synthesise(self, mixed: torch.Tensor, dtype: torch.dtype, out_dtype: torch.dtype) -> torch.Tensor:
        """The SO(3) signal of the mixed coefficients ``(B, C_out, l, m, n)``, plus the bias, in ``out_dtype``."""
        y = so3_synthesis(mixed).real
        if self.bias is not None:
            y = y + self.bias.to(dtype)[:, None, None, None]
        return y.to(out_dtype)


@dataclass
class S2ConvConfig:
    """Parameters of ``s2_conv``.

    Attributes
    ----------
    b_in : int, optional
        The input band limit; the input must be ``(B, C, 2 b_in, 2 b_in or 4 b_in)``. ``None``
        reads it from the input.
    b_out : int, optional
        The output band limit (``<= b_in``); the output is ``(B, C_out, 2 b_out, 2 b_out, 2 b_out)``.
        ``None``: ``b_in``.
    max_beta, n_alpha, n_beta : float, int, int
        The kernel's points: ``n_beta`` rings up to colatitude ``max_beta`` (radians) around the
        north pole, ``n_alpha`` points each (s2cnn's ``s2_near_identity_grid``).
    bias : bool
        Add a learned constant per output channel (invariant, so still equivariant).
    """

    b_in: int | None = None
    b_out: int | None = None
    max_beta: float = math.pi / 8
    n_alpha: int = 8
    n_beta: int = 3
    bias: bool = True

    def __post_init__(self) -> None:
        self.b_in, self.b_out = _check_band_limits(self.b_in, self.b_out)
        self.max_beta, self.n_alpha, self.n_beta = _check_kernel("s2_conv", self.max_beta, self.n_alpha, self.n_beta)
        self.bias = check_bool("bias", self.bias)


@register_op("s2_conv", grids=("equirect",), config=S2ConvConfig)
class S2Conv(_Correlation):
    r"""S² → SO(3) correlation with localised, non-isotropic learned filters (Cohen et al. 2018, s2cnn's S2Convolution).

    :math:`h_o(R) = \sum_c \sum_p w_{cop}\, (P_{b_{out}} f_c)(R x_p) + \text{bias}_o` on the SOFT grid,
    computed exactly in the Fourier domain; SO(3)-equivariant for inputs band-limited to ``b_in``.
    See :mod:`geoconv.ops.so3`.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    grid : str
        ``"equirect"``.
    config : S2ConvConfig
        Band limits, kernel points, bias.

    Attributes
    ----------
    weight : torch.nn.Parameter
        ``(C_in, C_out, P)``, one weight per kernel point, :math:`\mathcal N(0, 1/(P\,C_{in}))`.
    bias : torch.nn.Parameter or None
        ``(C_out,)``, zeros.

    Shapes
    ------
    ``(B, C_in, 2b_in, 2b_in)`` or ``(B, C_in, 2b_in, 4b_in)`` → ``(B, C_out, 2b_out, 2b_out, 2b_out)`` (β, α, γ).

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> conv = build_op("s2_conv", 2, 3, grid="equirect", b_out=3)
    >>> conv(torch.randn(1, 2, 8, 16)).shape
    torch.Size([1, 3, 6, 6, 6])
    """

    op_name = "s2_conv"

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "equirect", config: S2ConvConfig | None = None
    ) -> None:
        config = config or S2ConvConfig()
        super().__init__(in_channels, out_channels, grid, config, config.n_alpha * config.n_beta)

    def _check(self, x: object) -> tuple[torch.Tensor, int, int]:
        x = check_op_input("s2_conv", self.grid, x, self.in_channels, floating=True, like=self.weight)
        height, width = x.shape[-2:]
        shape = tuple(x.shape)
        if height % 2 or width not in (height, 2 * height):
            raise ShapeError(
                f"s2_conv: x must be (B, C, 2b, 2b) or (B, C, 2b, 4b) (H even, W = H or 2H), got shape {shape}"
            )
        return (x, *self._band_limits(height // 2, shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _, b_out = self._check(x)
        n = 2 * b_out
        if x.shape[0] == 0:
            return x.new_zeros(0, self.out_channels, n, n, n)
        dtype = _compute_dtype(x)
        c = self.config
        kernel = cached("s2_kernel_table", x.device, b_out, c.max_beta, c.n_alpha, c.n_beta, _dtype_name(dtype))
        coeffs = s2_analysis(x.to(dtype), b_out)  # (B, C, l, m)
        psi = torch.einsum("cop,lnp->coln", self.weight.to(dtype).to(kernel.dtype), kernel)  # type: ignore[union-attr]
        return self._synthesise(torch.einsum("bclm,coln->bolmn", coeffs, psi), dtype, x.dtype)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, b_in={c.b_in}, b_out={c.b_out}, max_beta={c.max_beta:.4g}, "
            f"n_alpha={c.n_alpha}, n_beta={c.n_beta}, bias={self.bias is not None}"
        )


@dataclass
class SO3ConvConfig:
    """Parameters of ``so3_conv``.

    Attributes
    ----------
    b_in : int, optional
        The input band limit; the input must be ``(B, C, 2 b_in, 2 b_in, 2 b_in)``. ``None`` reads it.
    b_out : int, optional
        The output band limit (``<= b_in``); ``None``: ``b_in``.
    max_beta, max_gamma, n_alpha, n_beta, n_gamma : float, float, int, int, int or None
        The kernel's points near the identity (s2cnn's ``so3_near_identity_grid``; ``n_gamma=None``
        is ``n_alpha``).
    bias : bool
        Add a learned constant per output channel.
    """

    b_in: int | None = None
    b_out: int | None = None
    max_beta: float = math.pi / 8
    max_gamma: float = 2 * math.pi
    n_alpha: int = 8
    n_beta: int = 3
    n_gamma: int | None = None
    bias: bool = True

    def __post_init__(self) -> None:
        self.b_in, self.b_out = _check_band_limits(self.b_in, self.b_out)
        self.max_beta, self.n_alpha, self.n_beta = _check_kernel("so3_conv", self.max_beta, self.n_alpha, self.n_beta)
        self.max_gamma = check_float("so3_conv.max_gamma", self.max_gamma, minimum=0.0)
        if self.n_gamma is not None:
            self.n_gamma = check_int("so3_conv.n_gamma", self.n_gamma, minimum=1)
        self.bias = check_bool("bias", self.bias)


@register_op("so3_conv", grids=("equirect",), config=SO3ConvConfig)
class SO3Conv(_Correlation):
    r"""SO(3) → SO(3) correlation with localised learned filters (Cohen et al. 2018, s2cnn's SO3Convolution).

    :math:`h_o(R) = \sum_c \sum_p w_{cop}\, (P_{b_{out}} f_c)(R g_p) + \text{bias}_o`, exactly, in the
    Fourier domain; equivariant under left rotations. Input and output are in the so3 layout
    (registered on ``"equirect"``, where its signals come from; see :mod:`geoconv.ops.so3`).

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    grid : str
        ``"equirect"``.
    config : SO3ConvConfig
        Band limits, kernel points, bias.

    Attributes
    ----------
    weight : torch.nn.Parameter
        ``(C_in, C_out, P)``, :math:`\mathcal N(0, 1/(P\,C_{in}))`.
    bias : torch.nn.Parameter or None
        ``(C_out,)``, zeros.

    Shapes
    ------
    ``(B, C_in, 2b_in, 2b_in, 2b_in)`` → ``(B, C_out, 2b_out, 2b_out, 2b_out)`` (β, α, γ).

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> conv = build_op("so3_conv", 2, 3, grid="equirect", b_out=2, n_alpha=4, n_beta=1)
    >>> conv(torch.randn(1, 2, 6, 6, 6)).shape
    torch.Size([1, 3, 4, 4, 4])
    """

    op_name = "so3_conv"

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "equirect", config: SO3ConvConfig | None = None
    ) -> None:
        c = config or SO3ConvConfig()
        points = c.n_alpha * c.n_beta * (c.n_alpha if c.n_gamma is None else c.n_gamma)
        super().__init__(in_channels, out_channels, grid, c, points)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_so3("so3_conv", x, self.in_channels, self.weight)
        b_in, b_out = self._band_limits(x.shape[-1] // 2, tuple(x.shape))
        n = 2 * b_out
        if x.shape[0] == 0:
            return x.new_zeros(0, self.out_channels, n, n, n)
        dtype = _compute_dtype(x)
        c = self.config
        n_gamma = c.n_alpha if c.n_gamma is None else c.n_gamma
        kernel = cached(
            "so3_kernel_table",
            x.device,
            b_out,
            c.max_beta,
            c.max_gamma,
            c.n_alpha,
            c.n_beta,
            n_gamma,
            _dtype_name(dtype),
        )
        coeffs = so3_analysis(x.to(dtype), b_in)
        s = b_in - b_out  # keep degrees l < b_out and orders |m|, |n| < b_out
        coeffs = coeffs[..., :b_out, s : s + 2 * b_out - 1, s : s + 2 * b_out - 1]
        psi = torch.einsum("cop,lmnp->colmn", self.weight.to(dtype).to(kernel.dtype), kernel)  # type: ignore[union-attr]
        return self._synthesise(torch.einsum("bclkn,colmn->bolkm", coeffs, psi), dtype, x.dtype)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, b_in={c.b_in}, b_out={c.b_out}, max_beta={c.max_beta:.4g}, "
            f"max_gamma={c.max_gamma:.4g}, n_alpha={c.n_alpha}, n_beta={c.n_beta}, n_gamma={c.n_gamma}, "
            f"bias={self.bias is not None}"
        )


@dataclass
class SO3IntegrateConfig:
    """Parameters of ``so3_integrate`` (the Haar measure of mass 1 on the SOFT grid).

    Attributes
    ----------
    b : int, optional
        The band limit the input must have, ``(B, C, 2b, 2b, 2b)``; ``None`` reads it from the input.
    """

    b: int | None = None

    def __post_init__(self) -> None:
        if self.b is not None:
            self.b = check_int("b", self.b, minimum=1)


@register_op("so3_integrate", grids=("equirect",), config=SO3IntegrateConfig, same_channels=True)
class SO3Integrate(nn.Module):
    r"""Haar integral over SO(3): so3 layout ``(B, C, 2b, 2b, 2b)`` → rotation-invariant ``(B, C)``.

    :math:`\int_{SO(3)} f\, dg \approx (2b)^{-2} \sum_{k,j,l} w_b(k) f(\beta_k, \alpha_j, \gamma_l)`, the SOFT
    quadrature (exact for signals band-limited to ``b``), so the features do not change when the
    input is rotated. Registered on ``"equirect"``; the input is the so3 layout.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> integrate = build_op("so3_integrate", 2, grid="equirect")
    >>> integrate(torch.ones(1, 2, 4, 4, 4))
    tensor([[1., 1.]])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "equirect",
        config: SO3IntegrateConfig | None = None,
    ) -> None:
        super().__init__()
        if out_channels is not None and out_channels != in_channels:
            raise ParameterError(f"so3_integrate keeps the channel count: out_channels must be {in_channels}")
        self.config = config or SO3IntegrateConfig()
        self.grid = get_grid(grid)
        self.in_channels = in_channels

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: the op is not local (it integrates over the whole group)."""
        return _not_local("so3_integrate", input_size, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_so3("so3_integrate", x, self.in_channels, None)
        b = x.shape[-1] // 2
        _check_b("so3_integrate", self.config.b, b, "b", tuple(x.shape))
        weights = cached("so3_haar_weights", x.device, b, _dtype_name(_compute_dtype(x)))
        return torch.einsum("bckjl,k->bc", x.to(weights.dtype), weights).to(x.dtype)  # type: ignore[union-attr]
