r"""The SOFT grid on SO(3), Wigner D matrices and the S² / SO(3) Fourier transforms, in plain torch.

The maths behind ``s2_conv``, ``so3_conv`` and ``so3_integrate`` (:mod:`geoconv.ops.so3`).

Conventions
-----------
Rotations are ZYZ Euler angles, :math:`g = R(\alpha, \beta, \gamma) = R_z(\alpha) R_y(\beta) R_z(\gamma)`
(active, right-handed). The Wigner D matrices are

.. math::

    D^l_{mn}(\alpha, \beta, \gamma) = e^{-i m \alpha}\, d^l_{mn}(\beta)\, e^{-i n \gamma},
    \qquad d^l(\beta) = e^{-i \beta J_y},

a unitary representation, :math:`D(g_1 g_2) = D(g_1) D(g_2)`. The complex harmonics on the sphere
are :math:`Y^l_m(\theta, \phi) = \sqrt{(2l+1)/4\pi}\, e^{i m \phi} d^l_{m0}(\theta)`, so that
:math:`Y^l_m(g e_z) = \sqrt{(2l+1)/4\pi}\, \overline{D^l_{m0}(g)}`. With the Haar measure of total
mass 1, :math:`\int D^l_{mn} \overline{D^{l'}_{m'n'}} dg = \delta\delta\delta / (2l+1)`, and a
signal band-limited to ``b`` (degrees :math:`l < b`) is

.. math::

    f(g) = \sum_{l<b} \sum_{|m|,|n| \le l} \hat f^l_{mn}\, \overline{D^l_{mn}(g)},
    \qquad \hat f^l_{mn} = (2l+1) \int_{SO(3)} f(g)\, D^l_{mn}(g)\, dg .

In this basis a rotation acts on the left by a matrix product: :math:`f(R^{-1} g)` has
coefficients :math:`D^l(R) \hat f^l`, as the S² coefficients :math:`\hat f^l_m = \int f \overline{Y^l_m}`
of :math:`f(R^{-1} x)` are :math:`D^l(R) \hat f^l`.

The grid (SOFT, Kostelec & Rockmore 2008; s2cnn's layout)
---------------------------------------------------------
For band limit ``b``: :math:`\beta_k = \pi(2k+1)/(4b)`, :math:`\alpha_j = 2\pi j/(2b)`,
:math:`\gamma_l = 2\pi l/(2b)`, ``k, j, l = 0 .. 2b-1``. A signal has layout
``(B, C, 2b, 2b, 2b)`` with the axes **(β, α, γ)**, as s2cnn. The β rows are the rows of the
equirect grid with ``H = 2b`` (colatitude :math:`(i + 1/2)\pi/H`), the α columns its
longitudes when ``W = 2b``. Quadrature:

.. math::

    \int_{SO(3)} f\, dg \approx \frac{1}{(2b)^2} \sum_{k,j,l} w_b(k)\, f(\alpha_j, \beta_k, \gamma_l),

with :math:`w_b(k)` the SOFT weights (Fejér's first rule in :math:`\cos\beta` on ``2b`` nodes,
halved so that :math:`\sum_k w_b(k) = 1`). It is exact for every product of two signals
band-limited to ``b``: :math:`d^l_{mn} d^{l'}_{mn}` is a polynomial of degree :math:`l + l' \le 2b - 2`
in :math:`\cos\beta`, and the α, γ sums are exact for frequencies :math:`|m| < 2b`.

Coefficients are stored dense: ``(..., b, 2b - 1, 2b - 1)`` complex, entry ``[l, m + b - 1, n + b - 1]``,
zero where :math:`|m| > l` or :math:`|n| > l`; S² coefficients ``(..., b, 2b - 1)`` likewise.
The tables (built in float64 once per size, rounded once to the dtype, cached per device) are
the only place numpy appears; the transforms are torch FFTs and einsums, so they run on CUDA.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from geoconv._cache import cached, register_builder
from geoconv.ops.spectral import _fejer_weights

__all__ = [
    "euler_angles",
    "rotation_matrix",
    "s2_analysis",
    "so3_analysis",
    "so3_evaluate",
    "so3_grid",
    "so3_quadrature_weights",
    "so3_synthesis",
    "wigner_d_small",
]


def so3_grid(b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The SOFT grid's angles ``(alpha, beta, gamma)``, each float64 of shape ``(2b,)``.

    >>> alpha, beta, gamma = so3_grid(2)
    >>> beta.tolist() == [math.pi * (2 * k + 1) / 8 for k in range(4)]
    True
    """
    n = 2 * b
    alpha = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    beta = (2 * torch.arange(n, dtype=torch.float64) + 1) * (math.pi / (4 * b))
    return alpha, beta, alpha.clone()


