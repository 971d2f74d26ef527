"""``spectral_conv``: references are e3nn (harmonics, Wigner D, ToS2Grid/FromS2Grid) and closed formulas.

Fields are built from e3nn's real spherical harmonics evaluated at the equirect pixel centres
(computed here from the convention, not from geoconv), rotated exactly, and compared after
the op. e3nn puts the pole on +y: its point for (colatitude, longitude) is
``(sin t sin p, cos t, sin t cos p)``, which is ``E @ v`` for our ``v = (sin t cos p, sin t sin p, cos t)``
with the fixed rotation ``E`` below. A rotation ``R`` in our frame is ``E R E^T`` in e3nn's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from e3nn import o3

import geoconv
from geoconv.errors import DTypeError, GeoconvError, ParameterError, ShapeError
from geoconv.grids._gather import TABLES
from geoconv.ops.spectral import _analysis, _fejer_weights, _legendre, _synthesis, max_lmax

E = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)


def _vectors(height: int, width: int) -> torch.Tensor:
    """Our pixel centres as unit vectors, ``(H, W, 3)``, float64."""
    theta = (torch.arange(height, dtype=torch.float64) + 0.5) * math.pi / height
    phi = torch.arange(width, dtype=torch.float64) * 2 * math.pi / width
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    return torch.stack([t.sin() * p.cos(), t.sin() * p.sin(), t.cos()], dim=-1)


def _sh(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    """e3nn's orthonormal real harmonics up to ``lmax`` at our unit vectors: ``(..., (lmax + 1)^2)``."""
    return o3.spherical_harmonics(list(range(lmax + 1)), vectors @ E.T, normalize=True, normalization="integral")


def _haar_rotations(count: int, seed: int) -> list[torch.Tensor]:
    # A uniformly random unit quaternion gives a Haar-random rotation.
    generator = torch.Generator().manual_seed(seed)
    quaternions = torch.randn(count, 4, generator=generator, dtype=torch.float64)
    return list(o3.quaternion_to_matrix(quaternions / quaternions.norm(dim=1, keepdim=True)))


def _op(cin: int, cout: int, seed: int = 0, dtype: torch.dtype = torch.float64, **params) -> torch.nn.Module:
    torch.manual_seed(seed)
    op = geoconv.build_op("spectral_conv", cin, cout, grid="equirect", **params).to(dtype)
    with torch.no_grad():
        if op.bias is not None:
            op.bias.normal_()  # zero at init; a non-zero bias must keep the symmetry too
    return op


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


@contextlib.contextmanager
def _float64_default() -> Iterator[None]:
    # e3nn builds its Wigner generators and its FromS2Grid quadrature weights in torch's default
    # dtype whatever dtype is asked for, so under the float32 default both are only accurate to
    # 1e-7 (a float64 Wigner D is off by 1.6e-7 at l = 1).
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _wigner(lmax: int, rotation: torch.Tensor) -> torch.Tensor:
    """e3nn's Wigner D for degrees 0..lmax, block diagonal, float64-accurate."""
    with _float64_default():
        return o3.Irreps.spherical_harmonics(lmax).D_from_matrix(rotation)


