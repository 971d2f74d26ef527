"""The SO(3) family (``s2_conv``, ``so3_conv``, ``so3_integrate``) and the SOFT transforms under it.

References: the SOFT weights' closed form (Kostelec & Rockmore 2008), exact integrals of
Wigner D functions, the addition theorem for the band-limited point-mass filter (a slow
float64 quadrature of the correlation integral on a Gauss-Legendre grid), e3nn's harmonics
(``BandLimitedField``) for the input fields and their exact rotation, and rotation matrices
for the group action (``f(R^-1 g)`` read by direct summation at the Euler angles of ``R^T g``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoconv import build_op
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids.fields import BandLimitedField
from geoconv.ops._so3_fft import (
    euler_angles,
    rotation_matrix,
    so3_analysis,
    so3_evaluate,
    so3_grid,
    so3_quadrature_weights,
    so3_synthesis,
    wigner_d_small,
)


def _haar_rotation(seed: int) -> torch.Tensor:
    """A Haar-random rotation: QR of a Gaussian matrix with the sign fix (Mezzadri 2007)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _grid_rotations(b: int) -> torch.Tensor:
    """The SOFT grid's rotations in the so3 layout's order (beta, alpha, gamma): ``(2b, 2b, 2b, 3, 3)``."""
    alpha, beta, gamma = so3_grid(b)
    bb, aa, gg = torch.meshgrid(beta, alpha, gamma, indexing="ij")
    return rotation_matrix(aa, bb, gg)


def _rotate_so3(y: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """``(L_R y)(g) = y(R^-1 g)`` on the SOFT grid, for ``y`` band-limited to its grid: a direct sum."""
    b = y.shape[-1] // 2
    coeffs = so3_analysis(y.to(torch.float64), b)
    alpha, beta, gamma = euler_angles(rotation.T @ _grid_rotations(b))
    values = so3_evaluate(coeffs, alpha.reshape(-1), beta.reshape(-1), gamma.reshape(-1)).real
    return values.reshape(y.shape)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm() / b.norm()).detach())