def so3_quadrature_weights(b: int) -> torch.Tensor:
    r"""The SOFT weights :math:`w_b(k)` on the ``2b`` β rows, float64 ``(2b,)``, summing to 1.

    ``w / (2b)**2`` summed over the whole ``(2b, 2b, 2b)`` grid is the Haar integral (mass 1).

    >>> round(float(so3_quadrature_weights(3).sum()), 12)
    1.0
    """
    return torch.from_numpy(_fejer_weights(2 * b) / 2.0)


def _j_y_eigen(l: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: E741 (l: the degree, as in the maths)
    """Eigenvectors ``V`` (columns) and exact eigenvalues ``-l .. l`` of :math:`J_y` in the basis ``m = -l .. l``."""
    m = np.arange(-l, l)
    raising = np.diag(np.sqrt((l - m) * (l + m + 1.0)), k=-1)  # (J+)_{m+1, m}
    j_y = (raising - raising.T) / 2j
    values, vectors = np.linalg.eigh(j_y)
    return np.round(values), vectors


def wigner_d_small(b: int, beta: torch.Tensor) -> torch.Tensor:
    r"""Wigner's small d, :math:`d^l_{mn}(\beta)`, for ``l < b``: float64 ``(b, 2b-1, 2b-1, *beta.shape)``.

    Entry ``[l, m + b - 1, n + b - 1]``; zero where :math:`|m| > l` or :math:`|n| > l`. Computed as
    :math:`V \operatorname{diag}(e^{-i\lambda\beta}) V^\dagger` from the eigendecomposition of
    :math:`J_y` (eigenvalues the exact integers :math:`-l..l`), accurate to a few ulps times ``l``.

    >>> d = wigner_d_small(2, torch.tensor([0.3], dtype=torch.float64))
    >>> abs(float(d[1, 2, 1, 0]) + math.sin(0.3) / math.sqrt(2)) < 1e-14   # d^1_{1,0} = -sin(beta) / sqrt(2)
    True
    """
    flat = beta.detach().to(dtype=torch.float64, device="cpu").reshape(-1).numpy()
    size = 2 * b - 1
    out = np.zeros((b, size, size, flat.size))
    for l in range(b):  # noqa: E741
        values, vectors = _j_y_eigen(l)
        phases = np.exp(-1j * values[:, None] * flat[None, :])  # (2l+1, P)
        d = np.einsum("mk,kp,nk->mnp", vectors, phases, vectors.conj()).real
        lo = b - 1 - l
        out[l, lo : lo + 2 * l + 1, lo : lo + 2 * l + 1] = d
    return torch.from_numpy(out.reshape(b, size, size, *beta.shape))


def rotation_matrix(alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r""":math:`R_z(\alpha) R_y(\beta) R_z(\gamma)`, shape ``(*angles.shape, 3, 3)``.

    >>> r = rotation_matrix(*torch.tensor([0.0, math.pi / 2, 0.0], dtype=torch.float64))
    >>> (r @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).round(decimals=12)   # R_y(pi/2) e_z = e_x
    tensor([1., 0., 0.], dtype=torch.float64)
    """

    def axis(angle: torch.Tensor, i: int, j: int) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        out = torch.zeros(*angle.shape, 3, 3, dtype=angle.dtype, device=angle.device)
        k = 3 - i - j
        out[..., k, k] = 1.0
        out[..., i, i], out[..., j, j] = c, c
        out[..., i, j], out[..., j, i] = -s, s
        return out

    # R_z mixes (x, y); R_y mixes (z, x): R_y = [[c, 0, s], [0, 1, 0], [-s, 0, c]].
    return axis(alpha, 0, 1) @ axis(beta, 2, 0) @ axis(gamma, 0, 1)


def euler_angles(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""ZYZ Euler angles ``(alpha, beta, gamma)`` of rotations ``(..., 3, 3)``; inverse of :func:`rotation_matrix`.

    Away from :math:`\beta \in \{0, \pi\}` (where only :math:`\alpha \pm \gamma` is defined).

    >>> angles = euler_angles(rotation_matrix(*torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)))
    >>> [round(float(a), 12) for a in angles]
    [0.1, 0.2, 0.3]
    """
    m = matrix
    beta = torch.atan2(torch.hypot(m[..., 0, 2], m[..., 1, 2]), m[..., 2, 2])
    alpha = torch.atan2(m[..., 1, 2], m[..., 0, 2])
    gamma = torch.atan2(m[..., 2, 1], -m[..., 2, 0])
    return alpha, beta, gamma


@register_builder("so3_fft_tables")
def _build_so3_tables(b: int, dtype: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    _, beta, _ = so3_grid(b)
    d = wigner_d_small(b, beta)  # (b, M, M, 2b)
    degree = torch.arange(b, dtype=torch.float64)[:, None, None, None]
    weights = so3_quadrature_weights(b)
    # Both tables in the FFT's order: order m at index m mod 2b of (2b, 2b); index b (order +-b) is zero.
    slots = (torch.arange(2 * b) + b - 1) % (2 * b)
    d = torch.nn.functional.pad(d, (0, 0, 0, 1, 0, 1))[:, slots][:, :, slots]
    analysis = d * (2 * degree + 1) * weights / (2 * b) ** 2
    complex_dtype = (torch.ones((), dtype=getattr(torch, dtype)) * 1j).dtype
    return analysis.to(device=device, dtype=complex_dtype), d.to(device=device, dtype=complex_dtype)


def _so3_tables(b: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    real = torch.float32 if dtype in (torch.float32, torch.complex64) else torch.float64
    return cached("so3_fft_tables", device, b, str(real).removeprefix("torch."))  # type: ignore[return-value]


def so3_analysis(x: torch.Tensor, b: int) -> torch.Tensor:
    r"""The SO(3) Fourier transform: coefficients ``(..., b, 2b-1, 2b-1)`` of ``x`` ``(..., 2b, 2b, 2b)`` (β, α, γ).

    :math:`\hat f^l_{mn} = (2l+1) \int f D^l_{mn}\, dg` by the SOFT quadrature: an FFT over
    (α, γ) then a weighted sum over β. Exact for ``x`` band-limited to ``b``.
    """
    analysis, _ = _so3_tables(b, x.dtype, x.device)
    # fft2 gives sum_j x e^{-2 pi i j m / 2b}: the e^{-i m alpha} of D, order m at index m mod 2b.
    # The table is in that FFT order too, so the beta sum runs on the FFT's output as it is, and
    # only the (b times smaller in beta) coefficients are gathered into the orders -(b-1) .. b-1.
    spectrum = torch.fft.fft2(x, dim=(-2, -1))
    coeffs = torch.einsum("lmnk,...kmn->...lmn", analysis, spectrum)
    orders = torch.arange(1 - b, b, device=x.device) % (2 * b)
    return coeffs.index_select(-2, orders).index_select(-1, orders)


def so3_synthesis(coeffs: torch.Tensor) -> torch.Tensor:
    r"""The inverse SO(3) Fourier transform: complex ``(..., 2b, 2b, 2b)`` (β, α, γ) from ``(..., b, 2b-1, 2b-1)``.

    :math:`f(\alpha_j, \beta_k, \gamma_l) = \sum \hat f^l_{mn} e^{i m \alpha_j} d^l_{mn}(\beta_k) e^{i n \gamma_l}`;
    take ``.real`` for a real signal.
    """
    b = coeffs.shape[-3]
    _, d = _so3_tables(b, coeffs.dtype, coeffs.device)
    # Order m goes to FFT index m mod 2b (index b, order +-b, stays zero): the coefficients are moved
    # there before the beta sum, where they are 2b / b times smaller than its output.
    padded = torch.nn.functional.pad(coeffs, (0, 1, 0, 1))
    slots = (torch.arange(2 * b, device=coeffs.device) + b - 1) % (2 * b)
    padded = padded.index_select(-2, slots).index_select(-1, slots)
    full = torch.einsum("lmnk,...lmn->...kmn", d, padded)  # (..., 2b, 2b, 2b)
    return torch.fft.ifft2(full, dim=(-2, -1)) * (2 * b) ** 2


def so3_evaluate(coeffs: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r"""The band-limited signal with ``coeffs`` ``(..., b, 2b-1, 2b-1)`` at arbitrary rotations ``(P,)``: ``(..., P)``.

    A slow, direct sum (tables built per call): for tests and references, not for training.
    """
    b = coeffs.shape[-3]
    m = torch.arange(1 - b, b, dtype=torch.float64, device=alpha.device)
    d = wigner_d_small(b, beta).to(device=coeffs.device)  # (b, M, M, P)
    phase_a = torch.exp(1j * m[:, None] * alpha.to(torch.float64)[None, :])  # (M, P)
    phase_g = torch.exp(1j * m[:, None] * gamma.to(torch.float64)[None, :])
    kernel = d * phase_a[None, :, None, :] * phase_g[None, None, :, :]
    return torch.einsum("lmnp,...lmn->...p", kernel.to(coeffs.dtype), coeffs)


@register_builder("s2_fft_table")
def _build_s2_table(b: int, height: int, dtype: str, device: torch.device) -> torch.Tensor:
    theta = (torch.arange(height, dtype=torch.float64) + 0.5) * (math.pi / height)
    d0 = wigner_d_small(b, theta)[:, :, b - 1, :]  # d^l_{m0}(theta_i): (b, M, H)
    degree = torch.arange(b, dtype=torch.float64)[:, None, None]
    table = d0 * torch.sqrt((2 * degree + 1) / (4 * math.pi)) * torch.from_numpy(_fejer_weights(height))
    complex_dtype = (torch.ones((), dtype=getattr(torch, dtype)) * 1j).dtype
    return table.to(device=device, dtype=complex_dtype)


def s2_analysis(x: torch.Tensor, b: int) -> torch.Tensor:
    r"""Complex S² coefficients :math:`\hat f^l_m = \int f \overline{Y^l_m}`, ``(..., b, 2b-1)``, of ``x`` (..., H, W).

    Rows at colatitude :math:`(i + 1/2)\pi/H`, columns at longitude :math:`2\pi j/W` (the equirect
    grid); Fejér's rule in :math:`\cos\theta` and an FFT in longitude. Exact for ``x``
    band-limited to ``b`` when ``H >= 2b`` and ``W >= 2b``.
    """
    height, width = x.shape[-2:]
    real = torch.float32 if x.dtype in (torch.float32, torch.complex64) else torch.float64
    table = cached("s2_fft_table", x.device, b, height, str(real).removeprefix("torch."))
    spectrum = torch.fft.fft(x, dim=-1) * (2 * math.pi / width)  # sum_j x e^{-i m phi_j}
    index = torch.arange(1 - b, b, device=x.device) % width
    spectrum = spectrum[..., index]  # (..., H, M)
    return torch.einsum("lmi,...im->...lm", table, spectrum)  # type: ignore[arg-type]
