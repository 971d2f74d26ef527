"""Tests of ``neighbour_conv`` (NNhealpix) against healpy, called pixel by pixel.

The reference is a float64 loop written here: for every pixel it asks healpy for the
NESTED index (``xyf2pix``), the 8 neighbours (``get_all_neighbours``) and their face
coordinates (``pix2xyf``), and sums the filter over them with the stated policy at the
missing neighbours. The 90 degree turn is checked against healpy's pixel angles before it
is used to test equivariance.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch

from geoconv import build_op
from geoconv.errors import DTypeError, GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import healpix
from geoconv.ops import _healpix_graph as graph

DIRECTIONS = ("SW", "W", "NW", "N", "NE", "E", "SE", "S")
# The documented 3x3 stencil: rows di = -1, 0, 1; columns dj = -1, 0, 1.
STENCIL = (("S", "SW", "W"), ("SE", "C", "NW"), ("E", "NE", "N"))
CELL = {name: (r, c) for r, row in enumerate(STENCIL) for c, name in enumerate(row)}
TURN = np.array([1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8])  # face f goes to face TURN[f]


def turn(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Rotate a (B, C, 12, n, n) map by k * 90 degrees about +z: out[TURN[f]] = x[f]."""
    for _ in range(k % 4):
        out = torch.empty_like(x)
        out[:, :, TURN] = x
        x = out
    return x


def reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, missing: str) -> np.ndarray:
    """float64 loop over pixels, straight from healpy."""
    _, channels, _, n, _ = x.shape
    out = np.empty((x.shape[0], weight.shape[0], 12, n, n))
    for f in range(12):
        for i in range(n):
            for j in range(n):
                pixel = hp.xyf2pix(n, i, j, f, nest=True)
                neighbours = hp.get_all_neighbours(n, pixel, nest=True)
                values = {"C": x[:, :, f, i, j]}
                for name, nb in zip(DIRECTIONS, neighbours, strict=True):
                    if nb >= 0:
                        xi, yi, fi = hp.pix2xyf(n, nb, nest=True)
                        values[name] = x[:, :, fi, xi, yi]
                for t, name in enumerate(DIRECTIONS):
                    if name in values:
                        continue
                    if missing == "mean":  # the two directions on either side in the compass ring
                        values[name] = 0.5 * (values[DIRECTIONS[t - 1]] + values[DIRECTIONS[(t + 1) % 8]])
                    elif missing == "centre":
                        values[name] = values["C"]
                    else:
                        values[name] = np.zeros_like(values["C"])
                acc = np.broadcast_to(bias, (x.shape[0], weight.shape[0])).copy()
                for name, (r, c) in CELL.items():
                    acc += values[name] @ weight[:, :, r, c].T
                out[:, :, f, i, j] = acc
    assert channels == weight.shape[1]
    return out


def _op(cin: int, cout: int, seed: int = 0, **params) -> torch.nn.Module:
    torch.manual_seed(seed)
    op = build_op("neighbour_conv", cin, cout, grid="healpix", **params).double()
    with torch.no_grad():  # larger, asymmetric weights than the default init
        op.weight.normal_()
        if op.bias is not None:
            op.bias.normal_()
    return op


def _map(batch: int, channels: int, nside: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, 12, nside, nside, dtype=torch.float64, generator=generator)


# --------------------------------------------------------------------------- geometry


def test_stencil_layout_matches_healpy_offsets() -> None:
    # Away from face borders, each compass direction is a fixed in-face offset (di, dj).
    n = 8
    for f in range(12):
        for i in range(1, n - 1):
            for j in range(1, n - 1):
                nbs = hp.get_all_neighbours(n, hp.xyf2pix(n, i, j, f, nest=True), nest=True)
                xs, ys, fs = hp.pix2xyf(n, nbs, nest=True)
                assert (fs == f).all()
                for name, dx, dy in zip(DIRECTIONS, xs - i, ys - j, strict=True):
                    assert CELL[name] == (dx + 1, dy + 1), name
    assert tuple(3 * CELL[d][0] + CELL[d][1] for d in DIRECTIONS) == graph.HEALPY_TO_STENCIL