def _equivariance_errors(
    lmax: int, band: int, height: int, width: int, dtype: torch.dtype, rotations: int = 5
) -> list[float]:
    """Relative error of op(R x) against R op(x) for ``rotations`` Haar-random R, x band-limited to ``band``."""
    cin, cout = 3, 2
    op = _op(cin, cout, lmax=lmax, dtype=dtype)
    v = _vectors(height, width)
    basis = _sh(band, v)  # (H, W, n)
    coeffs = torch.randn(cin, basis.shape[-1], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.einsum("hwn,cn->chw", basis, coeffs)[None]
    y = op(x.to(dtype)).double()[0]
    # The output is band-limited to `band` too: its e3nn coefficients by least squares on the grid.
    flat = basis.reshape(-1, basis.shape[-1])
    out_coeffs = torch.linalg.lstsq(flat, y.reshape(cout, -1).T).solution.T  # (C_out, n)
    assert _relative(torch.einsum("hwn,cn->chw", basis, out_coeffs), y) < (1e-12 if dtype == torch.float64 else 1e-5)
    errors = []
    for rotation in _haar_rotations(rotations, seed=lmax + band + height):
        wigner = _wigner(band, E @ rotation @ E.T)
        # (R x)(v) = x(R^T v), evaluated exactly at the rotated points ...
        x_rotated = torch.einsum("hwn,cn->chw", _sh(band, v @ rotation), coeffs)
        # ... and through the Wigner D matrix, which checks the convention Y(Q u) = D(Q) Y(u) used below.
        assert _relative(torch.einsum("hwn,cn->chw", basis, coeffs @ wigner.T), x_rotated) < 1e-12
        expected = torch.einsum("hwn,cn->chw", basis, out_coeffs @ wigner.T)
        got = op(x_rotated[None].to(dtype)).double()[0]
        errors.append(_relative(got, expected))
    return errors


@pytest.mark.parametrize(
    ("lmax", "band", "height", "width"),
    [(8, 8, 17, 18), (8, 5, 18, 36), (12, 12, 25, 50)],  # tight odd H and W = 2 lmax + 2; inside; e3nn's top l
)
def test_so3_equivariance_float64(lmax: int, band: int, height: int, width: int) -> None:
    errors = _equivariance_errors(lmax, band, height, width, torch.float64)
    # measured: max 9e-15 (lmax 8), 1.7e-14 (lmax 12)
    assert max(errors) < 1e-10, errors


@pytest.mark.parametrize(("lmax", "height"), [(12, 25), (31, 64)])
def test_so3_equivariance_float32(lmax: int, height: int) -> None:
    # Input band 12 (e3nn's largest harmonic); the op runs its full lmax in float32.
    errors = _equivariance_errors(lmax, 12, height, 2 * height, torch.float32)
    # measured: max 2.0e-7 at lmax 12, 2.8e-7 at lmax 31 (tables built in float64, then rounded)
    assert max(errors) < 1e-5, errors


def test_single_harmonic_is_scaled_by_its_degree_weight() -> None:
    lmax = 6
    height, width = 2 * lmax + 1, 2 * lmax + 2  # the smallest grid that holds lmax
    picks = [(0, 0), (3, -2), (6, 6), (6, -6), (5, 1)]  # (l, m), e3nn's m
    basis = _sh(lmax, _vectors(height, width))
    x = torch.stack([basis[..., deg * deg + deg + m] for deg, m in picks])[None]  # one harmonic per channel
    op = _op(len(picks), 4, lmax=lmax)
    degrees = torch.tensor([deg for deg, _ in picks])
    weight = op.weight.detach()[degrees, :, torch.arange(len(picks))]  # (channel, out): w[l_c, o, c]
    expected = torch.einsum("co,chw->ohw", weight, x[0]) + op.bias.detach()[:, None, None]
    assert _relative(op(x)[0].detach(), expected) < 1e-12


def test_matches_e3nn_to_and_from_s2grid_on_any_input() -> None:
    # White noise is not band-limited, so this also checks that the quadrature is e3nn's
    # (Fejér's first rule = Driscoll-Healy on even H) and the projection onto each degree.
    lmax, height, width = 6, 14, 28
    op = _op(3, 2, lmax=lmax)
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with _float64_default():
        from_grid = o3.FromS2Grid((height, width), lmax, dtype=torch.float64)
        to_grid = o3.ToS2Grid(lmax, (height, width), dtype=torch.float64)
    degree = torch.tensor([deg for deg in range(lmax + 1) for _ in range(2 * deg + 1)])
    coeffs = from_grid(x)  # (B, C_in, n)
    mixed = torch.einsum("noc,bcn->bon", op.weight.detach()[degree], coeffs)
    expected = to_grid(mixed) + op.bias.detach()[:, None, None]
    assert _relative(op(x).detach(), expected) < 1e-10


def test_pixel_centres_are_e3nn_s2_grid() -> None:
    grid = o3.ToS2Grid(3, (10, 20), dtype=torch.float64).grid  # (beta, alpha, 3), pole on +y
    assert torch.allclose(grid, _vectors(10, 20) @ E.T, atol=1e-14)


def test_fejer_rule_is_exact_to_degree_n_minus_1_only() -> None:
    for n in range(1, 21):
        theta = (np.arange(n) + 0.5) * np.pi / n
        weights = _fejer_weights(n)
        for k in range(n + 1):
            integral = np.sum(weights * np.polynomial.legendre.legval(np.cos(theta), [0] * k + [1]))
            exact = 2.0 if k == 0 else 0.0  # the integral of P_k over [-1, 1]
            if k < n:
                assert abs(integral - exact) < 1e-13, (n, k)
            elif n % 2 == 0:  # degree n is odd for odd n, integrated exactly by symmetry
                assert abs(integral - exact) > 1e-3, (n, k)


def test_legendre_recurrence_is_stable_at_high_degree() -> None:
    lmax, height = 150, 301
    theta = (np.arange(height) + 0.5) * np.pi / height
    table = _legendre(lmax, theta)  # (m, theta, l)
    # Addition theorem: sum_m |Y_lm|^2 = (2l + 1) / 4 pi at every point.
    g2 = np.where(np.arange(lmax + 1) == 0, 1.0, 2.0)
    total = np.einsum("m,mil->il", g2, table**2)
    assert np.abs(total / ((2 * np.arange(lmax + 1) + 1) / (4 * np.pi)) - 1).max() < 1e-11
    # Orthonormality in l at fixed m through the exact quadrature (e3nn's expanded
    # polynomials are already off by 2e-4 here at lmax 40).
    weights = _fejer_weights(height)
    for m in (0, 1, 37, 150):
        gram = 2 * np.pi * np.einsum("i,il,ik->lk", weights, table[m, :, m:], table[m, :, m:])
        assert np.abs(gram - np.eye(lmax + 1 - m)).max() < 1e-11, m


def test_exactness_condition_is_tight() -> None:
    lmax = 7
    coeffs = torch.zeros(1, lmax + 1, lmax + 1, 2, dtype=torch.float64)
    coeffs[0, lmax, 0, 0] = 1.0  # Y_{7,0}: squared, degree 14 in cos(theta)
    coeffs[0, lmax, lmax, 1] = 1.0  # Y_{7,-7}: sin(7 phi)

    def round_trip(height: int, width: int) -> float:
        return _relative(_analysis(_synthesis(coeffs, height, width), lmax), coeffs)

    assert (max_lmax(2 * lmax + 1, 2 * lmax + 2), round_trip(2 * lmax + 1, 2 * lmax + 2) < 1e-13) == (lmax, True)
    assert round_trip(2 * lmax, 2 * lmax + 2) > 1e-3  # H = 2 lmax misses degree 2 lmax in cos: measured 4.8e-3
    assert round_trip(2 * lmax + 1, 2 * lmax) > 0.5  # W = 2 lmax: sin(lmax phi) vanishes at every column


def test_lmax_none_takes_the_first_grid_and_keeps_it() -> None:
    op = geoconv.build_op("spectral_conv", 2, 3, grid="equirect")
    assert op.lmax is None
    assert op(torch.randn(1, 2, 13, 26)).shape == (1, 3, 13, 26)
    assert op.lmax == 6 and op.weight.shape == (7, 3, 2)
    assert op(torch.randn(1, 2, 20, 40)).shape == (1, 3, 20, 40)  # a finer grid keeps lmax 6
    with pytest.raises(ShapeError, match=r"lmax=6.*\(1, 2, 12, 24\)"):
        op(torch.randn(1, 2, 12, 24))


def test_lmax_none_state_round_trip_after_the_first_call() -> None:
    torch.manual_seed(0)
    source = geoconv.build_op("spectral_conv", 2, 3, grid="equirect")
    x = torch.randn(1, 2, 9, 18)
    y = source(x)
    torch.manual_seed(1)
    target = geoconv.build_op("spectral_conv", 2, 3, grid="equirect")
    target.load_state_dict(source.state_dict())
    assert target.lmax == 4
    assert torch.equal(target(x), y)


def test_weights_keep_the_power_of_band_limited_inputs() -> None:
    channels, lmax = 32, 10
    height, width = 2 * lmax + 2, 4 * lmax + 4
    basis = _sh(lmax, _vectors(height, width))
    coeffs = torch.randn(channels, basis.shape[-1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.einsum("hwn,cn->chw", basis, coeffs)
    x = (x / x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt())[None]
    op = _op(channels, channels, lmax=lmax)
    with torch.no_grad():
        op.bias.zero_()
        power = op(x).pow(2).mean().item()
    assert 0.75 < power < 1.33, power  # measured 1.02 (white noise: 0.15, the share of its power at l <= lmax)


def test_gradients_against_finite_differences() -> None:
    op = _op(2, 2, lmax=2)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = op.weight.detach().clone().requires_grad_(True)
    bias = op.bias.detach().clone().requires_grad_(True)

    def run(x, weight, bias):
        return torch.func.functional_call(op, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(run, (x, weight, bias))
    assert run(x, weight, bias).dtype == torch.float64


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 2, 12, 24), r"lmax=6.*H > 2\*lmax.*\(1, 2, 12, 24\).*lmax <= 5"),  # H too small
        ((1, 2, 13, 12), r"lmax=6.*\(1, 2, 13, 12\).*lmax <= 5"),  # W too small
        ((1, 2, 13, 25), r"even width"),
        ((2, 13, 26), r"\(B, C, H, W\)"),
        ((1, 3, 13, 26), r"in_channels=2"),
    ],
)
def test_bad_input_names_what_is_wrong(shape: tuple[int, ...], match: str) -> None:
    op = geoconv.build_op("spectral_conv", 2, 2, grid="equirect", lmax=6)
    assert op(torch.randn(1, 2, 13, 14)).shape == (1, 2, 13, 14)  # the smallest grid for lmax 6
    with pytest.raises(GeoconvError, match=match):
        op(torch.randn(shape))


def test_bad_dtype_and_parameters() -> None:
    op = geoconv.build_op("spectral_conv", 2, 2, grid="equirect", lmax=2)
    with pytest.raises(DTypeError, match="float64") as info:  # a cast fixes it, not a reshape
        op(torch.randn(1, 2, 6, 12, dtype=torch.float64))
    assert not isinstance(info.value, ShapeError)
    with pytest.raises(ShapeError, match="floating-point"):
        op(torch.ones(1, 2, 6, 12, dtype=torch.int64))
    with pytest.raises(ParameterError, match="lmax"):
        geoconv.build_op("spectral_conv", 2, grid="equirect", lmax=-1)
    with pytest.raises(ParameterError, match="lmax"):
        geoconv.build_op("spectral_conv", 2, grid="equirect", lmax="4")
    with pytest.raises(GeoconvError, match="equirect"):
        geoconv.build_op("spectral_conv", 2, grid="planar")


def test_table_cache_is_bounded() -> None:
    # The Legendre tables live in the shared bounded cache: more heights than it holds.
    for height in range(3, 3 + TABLES.maxsize + 4):
        _analysis(torch.zeros(1, height, 2 * height), 1)
    assert len(TABLES) <= TABLES.maxsize