def _random_coeffs(b: int, batch: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = 2 * b - 1
    coeffs = torch.randn(*batch, b, size, size, 2, generator=g, dtype=torch.float64)
    degree = torch.arange(b)[:, None, None]
    order = torch.arange(1 - b, b).abs()
    mask = (order[None, :, None] <= degree) & (order[None, None, :] <= degree)
    return torch.view_as_complex(coeffs) * mask


# -- the grid and the transform -----------------------------------------------------------


def test_soft_weights_match_the_closed_form() -> None:
    b = 5
    k = np.arange(2 * b)
    j = np.arange(b)[:, None]
    # Kostelec & Rockmore 2008, eq. 2.17: w_b(k) = (2/b) sin(beta_k) sum_j sin((2j+1) beta_k) / (2j+1)
    beta = np.pi * (2 * k + 1) / (4 * b)
    closed = 2 / b * np.sin(beta) * (np.sin((2 * j + 1) * beta) / (2 * j + 1)).sum(axis=0)
    np.testing.assert_allclose(so3_quadrature_weights(b).numpy(), closed / closed.sum(), atol=1e-15)
    assert abs(float(so3_quadrature_weights(b).sum()) - 1.0) < 1e-14


def test_haar_quadrature_integrates_wigner_d_exactly() -> None:
    """Sum over the grid of w D^l_mn / (2b)^2 is delta_{l0} for every l < 2b (the quadrature's exactness)."""
    b = 4
    n = 2 * b
    alpha, beta, gamma = so3_grid(b)
    d = wigner_d_small(n, beta)  # degrees l < 2b: (2b, 4b - 1, 4b - 1, 2b)
    m = torch.arange(1 - n, n, dtype=torch.float64)
    phase_a = torch.exp(-1j * m[:, None] * alpha[None, :])  # (M, 2b)
    phase_g = torch.exp(-1j * m[:, None] * gamma[None, :])
    w = so3_quadrature_weights(b)
    integral = torch.einsum("lmnk,k,mj,nq->lmn", d.to(torch.complex128), w.to(torch.complex128), phase_a, phase_g)
    integral = integral / n**2
    expected = torch.zeros_like(integral)
    expected[0, n - 1, n - 1] = 1.0
    assert (integral - expected).abs().max() < 1e-12


def test_so3_fft_round_trip() -> None:
    b = 5
    coeffs = _random_coeffs(b, (2, 3), seed=1)
    signal = so3_synthesis(coeffs)
    assert signal.shape == (2, 3, 10, 10, 10)
    assert (so3_analysis(signal, b) - coeffs).abs().max() < 1e-10
    # float32: the same tables rounded once; the round trip keeps float32 accuracy
    back32 = so3_analysis(signal.to(torch.complex64), b)
    assert (back32.to(torch.complex128) - coeffs).abs().max() < 1e-5


def test_so3_fft_of_closed_forms() -> None:
    """cos(beta) = D^1_00 and its grid values: the transform finds the one coefficient, and synthesis the values."""
    b = 4
    _, beta, _ = so3_grid(b)
    signal = torch.cos(beta)[:, None, None].expand(8, 8, 8).to(torch.float64)
    coeffs = so3_analysis(signal, b)
    expected = torch.zeros_like(coeffs)
    expected[1, b - 1, b - 1] = 1.0
    assert (coeffs - expected).abs().max() < 1e-13
    # D^1_{10}(g) = -e^{-i alpha} sin(beta) / sqrt(2): the coefficient 1 at (l, m, n) = (1, 1, 0) gives its conjugate
    one = torch.zeros_like(coeffs)
    one[1, b, b - 1] = 1.0
    alpha, beta, _ = so3_grid(b)
    closed = -torch.exp(1j * alpha)[None, :, None] * torch.sin(beta)[:, None, None] / math.sqrt(2)
    assert (so3_synthesis(one) - closed.expand(8, 8, 8)).abs().max() < 1e-13


def test_so3_integrate_value() -> None:
    """The Haar integral of cos^2(beta) is 1/3 (density sin(beta)/2 in beta)."""
    b = 3
    _, beta, _ = so3_grid(b)
    x = (torch.cos(beta) ** 2)[:, None, None].expand(6, 6, 6).reshape(1, 1, 6, 6, 6).to(torch.float64)
    out = build_op("so3_integrate", 1, grid="equirect").double()(x)
    assert abs(float(out) - 1 / 3) < 1e-14


# -- s2_conv against the correlation integral ---------------------------------------------


def test_s2_conv_matches_the_correlation_integral() -> None:
    r"""[psi * f](R) = \int psi_b(R^-1 x) f(x) dx, psi_b the point masses cut to degrees < b (addition theorem)."""
    b, lmax, c_in, c_out = 3, 2, 2, 2
    max_beta, n_alpha, n_beta = 0.5, 3, 2
    field = BandLimitedField.random(lmax, batch=1, channels=c_in, generator=torch.Generator().manual_seed(3))
    conv = build_op(
        "s2_conv", c_in, c_out, grid="equirect", b_out=b, max_beta=max_beta, n_alpha=n_alpha, n_beta=n_beta
    ).double()
    with torch.no_grad():
        conv.bias.normal_()
    out = conv(field.sample("equirect", (2 * b, 4 * b)))  # (1, C_out, 2b, 2b, 2b)

    # the kernel's points, recomputed: rings beta = max_beta i / n_beta, alpha = 2 pi j / n_alpha
    kb = np.repeat(np.arange(1, n_beta + 1) * max_beta / n_beta, n_alpha)
    ka = np.tile(np.arange(n_alpha) * 2 * np.pi / n_alpha, n_beta)
    points = np.stack([np.sin(kb) * np.cos(ka), np.sin(kb) * np.sin(ka), np.cos(kb)], axis=-1)  # (P, 3)
    # Gauss-Legendre in cos(theta) x uniform in phi: exact for the degree <= 2(b - 1) integrand
    nodes, gl_weights = np.polynomial.legendre.leggauss(8)
    phi = np.arange(16) * 2 * np.pi / 16
    st = np.sqrt(1 - nodes**2)
    x = np.stack([st[:, None] * np.cos(phi), st[:, None] * np.sin(phi), np.repeat(nodes[:, None], 16, 1)], -1)
    x = x.reshape(-1, 3)
    dx = np.repeat(gl_weights, 16) * 2 * np.pi / 16
    f = field.evaluate(torch.from_numpy(x))[0].numpy()  # (C_in, Q)
    rotations = _grid_rotations(b).numpy()  # (2b, 2b, 2b, 3, 3)
    rotated_points = np.einsum("kjlab,pb->kjlpa", rotations, points)
    cosines = np.einsum("kjlpa,qa->kjlpq", rotated_points, x)
    zonal = np.polynomial.legendre.legval(cosines, (2 * np.arange(b) + 1) / (4 * np.pi))  # psi_b per point
    correlation = np.einsum("kjlpq,cq,q->ckjlp", zonal, f, dx)
    weight = conv.weight.detach().numpy()  # (C_in, C_out, P)
    reference = np.einsum("ckjlp,cop->okjl", correlation, weight) + conv.bias.detach().numpy()[:, None, None, None]
    np.testing.assert_allclose(out[0].detach().numpy(), reference, atol=1e-12 * np.abs(reference).max())


# -- equivariance and invariance ----------------------------------------------------------


@pytest.mark.parametrize("width_factor", [1, 2])
def test_s2_conv_is_equivariant(width_factor: int) -> None:
    b_in, b_out = 5, 4
    field = BandLimitedField.random(b_in - 1, batch=2, channels=3, generator=torch.Generator().manual_seed(4))
    rotation = _haar_rotation(5)
    size = (2 * b_in, 2 * b_in * width_factor)
    torch.manual_seed(0)
    conv = build_op("s2_conv", 3, 2, grid="equirect", b_out=b_out).double()
    with torch.no_grad():
        conv.bias.normal_()
        y = conv(field.sample("equirect", size))
        y_rotated_input = conv(field.rotate(rotation).sample("equirect", size))
        assert _relative(y_rotated_input, _rotate_so3(y, rotation)) < 1e-8
        # float32: measured 1.6e-7 relative (so3_conv: 1.4e-7); bound 1e-5
        conv32 = conv.float()
        y32 = conv32(field.rotate(rotation).sample("equirect", size).float())
        assert _relative(y32.double(), _rotate_so3(y, rotation)) < 1e-5
        # the invariant features
        integrate = build_op("so3_integrate", 2, grid="equirect")
        assert _relative(integrate(y_rotated_input), integrate(y)) < 1e-10


def test_so3_conv_is_equivariant() -> None:
    b_in, b_out = 4, 3
    x = so3_synthesis(_random_coeffs(b_in, (2, 2), seed=6)).real
    rotation = _haar_rotation(7)
    torch.manual_seed(1)
    conv = build_op("so3_conv", 2, 3, grid="equirect", b_out=b_out, n_alpha=4, n_beta=2, n_gamma=3).double()
    with torch.no_grad():
        conv.bias.normal_()
        y = conv(x)
        assert y.shape == (2, 3, 6, 6, 6)
        y_rotated_input = conv(_rotate_so3(x, rotation))
        assert _relative(y_rotated_input, _rotate_so3(y, rotation)) < 1e-8
        # float32: measured 1.4e-7 relative; bound 1e-5
        y32 = build_op("so3_conv", 2, 3, grid="equirect", b_out=b_out, n_alpha=4, n_beta=2, n_gamma=3)
        y32.load_state_dict(conv.state_dict())
        y32 = y32(_rotate_so3(x, rotation).float())
        assert _relative(y32.double(), _rotate_so3(y, rotation)) < 1e-5
        integrate = build_op("so3_integrate", 3, grid="equirect")
        assert _relative(integrate(y_rotated_input), integrate(y)) < 1e-10


def test_so3_conv_reads_the_input_at_the_rotated_kernel_points() -> None:
    """h(R) = sum_p w_p f(R g_p) for f band-limited to b_out: a direct sum at the kernel's rotations."""
    b = 3
    coeffs = _random_coeffs(b, (1, 1), seed=8)
    x = so3_synthesis(coeffs).real
    conv = build_op("so3_conv", 1, 1, grid="equirect", n_alpha=3, n_beta=2, n_gamma=2, bias=False).double()
    y = conv(x).detach()
    # the kernel's points, recomputed: (alpha, beta, gamma') with gamma = gamma' - alpha
    beta = np.repeat(np.arange(1, 3) * (math.pi / 8) / 2, 3 * 2)
    alpha = np.tile(np.repeat(np.arange(3) * 2 * math.pi / 3, 2), 2)
    gamma = np.tile(np.linspace(-2 * math.pi, 2 * math.pi, 2), 6) - alpha
    kernel = rotation_matrix(*(torch.from_numpy(a) for a in (alpha, beta, gamma)))  # (P, 3, 3)
    products = _grid_rotations(b)[:, :, :, None] @ kernel  # (2b, 2b, 2b, P, 3, 3)
    a, bb, g = euler_angles(products)
    real_coeffs = so3_analysis(x, b)
    values = so3_evaluate(real_coeffs, a.reshape(-1), bb.reshape(-1), g.reshape(-1)).real.reshape(1, 1, *a.shape)
    reference = torch.einsum("kjlp,p->kjl", values[0, 0], conv.weight[0, 0].detach())
    assert _relative(y[0, 0], reference) < 1e-11


def test_s2_conv_float32_and_gradients() -> None:
    conv = build_op("s2_conv", 2, 3, grid="equirect", b_out=3)
    x = torch.randn(2, 2, 8, 16, requires_grad=True)
    y = conv(x)
    assert y.shape == (2, 3, 6, 6, 6) and y.dtype == torch.float32
    y64 = conv.double()(x.double())
    assert _relative(y.double(), y64) < 1e-5
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "shape", "params"),
    [
        ("s2_conv", (3, 2, 8, 16), {"b_out": 3}),
        ("so3_conv", (3, 2, 6, 6, 6), {"b_out": 2, "n_alpha": 4, "n_beta": 2}),
        ("so3_integrate", (3, 2, 6, 6, 6), {}),
    ],
)
def test_op_contract_on_the_so3_layout(name: str, shape: tuple[int, ...], params: dict[str, int]) -> None:
    """The clauses of geoconv.testing.assert_op_contract, fed the so3 layout it cannot build."""
    out_channels = 2 if name == "so3_integrate" else 3
    torch.manual_seed(2)
    op = build_op(name, 2, out_channels, grid="equirect", **params)
    x = torch.randn(shape)
    y = op(x)
    # batch items independent; float64 agrees with float32; finite
    assert torch.isfinite(y).all()
    torch.testing.assert_close(op(x[1:2]), y[1:2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(op.double()(x.double()).float(), y, rtol=1e-4, atol=1e-5)
    op.float()
    # state_dict round trip into a module built under another seed; two builds under one seed agree
    torch.manual_seed(3)
    other = build_op(name, 2, out_channels, grid="equirect", **params)
    other.load_state_dict(op.state_dict())
    torch.testing.assert_close(other(x), y)
    torch.manual_seed(2)
    torch.testing.assert_close(build_op(name, 2, out_channels, grid="equirect", **params)(x), y)
    # an empty batch; gradients to the input
    assert op(x[:0]).shape == (0, *y.shape[1:])
    xg = x.clone().requires_grad_()
    op(xg).square().sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in op.parameters())


# -- bad input -----------------------------------------------------------------------------


def test_s2_conv_refuses_bad_grids() -> None:
    conv = build_op("s2_conv", 2, 3, grid="equirect")
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\)"):
        conv(torch.randn(1, 2, 4, 4, 4))
    with pytest.raises(ShapeError, match="2b"):
        conv(torch.randn(1, 2, 8, 24))  # W = 3H
    with pytest.raises(ShapeError, match="2b"):
        conv(torch.randn(1, 2, 7, 14))  # H odd
    with pytest.raises(ShapeError, match="b_in=5"):
        build_op("s2_conv", 2, 3, grid="equirect", b_in=5)(torch.randn(1, 2, 8, 16))
    with pytest.raises(ParameterError, match="b_out=5"):
        build_op("s2_conv", 2, 3, grid="equirect", b_out=5)(torch.randn(1, 2, 8, 16))
    with pytest.raises(ParameterError, match="b_out"):
        build_op("s2_conv", 2, 3, grid="equirect", b_in=3, b_out=4)


