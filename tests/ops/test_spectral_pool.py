"""``spectral_pool``: references are scipy's complex harmonics at the pixel centres and exact grid symmetries.

Fields are explicit sums of ``scipy.special.sph_harm_y`` evaluated in float64 at the equirect
pixel centres, written here from the grid's convention (``theta_i = (i + 1/2) pi / H``,
``phi_j = 2 pi j / W``), not taken from geoconv. The independent reference of the whole op,
:func:`_reference_pool`, projects with those complex harmonics and the interpolatory
quadrature of the nodes, its weights solved here from the Legendre moments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.nn.models import Classifier


def _centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude and longitude of every pixel centre, each ``(H, W)``."""
    theta = (np.arange(height) + 0.5) * np.pi / height
    phi = 2 * np.pi * np.arange(width) / width
    return np.meshgrid(theta, phi, indexing="ij")


def _rotation(seed: int) -> np.ndarray:
    """A random rotation matrix (QR of a Gaussian matrix, determinant +1)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _angles(height: int, width: int, rotation: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The angles of ``R^T v`` for every pixel centre ``v``: sampling ``f(R^T v)`` rotates ``f`` by ``R``."""
    theta, phi = _centres(height, width)
    if rotation is None:
        return theta, phi
    v = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    u = v @ rotation  # rows: R^T v
    return np.arccos(np.clip(u[..., 2], -1.0, 1.0)), np.arctan2(u[..., 1], u[..., 0])


def _field(terms: dict[tuple[int, int], complex], height: int, width: int, rotation: np.ndarray | None = None):
    """``sum Re(a_lm Y_lm)`` (each term of degree l) at the pixel centres, float64 ``(H, W)``."""
    theta, phi = _angles(height, width, rotation)
    out = np.zeros((height, width))
    for (degree, order), a in terms.items():
        out += np.real(a * sph_harm_y(degree, order, theta, phi))
    return out


def _random_terms(degrees: range, seed: int) -> dict[tuple[int, int], complex]:
    rng = np.random.default_rng(seed)
    return {(deg, m): complex(*rng.standard_normal(2)) for deg in degrees for m in range(deg + 1)}


def _weights(height: int) -> np.ndarray:
    """Interpolatory quadrature in cos(theta) on the centres: sum_i w_i P_k(x_i) = int P_k = 2 delta_k0."""
    x = np.cos((np.arange(height) + 0.5) * np.pi / height)
    moments = np.zeros(height)
    moments[0] = 2.0
    return np.linalg.solve(np.polynomial.legendre.legvander(x, height - 1).T, moments)


