"""upsample and downsample against F.interpolate and against closed forms that need no interpolation code."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError


def _ramp(height: int, width: int, a: float = 0.75, b: float = -1.25, c: float = 0.5) -> torch.Tensor:
    rows = torch.arange(height, dtype=torch.float64).view(-1, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, -1)
    return (a * rows + b * cols + c).expand(1, 1, height, width).clone()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["bilinear", "nearest", "bicubic"]),
    st.tuples(st.sampled_from([1.0, 1.5, 2.0, 3.0, 2.5]), st.sampled_from([1.0, 2.0, 1.75])),
    st.booleans(),
    st.tuples(st.integers(1, 7), st.integers(1, 7)),
)
def test_upsample_by_factor_matches_interpolate(mode, factor, align_corners, size) -> None:
    align_corners = align_corners and mode != "nearest"
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    op = geoconv.build_op("upsample", 3, grid="planar", scale_factor=factor, mode=mode, align_corners=align_corners)
    corners = align_corners if mode != "nearest" else None
    expected = F.interpolate(x, scale_factor=factor, mode=mode, align_corners=corners)
    y = op(x)
    assert y.shape[-2:] == tuple(math.floor(n * f) for n, f in zip(size, factor, strict=True))
    assert torch.equal(y, expected)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["bilinear", "nearest", "bicubic", "area"]),
    st.sampled_from([0.5, 0.25, 1.0, (0.5, 1.0), (1 / 3, 0.75)]),
    st.booleans(),
    st.booleans(),
    st.tuples(st.integers(4, 12), st.integers(4, 12)),
)
def test_downsample_by_factor_matches_interpolate(mode, factor, align_corners, antialias, size) -> None:
    interpolating = mode in ("bilinear", "bicubic")
    align_corners, antialias = align_corners and interpolating, antialias and interpolating
    x = torch.randn(1, 2, *size, dtype=torch.float64)
    op = geoconv.build_op(
        "downsample", 2, scale_factor=factor, mode=mode, align_corners=align_corners, antialias=antialias
    )
    kwargs = {"align_corners": align_corners, "antialias": antialias} if interpolating else {}
    expected = F.interpolate(x, scale_factor=factor, mode=mode, **kwargs)
    torch.testing.assert_close(op(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "mode", "size"),
    [
        ("upsample", "bilinear", (9, 13)),
        ("upsample", "nearest", (5, 8)),
        ("upsample", "bicubic", (12, 6)),
        ("downsample", "bilinear", (3, 5)),
        ("downsample", "area", (4, 2)),
        ("downsample", "nearest", (5, 6)),
    ],
)
def test_resample_to_size_matches_interpolate(name, mode, size) -> None:
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    y = geoconv.build_op(name, 4, size=size, mode=mode)(x)
    expected = F.interpolate(x, size=size, mode=mode, align_corners=False if mode in ("bilinear", "bicubic") else None)
    assert y.shape == (2, 4, *size)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


def test_size_overrides_the_factor() -> None:
    x = torch.randn(1, 1, 4, 4)
    assert geoconv.build_op("upsample", 1, scale_factor=3.0, size=(6, 5))(x).shape == (1, 1, 6, 5)
    assert geoconv.build_op("downsample", 1, scale_factor=0.25, size=3)(x).shape == (1, 1, 3, 3)


def test_nearest_times_two_is_repeat_interleave() -> None:
    x = torch.randn(2, 3, 5, 4)
    y = geoconv.build_op("upsample", 3, mode="nearest")(x)
    assert torch.equal(y, x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1))
    y = geoconv.build_op("upsample", 3, mode="nearest", scale_factor=(3, 1))(x)
    assert torch.equal(y, x.repeat_interleave(3, dim=-2))


def test_downsample_by_half_closed_forms() -> None:
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    blocks = x.reshape(2, 3, 4, 2, 3, 2).mean(dim=(3, 5))
    # nearest picks the top-left pixel of each 2x2 block; bilinear and area average it.
    assert torch.equal(geoconv.build_op("downsample", 3, mode="nearest")(x), x[..., ::2, ::2])
    torch.testing.assert_close(geoconv.build_op("downsample", 3)(x), blocks, rtol=0, atol=1e-12)
    torch.testing.assert_close(geoconv.build_op("downsample", 3, mode="area")(x), blocks, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("factor", "height", "width"), [(2.0, 5, 7), (3.0, 4, 4), (4.0, 3, 6)])
def test_bilinear_upsampling_of_a_ramp_is_exact_in_the_interior(factor, height, width) -> None:
    x = _ramp(height, width)
    y = geoconv.build_op("upsample", 1, scale_factor=factor)(x)
    out_h, out_w = y.shape[-2:]
    # Output pixel i samples the input at u = (i + 1/2) / f - 1/2; inside [0, n - 1] the
    # bilinear interpolant of a linear function is that function.
    u = (torch.arange(out_h, dtype=torch.float64) + 0.5) / factor - 0.5
    v = (torch.arange(out_w, dtype=torch.float64) + 0.5) / factor - 0.5
    expected = (0.75 * u.view(-1, 1) - 1.25 * v.view(1, -1) + 0.5)[None, None]
    rows = (u >= 0) & (u <= height - 1)
    cols = (v >= 0) & (v <= width - 1)
    assert rows.sum() >= out_h - factor and cols.sum() >= out_w - factor
    interior = rows.view(-1, 1) & cols.view(1, -1)
    torch.testing.assert_close(y[0, 0][interior], expected[0, 0][interior], rtol=0, atol=1e-12)
    # With align_corners the corners match and the ramp is exact everywhere.
    y = geoconv.build_op("upsample", 1, scale_factor=factor, align_corners=True)(x)
    u = torch.arange(out_h, dtype=torch.float64) * (height - 1) / max(out_h - 1, 1)
    v = torch.arange(out_w, dtype=torch.float64) * (width - 1) / max(out_w - 1, 1)
    torch.testing.assert_close(y[0, 0], 0.75 * u.view(-1, 1) - 1.25 * v.view(1, -1) + 0.5, rtol=0, atol=1e-12)


def test_gradients_flow_and_float32_is_kept() -> None:
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    y = geoconv.build_op("downsample", 2, mode="bicubic", antialias=True)(x)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "error", "match"),
    [
        ("upsample", {"scale_factor": 0.5}, ParameterError, r"upsample never shrinks: scale_factor must be >= 1"),
        ("upsample", {"scale_factor": (2.0, 0.9)}, ParameterError, r"upsample never shrinks"),
        ("downsample", {"scale_factor": 2}, ParameterError, r"downsample never grows: scale_factor must be <= 1"),
        ("upsample", {"scale_factor": 0}, ParameterError, r"scale_factor must be > 0, got 0.0"),
        ("downsample", {"scale_factor": -0.5}, ParameterError, r"scale_factor must be > 0"),
        ("upsample", {"scale_factor": "2"}, ParameterError, r"upsample.scale_factor must be of type float"),
        ("upsample", {"size": 0}, ParameterError, r"size must be an integer >= 1, got 0"),
        ("upsample", {"size": (4, -2)}, ParameterError, r"size\[1\] must be an integer >= 1"),
        ("upsample", {"mode": "bilnear"}, UnknownNameError, r"unknown mode: 'bilnear'; did you mean 'bilinear'"),
        ("upsample", {"mode": "area"}, UnknownNameError, r"unknown mode: 'area'.*Valid choices: 'bicubic'"),
        ("downsample", {"mode": "aera"}, UnknownNameError, r"unknown mode: 'aera'; did you mean 'area'"),
        ("upsample", {"mode": "nearest", "align_corners": True}, ParameterError, r"align_corners=True applies"),
        ("downsample", {"mode": "area", "antialias": True}, ParameterError, r"antialias=True applies"),
        ("upsample", {"antialias": True}, UnknownNameError, r"unknown parameter of op 'upsample'"),
        ("downsample", {"scale": 0.5}, UnknownNameError, r"did you mean 'scale_factor'"),
    ],
)
def test_bad_parameters_name_the_culprit(name, params, error, match) -> None:
    with pytest.raises(error, match=match):
        geoconv.build_op(name, 2, **params)


@pytest.mark.parametrize("name", ["upsample", "downsample"])
def test_bad_inputs(name) -> None:
    op = geoconv.build_op(name, 3)
    with pytest.raises(ShapeError, match=r"x must have shape \(B, C, H, W\).*got a 3-D tensor"):
        op(torch.randn(3, 4, 4))
    with pytest.raises(ShapeError, match=rf"{name}: x must have in_channels=3 channels.*got shape \(1, 1, 4, 4\)"):
        op(torch.randn(1, 1, 4, 4))
    with pytest.raises(ShapeError, match=rf"{name}: x must have a floating-point dtype"):
        op(torch.ones(1, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ParameterError, match=r"out_channels must equal in_channels \(3\)"):
        geoconv.build_op(name, 3, 6)


def test_size_must_respect_the_direction() -> None:
    x = torch.randn(1, 1, 6, 6)
    with pytest.raises(ShapeError, match=r"upsample never shrinks: size=\(4, 8\) is smaller than .*\(6, 6\)"):
        geoconv.build_op("upsample", 1, size=(4, 8))(x)
    with pytest.raises(ShapeError, match=r"downsample never grows: size=\(7, 3\) is larger"):
        geoconv.build_op("downsample", 1, size=(7, 3))(x)
    with pytest.raises(ShapeError, match=r"scale_factor=\(0.1, 0.1\) turns x of shape \(1, 1, 6, 6\) into an empty"):
        geoconv.build_op("downsample", 1, scale_factor=0.1)(x)


def test_every_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        geoconv.build_op("downsample", 1, scale_factor=3.0)
    assert issubclass(GeoconvError, ValueError)
