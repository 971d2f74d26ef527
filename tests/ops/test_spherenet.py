"""``sphere_conv``: SphereNet's tangent-plane kernels, against formulas written here.

References, all independent of :mod:`geoconv.ops.spherenet`:

- Snyder's inverse gnomonic projection (*Map Projections: A Working Manual*, USGS 1987,
  eqs. 20-14 and 20-15), in latitude and longitude, evaluated in float64;
- closed forms: the taps of the kernel's centre column lie on the centre's meridian (or, beyond
  a pole, on the far one) at ``arctan(a * step)`` from the centre; every tap lies at geodesic
  distance ``arctan(rho)`` and initial bearing ``atan2(x, y)`` from the centre;
- ``nn.Conv2d`` with circular padding at the equator, within a bound on bilinear interpolation
  derived below;
- a plain float64 loop over the sampling formula (bilinear, longitude wrap, rows across the poles);
- exact symmetries: longitude rolls by multiples of the stride, and the two mirror images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids.fields import BandLimitedField
from geoconv.ops.spherenet import SphereConv, SphereConvConfig, sampling_table, tap_positions


def _offsets(kernel_size: int) -> np.ndarray:
    return np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2


def _snyder(theta0: float, lon0: float, x: float, y: float) -> tuple[float, float]:
    """``(sin(latitude), longitude)`` of the tangent-plane point ``(x east, y north)`` at ``(theta0, lon0)``.

    Snyder's inverse gnomonic; the sine of the latitude is returned rather than its arcsine,
    which is ill-conditioned next to the poles.
    """
    phi0 = math.pi / 2 - theta0
    rho = math.hypot(x, y)
    if rho == 0.0:
        return math.sin(phi0), lon0
    c = math.atan(rho)
    sin_lat = math.cos(c) * math.sin(phi0) + y * math.sin(c) * math.cos(phi0) / rho
    lon = lon0 + math.atan2(x * math.sin(c), rho * math.cos(phi0) * math.cos(c) - y * math.sin(phi0) * math.sin(c))
    return sin_lat, lon


def _tap_points(height: int, width: int, k: int, stride: int, dilation: int, spacing: float = 1.0):
    """Every tap as ``(i', j', u, v, colatitude, longitude)``, from :func:`_snyder`, float64."""
    step = spacing * dilation * 2 * math.pi / width
    out_h, out_w = height // stride, width // stride
    for i in range(out_h):
        theta0 = (i + 0.5) * math.pi / out_h
        for j in range(out_w):
            lon0 = 2 * math.pi * j / out_w
            for u, a in enumerate(_offsets(k)):
                for v, b in enumerate(_offsets(k)):
                    sin_lat, lon = _snyder(theta0, lon0, b * step, -a * step)
                    yield i, j, u, v, math.acos(max(-1.0, min(1.0, sin_lat))), lon


def _bilinear(image: np.ndarray, colat: float, lon: float) -> np.ndarray:
    """``image`` ``(C, H, W)`` at a point, bilinearly, with the longitude wrap and the rows across the poles."""
    _, height, width = image.shape
    r = colat * height / math.pi - 0.5
    c = (lon % (2 * math.pi)) * width / (2 * math.pi)
    r0, c0 = math.floor(r), math.floor(c)
    value = np.zeros(image.shape[0])
    for row, wr in ((r0, 1 - (r - r0)), (r0 + 1, r - r0)):
        turn = 0
        if row < 0:  # across the north pole: colatitude -t is colatitude t half a turn away
            row, turn = -row - 1, width // 2
        elif row >= height:
            row, turn = 2 * height - 1 - row, width // 2
        for col, wc in ((c0, 1 - (c - c0)), (c0 + 1, c - c0)):
            value += wr * wc * image[:, row, (col + turn) % width]
    return value


def _reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    spacing: float = 1.0,
) -> torch.Tensor:
    """The op as a float64 loop: sample every tap with :func:`_bilinear`, multiply, sum."""
    batch, _, height, width = x.shape
    out_channels, per_group = weight.shape[:2]
    images, w = x.double().numpy(), weight.detach().double().numpy()
    y = np.zeros((batch, out_channels, height // stride, width // stride))
    for i, j, u, v, colat, lon in _tap_points(height, width, kernel_size, stride, dilation, spacing):
        for n in range(batch):
            sample = _bilinear(images[n], colat, lon)
            for o in range(out_channels):
                g = o // (out_channels // groups)
                y[n, o, i, j] += w[o, :, u, v] @ sample[g * per_group : (g + 1) * per_group]
    if bias is not None:
        y += bias.detach().double().numpy()[None, :, None, None]
    return torch.from_numpy(y)


def _random(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _build(in_channels: int, out_channels: int, seed: int = 0, **params: object) -> SphereConv:
    torch.manual_seed(seed)
    return geoconv.build_op("sphere_conv", in_channels, out_channels, grid="equirect", **params).double()


# -- tap positions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "k", "stride", "dilation", "spacing"),
    [(16, 32, 3, 1, 1, 1.0), (16, 32, 5, 1, 2, 1.0), (16, 32, 3, 2, 1, 1.0), (12, 40, 5, 2, 1, 0.7)],
)
def test_tap_positions_are_the_inverse_gnomonic_projection(height, width, k, stride, dilation, spacing) -> None:
    colat, lon = tap_positions(height, width, k, stride, dilation, spacing)
    out_h, out_w = height // stride, width // stride
    assert colat.shape == lon.shape == (out_h, out_w, k, k)
    # Both polar rows, the two rows around the equator, the seam (column 0) and its west neighbour.
    rows = {0, 1, out_h // 2 - 1, out_h // 2, out_h - 2, out_h - 1}
    cols = {0, 1, out_w // 2, out_w - 1}
    checked = 0
    for i, j, u, v, ref_colat, ref_lon in _tap_points(height, width, k, stride, dilation, spacing):
        if i not in rows or j not in cols:
            continue
        # Compared as cos(colatitude) and east-west distance: well conditioned next to the poles too.
        assert abs(math.cos(colat[i, j, u, v]) - math.cos(ref_colat)) < 1e-13
        turn = (lon[i, j, u, v] - ref_lon + math.pi) % (2 * math.pi) - math.pi
        assert abs(turn) * math.sin(ref_colat) < 1e-13, (i, j, u, v)
        assert 0 <= lon[i, j, u, v] < 2 * math.pi and 0 <= colat[i, j, u, v] <= math.pi
        checked += 1
    assert checked == len(rows) * len(cols) * k * k


def test_the_centre_column_crosses_the_poles_onto_the_far_meridian() -> None:
    # Taps (u, centre) lie on the great circle through the pole: at colatitude theta0 + atan(a * step)
    # (a < 0 northwards); beyond the pole at its absolute value, on the meridian lon0 + pi.
    height, width, k = 8, 16, 5
    step = 2 * math.pi / width
    colat, lon = tap_positions(height, width, k, dilation=1)
    crossed = 0
    for i in (0, 1, height - 2, height - 1):
        theta0 = (i + 0.5) * math.pi / height
        for j in (0, 5):
            lon0 = 2 * math.pi * j / width
            for u, a in enumerate(_offsets(k)):
                t = theta0 + math.atan(a * step)
                beyond = t < 0 or t > math.pi
                expected_colat = -t if t < 0 else (2 * math.pi - t if t > math.pi else t)
                expected_lon = (lon0 + (math.pi if beyond else 0.0)) % (2 * math.pi)
                assert colat[i, j, u, k // 2] == pytest.approx(expected_colat, abs=1e-13)
                assert lon[i, j, u, k // 2] == pytest.approx(expected_lon, abs=1e-12)
                crossed += beyond
    # Exercised: per pole and column, taps a = -1, -2 of the polar row and a = -2 of the next (mirrored south).
    assert crossed == 12


@pytest.mark.parametrize(("k", "dilation", "spacing"), [(5, 1, 1.0), (3, 2, 1.0), (7, 1, 1.5)])
def test_near_the_poles_every_tap_is_at_its_nominal_distance_and_bearing(k: int, dilation: int, spacing: float) -> None:
    height, width = 16, 32
    step = spacing * dilation * 2 * math.pi / width
    colat, lon = tap_positions(height, width, k, 1, dilation, spacing)
    for i in (0, 1, 2, height - 3, height - 2, height - 1):
        t0 = (i + 0.5) * math.pi / height
        for j in (0, 7, width - 1):
            l0 = 2 * math.pi * j / width
            for u, a in enumerate(_offsets(k)):
                for v, b in enumerate(_offsets(k)):
                    t1, l1 = colat[i, j, u, v], lon[i, j, u, v]
                    # Haversine distance and initial bearing (from north, clockwise), in colatitudes.
                    h = math.sin((t1 - t0) / 2) ** 2 + math.sin(t0) * math.sin(t1) * math.sin((l1 - l0) / 2) ** 2
                    distance = 2 * math.asin(math.sqrt(h))
                    assert distance == pytest.approx(math.atan(step * math.hypot(a, b)), abs=1e-12)
                    if a == b == 0:
                        continue
                    bearing = math.atan2(
                        math.sin(l1 - l0) * math.sin(t1),
                        math.sin(t0) * math.cos(t1) - math.cos(t0) * math.sin(t1) * math.cos(l1 - l0),
                    )
                    turn = (bearing - math.atan2(b, -a) + math.pi) % (2 * math.pi) - math.pi
                    assert abs(turn) < 1e-10, (i, j, u, v, bearing)


# -- values --------------------------------------------------------------------------------------------


def test_at_the_equator_it_is_a_circularly_padded_conv2d_within_the_interpolation_bound() -> None:
    height, width = 32, 64  # W = 2H: one equatorial pixel is one row, pi / H
    field = BandLimitedField.random(6, channels=3, generator=torch.Generator().manual_seed(0))
    x = field.sample("equirect", height)  # (1, 3, 32, 64), float64
    torch.manual_seed(0)
    planar = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", dtype=torch.float64)
    op = _build(3, 4)
    op.load_state_dict(planar.state_dict())
    rows = [height // 2 - 1, height // 2]  # the rows next to the equator; no tap reaches a pole
    got = op(x)[..., rows, :]
    expected = planar(x)[..., rows, :]
    # The bound. Tap (u, v) of output (i, j) samples the bilinear interpolant I of x at pixel
    # coordinates (i + a + dr, j + b + dc), where nn.Conv2d reads x at (i + a, j + b) = I there.
    # Along a column I is linear in the row between pixels, and along a row piecewise linear in the
    # column, so |I(tap) - x(i + a, j + b)| <= Dr |dr| + Dc |dc| with Dr, Dc the largest differences of
    # neighbouring pixels along columns and rows. dr, dc come from Snyder's formulas above.
    dr = np.zeros((2, 3, 3))
    dc = np.zeros((2, 3, 3))
    for i, j, u, v, colat, lon in _tap_points(height, width, 3, 1, 1):
        if i in rows and j == 0:  # the offsets are the same in every column of a row
            a, b = u - 1, v - 1
            dr[rows.index(i), u, v] = colat * height / math.pi - 0.5 - (i + a)
            dc[rows.index(i), u, v] = ((lon + math.pi) % (2 * math.pi) - math.pi) * width / (2 * math.pi) - b
    xs = x[0].numpy()
    d_row = np.abs(np.diff(xs, axis=1)).max(axis=(1, 2))  # (C,)
    d_col = np.abs(xs - np.roll(xs, 1, axis=2)).max(axis=(1, 2))
    w = np.abs(planar.weight.detach().numpy())  # (O, C, 3, 3)
    bound = np.einsum("ocuv,c,ruv->or", w, d_row, np.abs(dr)) + np.einsum("ocuv,c,ruv->or", w, d_col, np.abs(dc))
    error = (got - expected).abs().amax(dim=-1)[0].detach().numpy()  # (O, rows)
    assert (error <= bound + 1e-12).all(), (error, bound)
    # The bound is tight enough to mean something: with the kernel flipped east-west (the commonest
    # convention slip) the output misses by far more than it allows, on this very field.
    flipped = nn.functional.conv2d(
        nn.functional.pad(x, (1, 1, 1, 1), mode="circular"), planar.weight.flip(-1), planar.bias
    )
    slip = (flipped[..., rows, :] - expected).abs().amax(dim=-1)[0].detach().numpy()
    assert (slip > 5 * bound).all(), (slip, bound)  # measured: slip / bound >= 12, error / bound <= 0.27
    assert np.abs(dr).max() < 0.02 and np.abs(dc).max() < 0.02  # the tap grid is nearly the pixel grid there


@pytest.mark.parametrize(
    ("height", "width", "params"),
    [
        (4, 8, {}),
        (6, 12, {"stride": 2}),
        (6, 12, {"dilation": 2}),
        (4, 10, {"kernel_size": 5, "spacing": 0.8}),
        (8, 8, {"stride": 2, "dilation": 2, "groups": 2, "bias": False}),
        (6, 12, {"stride": 3, "kernel_size": 1}),
    ],
)
def test_values_match_a_float64_loop_over_the_sampling_formula(height: int, width: int, params: dict) -> None:
    # Tiny images: every output row is next to a pole, so most taps interpolate across one.
    op = _build(4, 6, **params)
    x = _random((2, 4, height, width))
    stride = params.get("stride", 1)
    y = op(x)
    assert y.shape == (2, 6, height // stride, width // stride)
    loop = {name: value for name, value in params.items() if name != "bias"}
    torch.testing.assert_close(y, _reference(x, op.weight, op.bias, **loop), rtol=0, atol=1e-12)


def test_taps_are_what_the_weight_multiplies() -> None:
    op = _build(2, 3, kernel_size=3, stride=2)
    x = _random((1, 2, 8, 16), seed=4)
    taps = op.taps(x)  # (B, C, k, k, H', W')
    assert taps.shape == (1, 2, 3, 3, 4, 8)
    for i, j, u, v, colat, lon in _tap_points(8, 16, 3, 2, 1):
        np.testing.assert_allclose(taps[0, :, u, v, i, j].numpy(), _bilinear(x[0].numpy(), colat, lon), atol=1e-13)
    direct = torch.einsum("ocuv,bcuvhw->bohw", op.weight, taps) + op.bias[:, None, None]
    torch.testing.assert_close(op(x), direct, rtol=0, atol=1e-13)


# -- exact symmetries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("params", "shifts"), [({}, (1, 5, -3, 8)), ({"stride": 2, "kernel_size": 5}, (1, 3, -2))])
def test_commutes_with_longitude_rolls_by_whole_output_pixels(params: dict, shifts: tuple, dtype) -> None:
    op = _build(3, 4, **params).to(dtype)
    x = _random((2, 3, 8, 16), seed=1).to(dtype)
    y = op(x)
    stride = params.get("stride", 1)
    for m in shifts:
        rolled = op(torch.roll(x, stride * m, dims=-1))
        # The same weights read the same values in the same order (measured: bitwise equal).
        torch.testing.assert_close(
            rolled, torch.roll(y, m, dims=-1), rtol=0, atol=1e-14 if dtype == torch.float64 else 1e-6
        )


def test_commutes_with_the_two_mirror_images() -> None:
    # Longitude -> -longitude (column j -> -j mod W) with the kernel flipped east-west, and
    # colatitude -> pi - colatitude (row i -> H-1-i) with it flipped north-south: both map the
    # grid, the tangent planes and the pole rules onto themselves.
    op = _build(3, 4, kernel_size=5)
    x = _random((1, 3, 8, 16), seed=2)
    y = op(x)

    def east_west(t: torch.Tensor) -> torch.Tensor:
        return torch.roll(t.flip(-1), 1, dims=-1)

    mirrored = _build(3, 4, kernel_size=5)
    with torch.no_grad():
        mirrored.weight.copy_(op.weight.flip(-1))
    torch.testing.assert_close(mirrored(east_west(x)), east_west(y), rtol=0, atol=1e-12)
    with torch.no_grad():
        mirrored.weight.copy_(op.weight.flip(-2))
    torch.testing.assert_close(mirrored(x.flip(-2)), y.flip(-2), rtol=0, atol=1e-12)


# -- weights, strides, gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"groups": 2, "bias": False}, {"kernel_size": 5, "dilation": 2}])
def test_planar_weights_load_from_nn_conv2d(params: dict) -> None:
    torch.manual_seed(3)
    k = params.get("kernel_size", 3)
    planar = nn.Conv2d(4, 6, k, groups=params.get("groups", 1), bias=params.get("bias", True), dtype=torch.float64)
    op = _build(4, 6, **params)
    assert op.weight.shape == planar.weight.shape
    op.load_state_dict(planar.state_dict())  # strict: the same keys and shapes
    x = _random((1, 4, 6, 12), seed=5)
    loop = {name: value for name, value in params.items() if name != "bias"}
    torch.testing.assert_close(op(x), _reference(x, planar.weight, planar.bias, **loop), rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [{}, {"stride": 2, "groups": 2}, {"dilation": 2, "kernel_size": 1}])
def test_gradcheck(params: dict) -> None:
    op = _build(2, 2, **params)
    x = _random((1, 2, 4, 8), seed=6).requires_grad_(True)
    weight = op.weight.detach().clone().requires_grad_(True)
    bias = op.bias.detach().clone().requires_grad_(True)

    def run(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(op, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(run, (x, weight, bias))
    # The backward is the adjoint gather, itself differentiable: second order too.
    assert torch.autograd.gradgradcheck(lambda t: op(t), (x,))


def _dense(index: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor, columns: int) -> torch.Tensor:
    """The sparse rows (CSR without the final offset) as a dense matrix."""
    counts = torch.diff(offsets, append=torch.tensor([index.numel()]))
    rows = torch.repeat_interleave(torch.arange(offsets.numel()), counts)
    return torch.zeros(offsets.numel(), columns, dtype=weight.dtype).index_put_((rows, index), weight, accumulate=True)


def test_the_sampling_table_is_built_once_and_holds_the_matrix_and_its_transpose() -> None:
    first = sampling_table(8, 16, 3, 1, 1, 1.0, torch.float64)
    assert sampling_table(8, 16, 3, 1, 1, 1.0, torch.float64) is first
    other = sampling_table(8, 16, 3, 1, 1, 1.0, torch.float32)
    assert other is not first and other.weight.dtype == torch.float32
    matrix = _dense(first.index, first.offsets, first.weight, 8 * 16)  # (k^2 H W, H W)
    assert matrix.shape == (9 * 8 * 16, 8 * 16)
    torch.testing.assert_close(matrix.sum(1), torch.ones(9 * 8 * 16, dtype=torch.float64), rtol=0, atol=1e-15)
    adjoint = _dense(first.adjoint_index, first.adjoint_offsets, first.adjoint_weight, 9 * 8 * 16)
    assert torch.equal(adjoint, matrix.T)
    # Row m = (i W + j) k^2 + u k + v reads around tap (u, v) of pixel (i, j): the centre tap reads the pixel.
    centre = torch.arange(8 * 16) * 9 + 4
    assert torch.equal(matrix[centre], torch.eye(8 * 16, dtype=torch.float64))


# -- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["planar", "cubemap", "healpix"])
def test_another_grid_is_refused_naming_equirect_and_the_grid(grid: str) -> None:
    assert geoconv.get_op("sphere_conv").grids == ("equirect",)
    with pytest.raises(GeoconvError, match="sphere_conv") as info:
        geoconv.build_op("sphere_conv", 2, grid=grid)
    assert "'equirect'" in str(info.value) and repr(grid) in str(info.value)
    with pytest.raises(ParameterError, match=rf"grid 'equirect' only.*got grid='{grid}'"):
        SphereConv(2, 2, grid=grid)


@pytest.mark.parametrize(
    ("shape", "params", "match"),
    [
        ((1, 2, 5, 10), {"stride": 2}, r"stride=2 needs H and W divisible by 2.*\(1, 2, 5, 10\).*H=5"),
        ((1, 2, 6, 8), {"stride": 3}, r"stride=3 needs H and W divisible by 3.*\(1, 2, 6, 8\).*W=8"),
        ((1, 2, 2, 6), {"stride": 2}, r"output faces 1x3.*even width.*stride=2"),
        ((2, 8, 16), {}, r"\(B, C, H, W\).*\(2, 8, 16\)"),
        ((1, 2, 6, 4, 4), {}, r"\(1, 2, 6, 4, 4\)"),
        ((1, 3, 8, 16), {}, r"in_channels=2.*\(1, 3, 8, 16\)"),
        ((1, 2, 8, 15), {}, r"even width.*\(1, 2, 8, 15\)"),
    ],
)
def test_bad_input_is_refused_naming_expected_and_got(shape: tuple, params: dict, match: str) -> None:
    op = _build(2, 2, **params)
    with pytest.raises(ShapeError, match=match):
        op(torch.zeros(shape, dtype=torch.float64))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"kernel_size": 4}, r"kernel_size of sphere_conv must be odd.*got kernel_size=4"),
        ({"kernel_size": 0}, r"kernel_size must be an integer >= 1, got 0"),
        ({"stride": 0}, r"stride must be an integer >= 1, got 0"),
        ({"dilation": -1}, r"dilation must be an integer >= 1, got -1"),
        ({"groups": 0}, r"groups must be an integer >= 1, got 0"),
        ({"groups": 3}, r"in_channels=2 must be divisible by groups=3"),
        ({"spacing": 0.0}, r"spacing must be > 0, got 0.0"),
        ({"spacing": -1.5}, r"spacing must be > 0, got -1.5"),
        ({"spacing": math.inf}, r"spacing must be a finite number > 0, got inf"),
        ({"spacing": math.nan}, r"spacing must be > 0, got nan"),
        ({"bias": "yes"}, r"bias"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        geoconv.build_op("sphere_conv", 2, 2, grid="equirect", **params)


def test_config_and_table_helpers_check_their_arguments() -> None:
    with pytest.raises(ParameterError, match="kernel_size of sphere_conv must be odd"):
        SphereConvConfig(kernel_size=2)
    with pytest.raises(ShapeError, match=r"stride=2.*got \(H, W\)=\(5, 10\)"):
        tap_positions(5, 10, stride=2)
    with pytest.raises(ShapeError, match=r"W/1 even, got \(H, W\)=\(4, 7\)"):
        sampling_table(4, 7)
    with pytest.raises(ParameterError, match=r"floating-point torch.dtype, got torch.int64"):
        sampling_table(4, 8, dtype=torch.int64)
    with pytest.raises(ParameterError, match="no one planar kernel"):
        _build(1, 1).layers()