def _reference_pool(x: np.ndarray, factor: int, lmax: int) -> np.ndarray:
    """``P_L x`` on the coarse grid, with complex harmonics: ``(..., H, W) -> (..., H / f, W / f)``, float64."""
    height, width = x.shape[-2:]
    fine, coarse = _centres(height, width), _centres(height // factor, width // factor)
    lm = [(deg, m) for deg in range(lmax + 1) for m in range(-deg, deg + 1)]
    y_in = np.stack([sph_harm_y(deg, m, *fine) for deg, m in lm])
    y_out = np.stack([sph_harm_y(deg, m, *coarse) for deg, m in lm])
    weighted = x * _weights(height)[:, None] * (2 * np.pi / width)
    coeffs = np.einsum("...ij,kij->...k", weighted, np.conj(y_in))
    return np.real(np.einsum("...k,kij->...ij", coeffs, y_out))


def _pool(channels: int = 1, **params) -> torch.nn.Module:
    return geoconv.build_op("spectral_pool", channels, grid="equirect", **params)


def _max_error(a: torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    b = torch.as_tensor(b, dtype=a.dtype)
    return float((a.detach() - b).abs().max())


# -- (a) band-limited fields are reproduced on the coarse grid ---------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "factor", "lmax", "expected_lmax"),
    [(16, 32, 2, None, 3), (24, 32, 4, None, 2), (12, 24, 1, None, 5), (16, 32, 2, 2, 2), (18, 36, 3, None, 2)],
)
def test_band_limited_field_is_reproduced_on_the_coarse_grid(height, width, factor, lmax, expected_lmax) -> None:
    pool = _pool(factor=factor, lmax=lmax)
    assert pool.band_limit(height, width) == expected_lmax
    terms = _random_terms(range(expected_lmax + 1), seed=height + factor)
    x = torch.from_numpy(_field(terms, height, width))[None, None]
    y = pool(x)
    assert y.shape == (1, 1, height // factor, width // factor) and y.dtype == torch.float64
    error = _max_error(y[0, 0], _field(terms, height // factor, width // factor))
    assert error <= 1e-10, error  # measured: ~1e-15


def test_float32_reproduces_to_float32_accuracy() -> None:
    terms = _random_terms(range(4), seed=7)
    x = torch.from_numpy(_field(terms, 16, 32)).float()[None, None]
    y = _pool()(x)
    assert y.dtype == torch.float32
    assert _max_error(y[0, 0].double(), _field(terms, 8, 16)) <= 1e-5


# -- (b) degrees above the band limit are removed ----------------------------------------------------------


@pytest.mark.parametrize("degree", [4, 5, 8, 12])
@pytest.mark.parametrize("which", ["zonal", "one", "sectoral"])
def test_harmonic_above_the_band_limit_is_removed(degree: int, which: str) -> None:
    # (16, 32) -> (8, 16), L = 3; the input quadrature is exact for degree + L <= H - 1 = 15.
    order = {"zonal": 0, "one": 1, "sectoral": degree}[which]
    x = torch.from_numpy(_field({(degree, order): 1.0 + 0.5j}, 16, 32))[None, None]
    assert float(x.abs().max()) > 0.1
    assert _max_error(_pool()(x)[0, 0], np.zeros((8, 16))) <= 1e-12


def test_lmax_cuts_where_it_is_told() -> None:
    low, kept_out = _random_terms(range(3), seed=1), {(3, 2): 0.7 - 0.2j}
    x = torch.from_numpy(_field({**low, **kept_out}, 16, 32))[None, None]
    y = _pool(lmax=2)(x)
    assert _max_error(y[0, 0], _field(low, 8, 16)) <= 1e-12


def test_any_input_matches_the_independent_projection() -> None:
    # White noise is not band-limited: the op is still exactly P_L applied with the input grid's quadrature.
    x = np.random.default_rng(3).standard_normal((2, 3, 12, 24))
    for factor, lmax in ((2, None), (3, 1), (1, 4)):
        pool = _pool(3, factor=factor, lmax=lmax)
        expected = _reference_pool(x, factor, pool.band_limit(12, 24))
        assert _max_error(pool(torch.from_numpy(x)), expected) <= 1e-12


# -- symmetries: longitude rolls, the half turn about an equatorial axis, every rotation -------------------


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("k", [1, 3, -2])
def test_commutes_with_longitude_rolls(factor: int, k: int) -> None:
    x = torch.randn(2, 3, 16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(k + 10 * factor))
    pool = _pool(3, factor=factor)
    rolled = pool(torch.roll(x, factor * k, dims=-1))
    assert _max_error(rolled, torch.roll(pool(x), k, dims=-1)) <= 1e-12


def test_commutes_with_longitude_rolls_in_float32() -> None:
    x = torch.randn(2, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    pool = _pool(3)
    assert _max_error(pool(torch.roll(x, 6, dims=-1)), torch.roll(pool(x), 3, dims=-1)) <= 1e-5


def test_commutes_with_the_half_turn_about_an_equatorial_axis() -> None:
    # (x, y, z) -> (x, -y, -z): row i -> H - 1 - i, column j -> -j mod W, on both grids; exact for any input.
    def turn(t: torch.Tensor) -> torch.Tensor:
        return torch.roll(torch.flip(t, dims=(-2, -1)), 1, dims=-1)

    x = torch.randn(1, 2, 16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    pool = _pool(2)
    assert _max_error(pool(turn(x)), turn(pool(x))) <= 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_commutes_with_every_rotation_for_band_limited_inputs(seed: int) -> None:
    # Input band-limited to max_lmax(16, 32) = 7: degrees <= 3 survive the pool, 4..7 do not.
    low, high = _random_terms(range(4), seed), _random_terms(range(4, 8), seed + 100)
    rotation = _rotation(seed)
    x = _field(low, 16, 32, rotation) + _field(high, 16, 32, rotation)  # R . (low + high)
    y = _pool()(torch.from_numpy(x)[None, None])
    assert _max_error(y[0, 0], _field(low, 8, 16, rotation)) <= 1e-10  # R . P_L (low + high)


# -- (d) autograd ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("factor", "lmax"), [(2, None), (1, 2)])
def test_gradcheck(factor: int, lmax: int | None) -> None:
    x = torch.randn(1, 1, 6, 12, dtype=torch.float64, requires_grad=True)
    pool = _pool(1, factor=factor, lmax=lmax)
    assert torch.autograd.gradcheck(pool, (x,))


def test_adjoint_is_the_transposed_reference() -> None:
    # The gradient of <c, F(x)> is F^T c; F is linear, so F^T c is read off the reference's matrix.
    height, width = 8, 16
    basis = np.eye(height * width).reshape(-1, height, width)
    matrix = _reference_pool(basis, 2, 1).reshape(height * width, -1)  # rows: inputs, cols: outputs
    c = torch.randn(1, 1, 4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x = torch.zeros(1, 1, height, width, dtype=torch.float64, requires_grad=True)
    (_pool()(x) * c).sum().backward()
    assert _max_error(x.grad.flatten(), matrix @ c.flatten().numpy()) <= 1e-12


# -- (e) inside a classifier ---------------------------------------------------------------------------------


def test_classifier_with_spectral_pool_runs_and_pools_what_it_should() -> None:
    torch.manual_seed(0)
    model = Classifier("conv", 2, 3, grid="equirect", widths=(4, 5), stride=1, pool="spectral_pool")
    x = torch.randn(2, 2, 16, 32, generator=torch.Generator().manual_seed(1))
    logits = model(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)
    # The first block: relu(P_3 (norm(conv(x)))) on (8, 16), against the float64 reference.
    block = model.blocks[0]
    with torch.no_grad():
        before = block.norm(block.conv(x))
        out = block(x)
    expected = np.maximum(_reference_pool(before.double().numpy(), 2, 3), 0.0)
    assert out.shape == (2, 4, 8, 16)
    assert _max_error(out.double(), expected) <= 1e-5 * float(np.abs(expected).max())


def test_classifier_refuses_a_padding_mode_for_the_pool() -> None:
    with pytest.raises(ParameterError, match=r"padding_mode='sphere'.*'spectral_pool' has no padding"):
        Classifier("conv", 2, 3, grid="equirect", stride=1, pool="spectral_pool", padding_mode="sphere")


# -- (f) errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "params", "match"),
    [
        ((1, 1, 16, 32), {"factor": 3}, r"factor=3 must divide .*H=16, W=32; H % factor = 1, W % factor = 2"),
        ((1, 1, 16, 30), {"factor": 4}, r"factor=4 must divide .*H=16, W=30"),
        ((1, 1, 4, 8), {"factor": 8}, r"factor=8 is larger than .*H=4, W=8.*no band limit"),
        ((1, 1, 8, 12), {"factor": 4}, r"output faces 2x3.*even width.*factor=4"),
        ((1, 1, 16, 32), {"lmax": 4}, r"lmax=4 is more than the output grid resolves.*H'=8, W'=16.*lmax <= 3"),
        ((1, 1, 16, 32), {"factor": 4, "lmax": 2}, r"lmax=2 .*lmax <= 1 here \(the input grid H=16, W=32 .*<= 7"),
        ((1, 1, 16, 32, 2), {}, r"\(B, C, H, W\)"),
        ((1, 1, 16, 31), {}, r"even width W.*W=31"),
        ((1, 2, 16, 32), {}, r"in_channels=1"),
    ],
)
def test_bad_input_raises_shape_error(shape: tuple[int, ...], params: dict, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        _pool(**params)(torch.zeros(shape))


def test_integer_input_is_refused() -> None:
    with pytest.raises(ShapeError, match="floating-point"):
        _pool()(torch.zeros(1, 1, 8, 16, dtype=torch.int64))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"factor": 0}, r"factor must be an integer >= 1, got 0"),
        ({"factor": 1.5}, r"factor"),
        ({"lmax": -1}, r"lmax must be an integer >= 0, got -1"),
    ],
)
def test_bad_config_raises_parameter_error(params: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        _pool(**params)


def test_other_grids_channels_and_layers_are_refused() -> None:
    for grid in ("healpix", "planar", "cubemap"):
        with pytest.raises(GeoconvError, match=r"spectral_pool.*equirect"):
            geoconv.build_op("spectral_pool", 1, grid=grid)
    with pytest.raises(ParameterError, match="keeps the channel count"):
        geoconv.build_op("spectral_pool", 2, 3, grid="equirect")
    with pytest.raises(ParameterError, match="not local"):
        _pool().layers((16, 32))
    assert _pool(factor=4).output_size((16, 32)) == (4, 8)
    with pytest.raises(ShapeError, match=r"factor=2 must divide .*input_size=\(15, 32\)"):
        _pool().output_size((15, 32))


def test_half_precision_and_empty_batch() -> None:
    x = torch.from_numpy(_field(_random_terms(range(4), seed=2), 16, 32))[None, None]
    y = _pool()(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.shape == (1, 1, 8, 16)
    assert _max_error(y.double()[0, 0], _field(_random_terms(range(4), seed=2), 8, 16)) <= 0.05 * math.sqrt(
        float(x.square().mean())
    )
    assert _pool(3)(torch.zeros(0, 3, 16, 32)).shape == (0, 3, 8, 16)


@pytest.mark.gpu
def test_cuda_matches_the_cpu() -> None:
    x = torch.randn(2, 3, 16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pool = _pool(3)
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        xc = x.to(dtype).cuda().requires_grad_(True)
        y = pool(xc)
        assert y.device.type == "cuda" and y.dtype == dtype
        assert _max_error(y.cpu(), pool(x.to(dtype))) <= tolerance
        y.square().sum().backward()
        assert xc.grad is not None and torch.isfinite(xc.grad).all()
