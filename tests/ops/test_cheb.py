"""Tests of ``cheb_conv`` (DeepSphere) against a dense numpy computation.

The reference builds the graph here, from healpy (``xyf2pix``, ``pix2vec``,
``get_all_neighbours``, ``pix2xyf``), as a dense matrix; forms the Laplacian, its largest
eigenvalue and the rescaled Laplacian densely; and evaluates the Chebyshev polynomials
through the eigendecomposition, :math:`T_k(\\tilde L) = U \\cos(k \\arccos \\Lambda) U^T`:
a route independent of the op's sparse three-term recursion. The edge weights'
kernel widths are computed here too: Defferrard et al. (2020)'s table (nside 32..1024)
extended by ``numpy.polyfit`` in log-log, or Perraudin et al. (2019)'s mean rule in its
original form ``exp(-d^2 / 2 rho^2)``.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch

from geoconv import build_op
from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.ops import _healpix_graph as graph

TURN = np.array([1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8])  # face f goes to face TURN[f] (see test_neighbour)


def turn(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    out[:, :, TURN] = x
    return out


# Defferrard et al. (2020), figures/kernel_widths.py, 8 neighbours: the chord at which w = 1/2.
HALF_WEIGHT_CHORD = {32: 0.02500, 64: 0.01228, 128: 0.00614, 256: 0.00307, 512: 0.00154, 1024: 0.00077}


def deepsphere2020_t(nside: int) -> float:
    if nside in HALF_WEIGHT_CHORD:
        sigma = HALF_WEIGHT_CHORD[nside]
    else:
        slope, intercept = np.polyfit(np.log(list(HALF_WEIGHT_CHORD)), np.log(list(HALF_WEIGHT_CHORD.values())), 1)
        sigma = np.exp(intercept + slope * np.log(nside))
    return sigma**2 / (4 * np.log(2))


def dense_laplacian(nside: int, kind: str, kernel_width: str | float = "deepsphere2020") -> np.ndarray:
    """The documented graph, densely, in face order q = f n^2 + i n + j."""
    n = nside
    npix = 12 * n * n
    f, i, j = (a.ravel() for a in np.meshgrid(np.arange(12), np.arange(n), np.arange(n), indexing="ij"))
    nest = hp.xyf2pix(n, i, j, f, nest=True)
    vectors = np.stack(hp.pix2vec(n, nest, nest=True), axis=-1)
    adjacency = np.zeros((npix, npix), dtype=bool)
    for q in range(npix):
        for nb in hp.get_all_neighbours(n, nest[q], nest=True):
            if nb >= 0:
                x, y, face = hp.pix2xyf(n, nb, nest=True)
                r = face * n * n + x * n + y
                adjacency[q, r] = adjacency[r, q] = True
    squared = np.sum((vectors[:, None, :] - vectors[None, :, :]) ** 2, axis=-1)
    if kernel_width == "mean":
        rho2 = squared[adjacency].mean()
        w = np.where(adjacency, np.exp(-squared / (2 * rho2)), 0.0)
    else:
        t = deepsphere2020_t(nside) if kernel_width == "deepsphere2020" else kernel_width
        w = np.where(adjacency, np.exp(-squared / (4 * t)), 0.0)
    degree = w.sum(1)
    if kind == "combinatorial":
        return np.diag(degree) - w
    scale = 1 / np.sqrt(degree)
    return np.eye(npix) - scale[:, None] * w * scale[None, :]


def dense_chebyshev(
    nside: int, kind: str, order: int, kernel_width: str | float = "deepsphere2020"
) -> tuple[list[np.ndarray], float]:
    """T_k(L~) for k < order by eigendecomposition, and lambda_max."""
    lap = dense_laplacian(nside, kind, kernel_width)
    lam = np.linalg.eigvalsh(lap)[-1]
    values, vectors = np.linalg.eigh(2 * lap / lam - np.eye(len(lap)))
    angles = np.arccos(np.clip(values, -1, 1))
    return [(vectors * np.cos(k * angles)) @ vectors.T for k in range(order)], lam


def _op(cin: int, cout: int, seed: int = 0, **params) -> torch.nn.Module:
    torch.manual_seed(seed)
    op = build_op("cheb_conv", cin, cout, grid="healpix", **params).double()
    with torch.no_grad():
        op.weight.normal_()
        if op.bias is not None:
            op.bias.normal_()
    return op


def _map(batch: int, channels: int, nside: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, 12, nside, nside, dtype=torch.float64, generator=generator)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("width", ["deepsphere2020", "mean", 0.05])
@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
@pytest.mark.parametrize(("nside", "order"), [(1, 3), (2, 1), (2, 5), (4, 4)])
def test_matches_dense_eigendecomposition(nside: int, order: int, kind: str, width: str | float) -> None:
    # All widths in one process and one cache: a key without the width would hand one the other's Laplacian.
    op = _op(3, 2, K=order, laplacian=kind, kernel_width=width)
    x = _map(2, 3, nside)
    polys, lam = dense_chebyshev(nside, kind, order, width)
    flat = x.reshape(2, 3, -1).numpy()
    theta = op.weight.detach().numpy()  # (C_out, C_in, K)
    expected = sum(np.einsum("oc,pq,bcq->bop", theta[:, :, k], polys[k], flat) for k in range(order))
    expected = expected + op.bias.detach().numpy()[:, None]
    y = op(x).detach().reshape(2, 2, -1).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    assert op.lambda_max(nside) == pytest.approx(lam, rel=1e-12)


def test_defaults_are_normalized_laplacian_and_deepsphere2020_widths() -> None:
    # build_op with no graph parameters is the normalized Laplacian of the 2020 widths, K = 3.
    op = _op(1, 1)
    x = _map(1, 1, 2)
    polys, _ = dense_chebyshev(2, "normalized", 3, "deepsphere2020")
    theta = op.weight.detach().numpy()[0, 0]
    expected = sum(theta[k] * polys[k] @ x.reshape(-1).numpy() for k in range(3)) + op.bias.item()
    np.testing.assert_allclose(op(x).detach().reshape(-1).numpy(), expected, rtol=1e-10, atol=1e-10)
    other, _ = dense_chebyshev(2, "combinatorial", 3, "mean")  # the defaults before: really different
    assert np.abs(polys[1] - other[1]).max() > 0.1


def test_order_one_is_a_pointwise_channel_mix() -> None:
    op = _op(3, 2, K=1)
    x = _map(2, 3, 4)
    expected = torch.einsum("oc,bcfij->bofij", op.weight[:, :, 0], x) + op.bias.view(1, 2, 1, 1, 1)
    torch.testing.assert_close(op(x), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_support_grows_one_hop_per_order(order: int) -> None:
    # An impulse reaches exactly the pixels within K - 1 hops of healpy's neighbour graph.
    nside, source = 4, 77
    op = _op(1, 1, K=order, bias=False)
    x = torch.zeros(1, 1, 12, nside, nside, dtype=torch.float64)
    x.view(-1)[source] = 1.0
    reached = op(x).detach().reshape(-1).abs().numpy() > 1e-14
    nest = graph.face_nest_index(nside)
    ring = {source}
    hops = {source}
    for _ in range(order - 1):
        ring = {
            int(face * nside * nside + xi * nside + yi)
            for q in ring
            for nb in hp.get_all_neighbours(nside, nest[q], nest=True)
            if nb >= 0
            for xi, yi, face in [hp.pix2xyf(nside, nb, nest=True)]
        } - hops
        hops |= ring
    np.testing.assert_array_equal(np.nonzero(reached)[0], sorted(hops))


# --------------------------------------------------------------------------- spectrum


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
@pytest.mark.parametrize("nside", [1, 2, 4])
def test_rescaled_spectrum_is_minus_one_to_one(nside: int, kind: str) -> None:
    matrix, _ = graph.rescaled_laplacian(nside, kind)
    values = np.linalg.eigvalsh(matrix.toarray())
    assert values[-1] == pytest.approx(1.0, abs=1e-12)
    assert values[0] >= -1 - 1e-12
    if kind == "combinatorial":
        assert values[0] == pytest.approx(-1.0, abs=1e-12)  # the constant: L 1 = 0
    np.testing.assert_allclose(matrix.toarray(), matrix.toarray().T, atol=0)


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_arpack_lambda_max_is_a_tight_upper_bound(kind: str) -> None:
    # The path used above nside 8, forced on a size where the dense value is cheap: the
    # estimate raised by 1% is above the true value and at most 1% (+ tolerance) over it.
    lap = graph.laplacian(4, kind)
    dense = np.linalg.eigvalsh(dense_laplacian(4, kind))[-1]
    estimate = graph.largest_eigenvalue(lap, dense=False)
    assert dense <= estimate <= 1.0101 * dense
    assert graph.largest_eigenvalue(lap, dense=True) == pytest.approx(dense, rel=1e-12)
    assert graph.largest_eigenvalue(lap, dense=False) == estimate  # a fixed start vector: reproducible


@pytest.mark.slow
def test_arpack_lambda_max_bounds_the_spectrum_at_nside_32() -> None:
    # Where the estimate is used by default: against a tight Lanczos solve (~1e-9).
    from scipy.sparse.linalg import eigsh

    lap = graph.laplacian(32, "combinatorial")
    tight = eigsh(lap, k=1, which="LA", tol=1e-9, return_eigenvectors=False)[0]
    _, used = graph.rescaled_laplacian(32)
    assert tight <= used <= 1.0101 * tight


def test_graph_has_healpy_degrees() -> None:
    # 8 neighbours everywhere except one missing corner at 24 pixels; symmetric; no self-loops.
    rows, cols, weights = graph.graph_edges(4)
    npix = 12 * 16
    degree = np.bincount(rows, minlength=npix)
    assert sorted(np.unique(degree)) == [7, 8] and (degree == 7).sum() == 24
    assert not (rows == cols).any()
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == set(zip(cols.tolist(), rows.tolist(), strict=True))
    assert weights.min() > 0 and weights.max() < 1


@pytest.mark.parametrize("width", ["deepsphere2020", "mean"])
@pytest.mark.parametrize("nside", [1, 4])
def test_constant_map_alternates_sign(nside: int, width: str) -> None:
    # Combinatorial L has L 1 = 0, so T_k(L~) 1 = T_k(-1) 1 = (-1)^k 1 (the normalized one does not: see below).
    op = _op(1, 5, K=5, bias=False, laplacian="combinatorial", kernel_width=width)
    with torch.no_grad():
        op.weight.copy_(torch.eye(5).view(5, 1, 5))  # output channel k = T_k(L~) x
    y = op(torch.full((1, 1, 12, nside, nside), 2.0, dtype=torch.float64))
    expected = 2.0 * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64).view(1, 5, 1, 1, 1)
    torch.testing.assert_close(y, expected.expand_as(y), rtol=1e-12, atol=1e-12)


def test_normalized_null_vector_is_sqrt_degree() -> None:
    rows, _, weights = graph.graph_edges(2)
    root_degree = torch.from_numpy(np.sqrt(np.bincount(rows, weights=weights)))
    op = _op(1, 3, K=3, bias=False, laplacian="normalized")
    with torch.no_grad():
        op.weight.copy_(torch.eye(3).view(3, 1, 3))
    y = op(root_degree.view(1, 1, 12, 2, 2)).detach().reshape(3, -1)
    torch.testing.assert_close(y, torch.stack([root_degree, -root_degree, root_degree]), rtol=1e-12, atol=1e-12)


def test_given_lambda_max_is_used() -> None:
    op = _op(1, 1, K=2, bias=False, lambda_max=2.0, laplacian="normalized")
    assert op.lambda_max(2) == 2.0
    x = _map(1, 1, 2)
    lap = dense_laplacian(2, "normalized")
    expected = op.weight[0, 0, 0].item() * x.reshape(-1).numpy() + op.weight[0, 0, 1].item() * (
        (lap - np.eye(48)) @ x.reshape(-1).numpy()
    )
    np.testing.assert_allclose(op(x).detach().reshape(-1).numpy(), expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- symmetry


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
@pytest.mark.parametrize("nside", [1, 2, 8])
def test_commutes_with_quarter_turn(nside: int, kind: str) -> None:
    op = _op(3, 4, K=4, laplacian=kind)
    x = _map(2, 3, nside)
    y = op(x)
    err = (op(turn(x)) - turn(y)).abs().max() / y.abs().max()
    assert err < 1e-13


# --------------------------------------------------------------------------- autograd, dtypes


def test_gradcheck() -> None:
    op = _op(2, 2, K=3)
    x = _map(1, 2, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(op, (x,))
    op(x).square().sum().backward()
    assert op.weight.grad is not None and op.weight.grad[:, :, 2].abs().sum() > 0


def test_float32_matches_float64() -> None:
    op = _op(3, 2, K=4)
    x = _map(2, 3, 4)
    y64 = op(x)
    y32 = op.float()(x.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "params",
    [
        {"K": 0},
        {"K": -2},
        {"K": 2.5},
        {"lambda_max": 0.0},
        {"lambda_max": -1},
        {"kernel_width": 0.0},
        {"kernel_width": -0.1},
        {"kernel_width": float("nan")},
        {"kernel_width": "Mean"},
        {"kernel_width": None},
    ],
)
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(ParameterError):
        build_op("cheb_conv", 2, grid="healpix", **params)


def test_rejects_unknown_laplacian_and_grid() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_op("cheb_conv", 2, grid="healpix", laplacian="normalised")
    assert "normalized" in info.value.suggestions
    with pytest.raises(GeoconvError, match="healpix"):
        build_op("cheb_conv", 2, grid="equirect")


@pytest.mark.parametrize("shape", [(1, 2, 48), (1, 2, 12, 3, 3), (1, 2, 12, 2, 4), (1, 2, 10, 2, 2)])
def test_rejects_non_healpix_layout(shape: tuple[int, ...]) -> None:
    op = build_op("cheb_conv", 2, grid="healpix")
    with pytest.raises(ShapeError, match=r"\(B, C, 12, n, n\)"):
        op(torch.randn(shape))


def test_rejects_wrong_channels() -> None:
    op = build_op("cheb_conv", 2, 3, grid="healpix")
    with pytest.raises(ShapeError, match="in_channels=2"):
        op(torch.randn(1, 3, 12, 2, 2))
