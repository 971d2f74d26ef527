"""Bad input to ``conv`` (and the checks every op shares): each a ``GeoconvError`` that says what to do.

The layout a message names is the grid's (``(B, C, 12, n, n)`` on HEALPix), and a dtype
other than the op's parameters' is a :class:`~geoconv.errors.DTypeError`, which a cast
fixes, not a :class:`~geoconv.errors.ShapeError`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geoconv import build_op
from geoconv.errors import DTypeError, GeoconvError, ShapeError
from geoconv.grids import get_grid

# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(kernel_size=0), "kernel_size"),
        (dict(kernel_size=-2), "kernel_size"),
        (dict(kernel_size=(3, 0)), r"kernel_size\[1\]"),
        (dict(stride=0), "stride"),
        (dict(stride=(-1, 1)), r"stride\[0\]"),
        (dict(dilation=0), "dilation"),
        (dict(groups=0), "groups"),
        (dict(groups=2), "in_channels=3 must be divisible by groups=2"),
        (dict(padding=-1), "padding"),
        (dict(padding=(1, 2, 3)), "padding"),
        (dict(padding="full"), "padding"),
        (dict(padding_mode="reflection"), "did you mean 'reflect'"),
        (dict(padding_mode="wrap"), "padding_mode"),
        (dict(kernel=3), "did you mean 'kernel_size'"),
        (dict(stride="2"), "stride"),
        (dict(kernel_size=True), "kernel_size"),
        (dict(kernel_size=3.0), "kernel_size"),
        (dict(bias="yes"), "bias"),
        (dict(value="1"), "value"),
    ],
)
def test_bad_config_raises(params, match):
    with pytest.raises(GeoconvError, match=match):
        build_op("conv", 3, 6, grid="planar", **params)


def test_out_channels_not_divisible_by_groups():
    with pytest.raises(GeoconvError, match="out_channels=5 must be divisible by groups=2"):
        build_op("conv", 4, 5, groups=2)


@pytest.mark.parametrize(
    ("params", "x", "match"),
    [
        (dict(kernel_size=5, padding="valid"), torch.zeros(1, 3, 4, 8), "kernel"),
        (dict(kernel_size=(1, 3), dilation=3, padding=0), torch.zeros(1, 3, 4, 6), "width"),
        (dict(kernel_size=5, padding_mode="reflect"), torch.zeros(1, 3, 2, 8), "reflect"),
        (dict(kernel_size=3, padding=(3, 0), padding_mode="reflect"), torch.zeros(1, 3, 3, 8), "reflect"),
        (dict(kernel_size=7, padding_mode="circular"), torch.zeros(1, 3, 2, 2), "circular"),
        (dict(), torch.zeros(3, 8, 8), r"\(B, C, H, W\)"),
        (dict(), torch.zeros(1, 1, 3, 8, 8), r"\(B, C, H, W\)"),
        (dict(), torch.zeros(1, 2, 8, 8), "in_channels=3"),
        (dict(), torch.zeros(1, 3, 0, 8), "H"),
        (dict(), torch.zeros(1, 3, 8, 8, dtype=torch.float64), "dtype"),
        (dict(), torch.zeros(1, 3, 8, 8, dtype=torch.long), "floating-point"),
        (dict(), [[1.0]], "torch.Tensor"),
    ],
)
def test_bad_input_raises(params, x, match):
    op = build_op("conv", 3, 6, **params)
    with pytest.raises(GeoconvError, match=match):
        op(x)


def test_mixed_dtypes_are_left_to_autocast():
    # The dtype check must not break mixed precision: under autocast torch casts itself.
    op = build_op("conv", 2, 3)
    x = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(7)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = op(x)
    assert y.dtype == torch.bfloat16
    expected = F.conv2d(x.float(), op.weight, op.bias, padding=1)
    torch.testing.assert_close(y.float(), expected.detach(), rtol=0.05, atol=0.05)


def test_errors_are_value_errors():
    with pytest.raises(ValueError, match="stride"):
        build_op("conv", 3, 3, stride=0)


@pytest.mark.parametrize("name", ["conv", "gated_conv", "max_pool", "avg_pool", "blur_pool"])
def test_fill_value_without_constant_mode_is_refused(name: str) -> None:
    with pytest.raises(GeoconvError, match=r"value=1.5 is the fill of padding_mode='constant'.*'reflect'"):
        build_op(name, 2, 2, padding_mode="reflect", value=1.5)
    assert build_op(name, 2, 2, padding_mode="constant", value=1.5) is not None


# --------------------------------------------------------------------------- the grid's layout, dtypes (bug e)


@pytest.mark.parametrize(
    ("name", "grid", "layout"),
    [
        ("conv", "healpix", r"\(B, C, 12, n, n\)"),
        ("conv", "cubemap", r"\(B, C, 6, F, F\)"),
        ("conv_transpose", "healpix", r"\(B, C, 12, n, n\)"),
        ("max_pool", "cubemap", r"\(B, C, 6, F, F\)"),
        ("blur_pool", "healpix", r"\(B, C, 12, n, n\)"),
        ("upsample", "healpix", r"\(B, C, 12, n, n\)"),
        ("cheb_conv", "healpix", r"\(B, C, 12, n, n\)"),
        ("spectral_conv", "equirect", r"\(B, C, H, W\)"),
    ],
)
def test_a_wrong_channel_count_names_the_grids_layout(name: str, grid: str, layout: str) -> None:
    # Was "(B, C, H, W)" on every grid.
    op = build_op(name, 3, grid=grid)
    x = torch.zeros(get_grid(grid).shape(1, 2, 4))
    with pytest.raises(ShapeError, match=rf"{name}: x must have in_channels=3 channels in dim 1 of {layout}"):
        op(x)


@pytest.mark.parametrize(
    ("name", "grid"),
    [("conv", "planar"), ("conv", "healpix"), ("gated_conv", "cubemap"), ("conv_transpose", "equirect")],
)
def test_a_dtype_mismatch_is_a_dtype_error_not_a_shape_error(name: str, grid: str) -> None:
    op = build_op(name, 2, 3, grid=grid)
    x = torch.zeros(get_grid(grid).shape(1, 2, 4), dtype=torch.float64)
    with pytest.raises(
        DTypeError, match=r"x has dtype torch.float64 but the op's parameters are torch.float32"
    ) as info:
        op(x)
    assert not isinstance(info.value, ShapeError)
    assert "op.to(torch.float64) or x.to(torch.float32)" in str(info.value)
    assert op.double()(x).dtype == torch.float64  # the cast it names works