@pytest.mark.parametrize("nside", [1, 2, 4, 8])
def test_missing_neighbours_are_24_pixels(nside: int) -> None:
    table = graph.neighbour_table(nside)
    assert (table < 0).sum() == 24
    assert (table < 0).any(1).sum() == (12 if nside == 1 else 24)
    # Only the W, N, E, S stencil corners are ever missing.
    assert set(np.nonzero((table < 0).any(0))[0]) == {DIRECTIONS.index(d) for d in ("W", "N", "E", "S")}


def test_face_order_is_healpy_xyf() -> None:
    n = 4
    nest = graph.face_nest_index(n)
    x, y, f = hp.pix2xyf(n, nest, nest=True)
    q = np.arange(12 * n * n)
    np.testing.assert_array_equal(f, q // (n * n))
    np.testing.assert_array_equal(x, (q // n) % n)
    np.testing.assert_array_equal(y, q % n)
    # Not a reshape of NESTED: healpy interleaves the bits of x and y.
    assert not np.array_equal(nest, q)


@pytest.mark.parametrize("nside", [1, 2, 4])
def test_turn_is_the_rotation_about_z(nside: int) -> None:
    # Pixel (f, i, j) goes to (TURN[f], i, j): same colatitude, longitude + 90 degrees.
    f, i, j = (a.ravel() for a in np.meshgrid(np.arange(12), np.arange(nside), np.arange(nside), indexing="ij"))
    theta, phi = hp.pix2ang(nside, hp.xyf2pix(nside, i, j, f, nest=True), nest=True)
    theta2, phi2 = hp.pix2ang(nside, hp.xyf2pix(nside, i, j, TURN[f], nest=True), nest=True)
    np.testing.assert_allclose(theta2, theta, atol=1e-15)
    np.testing.assert_allclose(np.cos(phi2 - phi - np.pi / 2), 1.0, atol=1e-15)


def test_layout_and_turn_agree_with_the_healpix_grid() -> None:
    n = 4
    nest = torch.from_numpy(graph.face_nest_index(n).copy()).view(1, 1, 12, n, n)
    np.testing.assert_array_equal(healpix.faces_to_nest(nest).reshape(-1).numpy(), np.arange(12 * n * n))
    x = _map(1, 1, n)
    for k in range(4):
        assert torch.equal(healpix.GRID.quarter_turn(x, k), turn(x, k))


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("missing", ["mean", "centre", "zero"])
@pytest.mark.parametrize("nside", [1, 2, 4])
def test_matches_healpy_loop(nside: int, missing: str) -> None:
    op = _op(3, 2, missing=missing)
    x = _map(2, 3, nside)
    expected = reference(x.numpy(), op.weight.detach().numpy(), op.bias.detach().numpy(), missing)
    np.testing.assert_allclose(op(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_without_bias_matches_loop() -> None:
    op = _op(2, 3, bias=False)
    assert op.bias is None
    x = _map(1, 2, 2)
    expected = reference(x.numpy(), op.weight.detach().numpy(), np.zeros(3), "mean")
    np.testing.assert_allclose(op(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("missing", ["mean", "centre"])
def test_constant_map_gives_constant_output(missing: str) -> None:
    op = _op(2, 3, missing=missing)
    x = torch.full((1, 2, 12, 4, 4), 1.5, dtype=torch.float64)
    expected = op.bias + 1.5 * op.weight.sum((1, 2, 3))
    torch.testing.assert_close(op(x), expected.view(1, 3, 1, 1, 1).expand(1, 3, 12, 4, 4), rtol=1e-13, atol=1e-13)


def test_zero_policy_differs_only_at_the_24_pixels() -> None:
    op = _op(1, 1, missing="zero")
    y = op(torch.ones(1, 1, 12, 4, 4, dtype=torch.float64)).detach().reshape(-1)
    full = (op.bias + op.weight.sum()).item()
    changed = np.nonzero(np.abs(y.numpy() - full) > 1e-12)[0]
    np.testing.assert_array_equal(changed, np.nonzero((graph.neighbour_table(4) < 0).any(1))[0])


# --------------------------------------------------------------------------- symmetry


@pytest.mark.parametrize("missing", ["mean", "centre", "zero"])
@pytest.mark.parametrize("nside", [1, 2, 8])
def test_commutes_with_quarter_turn_for_any_weights(nside: int, missing: str) -> None:
    op = _op(3, 4, missing=missing)
    x = _map(2, 3, nside)
    y = op(x)
    for k in (1, 2, 3):
        torch.testing.assert_close(op(turn(x, k)), turn(y, k), rtol=0, atol=1e-12)


def test_equivariance_check_can_fail() -> None:
    # The same check with a map transform that is not a symmetry of the stencil (swapping i
    # and j on every face) does fail for generic weights: the test above has teeth.
    op = _op(2, 2)
    x = _map(1, 2, 4)
    swapped = op(x.transpose(-1, -2))
    assert (swapped - op(x).transpose(-1, -2)).abs().max() > 1e-3


@pytest.mark.parametrize("missing", ["mean", "centre", "zero"])
@pytest.mark.parametrize("nside", [1, 2, 8])
def test_fast_path_matches_the_tap_gather(nside: int, missing: str) -> None:
    # forward (healpix padding + conv2d + corner fix) against the literal 9-tap gather.
    op = _op(3, 2, missing=missing)
    x = _map(2, 3, nside)
    taps = op.taps(x)
    assert taps.shape == (2, 3, 9, 12 * nside * nside)
    expected = torch.einsum("ocs,bcsp->bop", op.weight.flatten(2), taps) + op.bias[:, None]
    torch.testing.assert_close(op(x), expected.view(2, 2, 12, nside, nside), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- autograd, dtypes


@pytest.mark.parametrize("missing", ["mean", "centre", "zero"])
def test_gradcheck(missing: str) -> None:
    # nside 1: every pixel has two missing corners, so the policy's backward is all over the map.
    op = _op(2, 2, missing=missing)
    x = _map(1, 2, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(op, (x,))
    op(x).square().sum().backward()
    assert op.weight.grad is not None and op.weight.grad.abs().sum() > 0
    assert op.bias.grad is not None and op.bias.grad.abs().sum() > 0


def test_float32_matches_float64() -> None:
    op = _op(3, 2)
    x = _map(2, 3, 4)
    y64 = op(x)
    y32 = op.float()(x.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 4, 4), (2, 3, 11, 4, 4), (2, 3, 12, 3, 3), (2, 3, 12, 4, 2), (2, 3, 12, 0, 0), (2, 3, 6, 4, 4)],
)
def test_rejects_non_healpix_layout(shape: tuple[int, ...]) -> None:
    op = build_op("neighbour_conv", 3, 2, grid="healpix")
    with pytest.raises(ShapeError, match=r"\(B, C, 12, n, n\)"):
        op(torch.randn(shape))


def test_rejects_wrong_channels_dtype_and_device_mismatch() -> None:
    op = build_op("neighbour_conv", 3, 2, grid="healpix")
    with pytest.raises(ShapeError, match=r"in_channels=3 channels in dim 1 of \(B, C, 12, n, n\)"):
        op(torch.randn(1, 4, 12, 2, 2))
    with pytest.raises(ShapeError, match="floating-point"):
        op(torch.ones(1, 3, 12, 2, 2, dtype=torch.int64))
    # A dtype mismatch is fixed by a cast, not a reshape: a DTypeError, not a ShapeError.
    with pytest.raises(DTypeError, match="x has dtype torch.float64 but the op's parameters are torch.float32") as info:
        op(torch.randn(1, 3, 12, 2, 2, dtype=torch.float64))
    assert not isinstance(info.value, ShapeError)


def test_rejects_bad_config_and_grid() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_op("neighbour_conv", 3, grid="healpix", missing="centr")
    assert "centre" in info.value.suggestions
    with pytest.raises(ParameterError, match="bias"):
        build_op("neighbour_conv", 3, grid="healpix", bias="yes")
    with pytest.raises(GeoconvError, match="healpix"):
        build_op("neighbour_conv", 3, grid="planar")


def test_gather_forward_is_the_forward() -> None:
    torch.manual_seed(0)
    op = build_op("neighbour_conv", 3, 5, grid="healpix").double()
    x = torch.randn(2, 3, 12, 4, 4, dtype=torch.float64)
    expected = torch.einsum("ocs,bcsp->bop", op.weight.flatten(2), op.taps(x)) + op.bias[:, None]
    torch.testing.assert_close(op.gather_forward(x), expected.reshape(2, 5, 12, 4, 4), rtol=0, atol=0)
    torch.testing.assert_close(op.gather_forward(x), op(x), rtol=1e-12, atol=1e-12)