@pytest.mark.parametrize("name", ["so3_conv", "so3_integrate"])
def test_so3_ops_refuse_other_layouts(name: str) -> None:
    op = build_op(name, 2, 2, grid="equirect")
    with pytest.raises(ShapeError, match=r"\(B, C, 2b, 2b, 2b\)"):
        op(torch.randn(1, 2, 8, 16))
    with pytest.raises(ShapeError, match=r"so3 layout"):
        op(torch.randn(1, 2, 6, 6, 8))
    with pytest.raises(ShapeError, match=r"so3 layout"):
        op(torch.randn(1, 2, 5, 5, 5))
    with pytest.raises(ShapeError, match="in_channels=2"):
        op(torch.randn(1, 3, 6, 6, 6))


def test_so3_conv_refuses_band_limits() -> None:
    with pytest.raises(ParameterError, match="b_out=4"):
        build_op("so3_conv", 1, 1, grid="equirect", b_out=4)(torch.randn(1, 1, 6, 6, 6))
    with pytest.raises(ShapeError, match="b_in=2"):
        build_op("so3_conv", 1, 1, grid="equirect", b_in=2)(torch.randn(1, 1, 6, 6, 6))


@pytest.mark.parametrize("name", ["s2_conv", "so3_conv", "so3_integrate"])
def test_layers_refuse_non_local(name: str) -> None:
    with pytest.raises(GeoconvError, match="not local"):
        build_op(name, 2, 2, grid="equirect").layers()
