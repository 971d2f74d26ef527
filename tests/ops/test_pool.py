"""max_pool, avg_pool and max_unpool against torch.nn.functional and a direct float64 loop.

The loop references index the input by hand (their own padding rules, their own window
arithmetic), so they share no code with geoconv beyond the output size, which is itself
checked against the shape torch produces.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.sizes import pool_output_size

MODES = (None, "zeros", "constant", "reflect", "replicate", "circular")
FILL = -0.75  # the constant padding value in the tests


def _source(r: int, n: int, mode: str | None) -> int | None:
    """The input index that padded coordinate ``r`` (in input coordinates) copies, or None."""
    if 0 <= r < n:
        return r
    if mode in (None, "zeros", "constant"):
        return None
    if mode == "circular":
        return r % n
    if mode == "replicate":
        return min(max(r, 0), n - 1)
    if mode == "reflect":
        return -r if r < 0 else 2 * (n - 1) - r
    raise AssertionError(mode)


def _taps(o: int, n: int, k: int, s: int, p: int, d: int) -> list[int]:
    """Taps (input coordinates) of output ``o``'s window, clipped to the padded input as torch clips."""
    return [o * s - p + u * d for u in range(k) if o * s - p + u * d < n + p]


def _distinct(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A float64 tensor with distinct values, so that every maximum is unique."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for size in shape:
        n *= size
    return (torch.randperm(n, generator=g).double() / n - 0.5).reshape(shape)


def loop_max_pool(x, out, k, s, p, d, mode=None, value=0.0):
    """float64 max pooling by hand; returns (values, flat indices into each input plane)."""
    b_, c_, h, w = x.shape
    xs = x.tolist()
    values = torch.empty(b_, c_, *out, dtype=torch.float64)
    indices = torch.empty(b_, c_, *out, dtype=torch.long)
    for b in range(b_):
        for c in range(c_):
            for i in range(out[0]):
                for j in range(out[1]):
                    best, where = float("-inf"), -1
                    for r in _taps(i, h, k[0], s[0], p[0], d[0]):
                        for q in _taps(j, w, k[1], s[1], p[1], d[1]):
                            si, sj = _source(r, h, mode), _source(q, w, mode)
                            if si is None or sj is None:
                                if mode is None:
                                    continue  # torch's -inf padding
                                v, at = (0.0 if mode == "zeros" else value), -1
                            else:
                                v, at = xs[b][c][si][sj], si * w + sj
                            if v > best:
                                best, where = v, at
                    values[b, c, i, j], indices[b, c, i, j] = best, where
    return values, indices


def loop_avg_pool(x, out, k, s, p, mode=None, value=0.0, count_include_pad=True):
    b_, c_, h, w = x.shape
    xs = x.tolist()
    y = torch.empty(b_, c_, *out, dtype=torch.float64)
    for b in range(b_):
        for c in range(c_):
            for i in range(out[0]):
                for j in range(out[1]):
                    total, count, inside = 0.0, 0, 0
                    for r in _taps(i, h, k[0], s[0], p[0], 1):
                        for q in _taps(j, w, k[1], s[1], p[1], 1):
                            si, sj = _source(r, h, mode), _source(q, w, mode)
                            count += 1
                            if si is None or sj is None:
                                total += value if mode == "constant" else 0.0
                            else:
                                total += xs[b][c][si][sj]
                                inside += 1
                    y[b, c, i, j] = total / (count if count_include_pad else inside)
    return y


def _pairs(draw, lo, hi):
    return draw(st.integers(lo, hi)), draw(st.integers(lo, hi))


@st.composite
def pool_cases(draw, dilation: bool = True):
    kernel = _pairs(draw, 1, 4)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dil = _pairs(draw, 1, 3) if dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    size = _pairs(draw, 1, 8)
    return kernel, stride, padding, dil, ceil_mode, size


def _expected_size(size, kernel, stride, padding, dil, ceil_mode):
    strides = kernel if stride is None else stride
    return tuple(pool_output_size(size[a], kernel[a], strides[a], padding[a], dil[a], ceil_mode) for a in range(2))


@settings(max_examples=80, deadline=None)
@given(pool_cases())
def test_max_pool_matches_torch_and_loop(case) -> None:
    kernel, stride, padding, dil, ceil_mode, size = case
    x = _distinct((1, 2, *size))
    op = geoconv.build_op(
        "max_pool",
        2,
        grid="planar",
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dil,
        ceil_mode=ceil_mode,
        return_indices=True,
    )
    strides = kernel if stride is None else stride
    try:
        out = _expected_size(size, kernel, stride, padding, dil, ceil_mode)
    except GeoconvError:
        with pytest.raises(RuntimeError):
            F.max_pool2d(x, kernel, strides, padding, dil, ceil_mode)
        with pytest.raises(ShapeError, match=r"max_pool: the pooling window .* does not fit x of shape"):
            op(x)
        return
    ref_values, ref_indices = loop_max_pool(x, out, kernel, strides, padding, dil)
    if (ref_indices < 0).any():  # a window of padding only (dilation skips the input)
        with pytest.raises(ShapeError, match="would pool padding only"):
            op(x)
        return
    values, indices = op(x)
    torch_values, torch_indices = F.max_pool2d(x, kernel, strides, padding, dil, ceil_mode, return_indices=True)
    assert values.shape[-2:] == torch_values.shape[-2:] == out
    assert torch.equal(values, torch_values) and torch.equal(indices, torch_indices)
    assert torch.equal(values, ref_values) and torch.equal(indices, ref_indices)
    # Without indices the op returns the values alone.
    plain = geoconv.build_op(
        "max_pool", 2, kernel_size=kernel, stride=stride, padding=padding, dilation=dil, ceil_mode=ceil_mode
    )
    assert torch.equal(plain(x), values)


@settings(max_examples=60, deadline=None)
@given(pool_cases(dilation=False), st.booleans())
def test_avg_pool_matches_torch_and_loop(case, count_include_pad) -> None:
    kernel, stride, padding, _, ceil_mode, size = case
    x = _distinct((2, 1, *size), seed=1)
    op = geoconv.build_op(
        "avg_pool",
        1,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    strides = kernel if stride is None else stride
    try:
        out = _expected_size(size, kernel, stride, padding, (1, 1), ceil_mode)
    except GeoconvError:
        with pytest.raises(RuntimeError):
            F.avg_pool2d(x, kernel, strides, padding, ceil_mode)
        with pytest.raises(ShapeError, match="avg_pool: the pooling window"):
            op(x)
        return
    y = op(x)
    expected = F.avg_pool2d(x, kernel, strides, padding, ceil_mode, count_include_pad)
    assert y.shape[-2:] == expected.shape[-2:] == out
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        y, loop_avg_pool(x, out, kernel, strides, padding, count_include_pad=count_include_pad), rtol=0, atol=1e-12
    )


@settings(max_examples=50, deadline=None)
@given(pool_cases(), st.sampled_from(MODES[1:]))
def test_max_pool_with_padding_mode_matches_loop(case, mode) -> None:
    kernel, stride, padding, dil, ceil_mode, size = case
    # reflect needs padding smaller than the input, circular at most the input.
    if mode == "reflect" and max(padding[0] - size[0], padding[1] - size[1]) >= 0:
        return
    if mode == "circular" and max(padding[0] - size[0], padding[1] - size[1]) > 0:
        return
    x = _distinct((1, 2, *size), seed=2)
    gather = mode in ("reflect", "replicate", "circular")
    op = geoconv.build_op(
        "max_pool",
        2,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dil,
        ceil_mode=ceil_mode,
        padding_mode=mode,
        value=FILL if mode == "constant" else 0.0,
        return_indices=gather,
    )
    strides = kernel if stride is None else stride
    try:
        out = _expected_size(size, kernel, stride, padding, dil, ceil_mode)
    except GeoconvError:
        with pytest.raises(ShapeError):
            op(x)
        return
    ref_values, ref_indices = loop_max_pool(x, out, kernel, strides, padding, dil, mode, FILL)
    if gather:
        values, indices = op(x)
        assert torch.equal(indices, ref_indices)
    else:
        values = op(x)
    assert torch.equal(values, ref_values)


@settings(max_examples=40, deadline=None)
@given(pool_cases(dilation=False), st.sampled_from(MODES[1:]))
def test_avg_pool_with_padding_mode_matches_loop(case, mode) -> None:
    kernel, stride, padding, _, ceil_mode, size = case
    if mode == "reflect" and max(padding[0] - size[0], padding[1] - size[1]) >= 0:
        return
    if mode == "circular" and max(padding[0] - size[0], padding[1] - size[1]) > 0:
        return
    x = _distinct((1, 2, *size), seed=3)
    op = geoconv.build_op(
        "avg_pool",
        2,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        padding_mode=mode,
        value=FILL if mode == "constant" else 0.0,
    )
    strides = kernel if stride is None else stride
    try:
        out = _expected_size(size, kernel, stride, padding, (1, 1), ceil_mode)
    except GeoconvError:
        with pytest.raises(ShapeError):
            op(x)
        return
    expected = loop_avg_pool(x, out, kernel, strides, padding, mode, FILL)
    torch.testing.assert_close(op(x), expected, rtol=0, atol=1e-12)


def test_avg_pool_zeros_mode_equals_implicit_padding_and_circular_is_shift_equivariant() -> None:
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    implicit = geoconv.build_op("avg_pool", 3, kernel_size=3, stride=1, padding=1)
    explicit = geoconv.build_op("avg_pool", 3, kernel_size=3, stride=1, padding=1, padding_mode="zeros")
    torch.testing.assert_close(implicit(x), explicit(x), rtol=0, atol=1e-12)
    circular = geoconv.build_op("avg_pool", 3, kernel_size=3, stride=1, padding=1, padding_mode="circular")
    shifted = torch.roll(x, (2, -3), (-2, -1))
    torch.testing.assert_close(circular(shifted), torch.roll(circular(x), (2, -3), (-2, -1)), rtol=0, atol=1e-12)


def test_max_pool_keeps_integer_and_float32_dtypes() -> None:
    x = torch.randn(1, 2, 6, 6)
    assert geoconv.build_op("max_pool", 2)(x).dtype == torch.float32
    ints = torch.arange(16).view(1, 1, 4, 4)
    assert geoconv.build_op("max_pool", 1)(ints).flatten().tolist() == [5, 7, 13, 15]


# --- max_unpool ---------------------------------------------------------------------------


def loop_unpool_of_pool(x, kernel, stride, padding, mode=None):
    """Zeros, except each window's maximum at its own position (the definition of the switches)."""
    b_, c_, h, w = x.shape
    out = (
        pool_output_size(h, kernel[0], stride[0], padding[0]),
        pool_output_size(w, kernel[1], stride[1], padding[1]),
    )
    _, where = loop_max_pool(x, out, kernel, stride, padding, (1, 1), mode)
    expected = torch.zeros_like(x)
    for b in range(b_):
        for c in range(c_):
            for flat in where[b, c].flatten().tolist():
                expected[b, c, flat // w, flat % w] = x[b, c, flat // w, flat % w]
    return expected


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "size"),
    [
        ((2, 2), (2, 2), (0, 0), (6, 8)),  # non-overlapping, the classic switch variables
        ((3, 3), (2, 2), (1, 1), (7, 6)),  # overlapping windows pick some pixels twice
        ((2, 3), (1, 2), (1, 0), (5, 7)),
        ((3, 2), (3, 2), (0, 1), (7, 5)),  # sizes that do not divide: the rest stays zero
    ],
)
def test_unpool_of_pool_keeps_exactly_the_maxima(kernel, stride, padding, size) -> None:
    x = _distinct((2, 3, *size), seed=4)
    pool = geoconv.build_op(
        "max_pool", 3, grid="planar", kernel_size=kernel, stride=stride, padding=padding, return_indices=True
    )
    unpool = geoconv.build_op("max_unpool", 3, grid="planar", kernel_size=kernel, stride=stride, padding=padding)
    values, indices = pool(x)
    y = unpool(values, indices, output_size=size)
    expected = loop_unpool_of_pool(x, kernel, stride, padding)
    assert torch.equal(y, expected)
    assert torch.equal(y, F.max_unpool2d(values, indices, kernel, stride, padding, output_size=size))
    # Every non-zero output is an input pixel at its own place; all the rest is zero.
    kept = y != 0
    assert torch.equal(y[kept], x[kept])
    assert int(kept.sum()) == sum(len(set(indices[b, c].flatten().tolist())) for b in range(2) for c in range(3))
    # The registry's apply drives the op with one tensor and lands on the same result.
    assert torch.equal(geoconv.get_op("max_unpool").apply(unpool, x), expected)


def test_unpool_default_size_and_gradient_is_the_gather() -> None:
    x = _distinct((1, 2, 8, 6), seed=5)
    values, indices = geoconv.build_op("max_pool", 2, return_indices=True)(x)
    unpool = geoconv.build_op("max_unpool", 2)
    values = values.clone().requires_grad_(True)
    y = unpool(values, indices)  # default: (h - 1) * 2 + 2 = the input size here
    assert y.shape == x.shape
    upstream = torch.randn(y.shape, dtype=y.dtype)
    (y * upstream).sum().backward()
    assert torch.equal(values.grad, upstream.flatten(-2).gather(-1, indices.flatten(-2)).view_as(values))
    # torch's output_size spelling as a full shape is accepted too.
    assert unpool(values, indices, output_size=torch.Size([1, 2, 9, 7])).shape == (1, 2, 9, 7)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_unpool_after_pool_with_padding_mode(mode) -> None:
    x = _distinct((2, 2, 7, 6), seed=6)
    pool = geoconv.build_op("max_pool", 2, kernel_size=3, stride=2, padding=1, padding_mode=mode, return_indices=True)
    values, indices = pool(x)
    assert int(indices.min()) >= 0 and int(indices.max()) < 7 * 6
    # Each value is the input pixel its index names, even where it came through the padding.
    assert torch.equal(values, x.flatten(-2).gather(-1, indices.flatten(-2)).view_as(values))
    y = geoconv.build_op("max_unpool", 2, kernel_size=3, stride=2, padding=1)(values, indices, output_size=(7, 6))
    assert torch.equal(y, loop_unpool_of_pool(x, (3, 3), (2, 2), (1, 1), mode))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("max_pool", {"kernel_size": 0}, r"kernel_size must be an integer >= 1, got 0"),
        ("max_pool", {"kernel_size": (2, -1)}, r"kernel_size\[1\] must be an integer >= 1, got -1"),
        ("max_pool", {"stride": 0}, r"stride must be an integer >= 1, got 0"),
        ("max_pool", {"padding": -1}, r"padding must be an integer >= 0, got -1"),
        ("max_pool", {"kernel_size": 3, "padding": 2}, r"padding must be at most half the kernel_size"),
        ("max_pool", {"dilation": 0}, r"dilation must be an integer >= 1"),
        ("max_pool", {"ceil_mode": 1}, r"max_pool.ceil_mode must be of type bool"),
        ("max_pool", {"padding_mode": "reflection"}, r"unknown padding_mode.*did you mean 'reflect'"),
        (
            "max_pool",
            {"padding": 1, "padding_mode": "zeros", "return_indices": True},
            r"return_indices=True with padding_mode='zeros'",
        ),
        ("max_pool", {"kernal_size": 3}, r"unknown parameter of op 'max_pool'.*did you mean 'kernel_size'"),
        ("avg_pool", {"kernel_size": 2, "padding": 2}, r"padding must be at most half the kernel_size"),
        ("avg_pool", {"count_include_pad": False, "padding_mode": "circular"}, r"count_include_pad=False"),
        ("avg_pool", {"dilation": 2}, r"unknown parameter of op 'avg_pool'"),
        ("max_unpool", {"stride": (1, 0)}, r"stride\[1\] must be an integer >= 1, got 0"),
        ("max_unpool", {"kernel_size": 2, "padding": 3}, r"padding must be at most half the kernel_size"),
    ],
)
def test_bad_parameters_name_the_culprit(name, params, match) -> None:
    with pytest.raises(GeoconvError, match=match):
        geoconv.build_op(name, 2, **params)


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "max_unpool"])
def test_pooling_keeps_the_channel_count(name) -> None:
    with pytest.raises(ParameterError, match=r"out_channels must equal in_channels \(3\).*got out_channels=4"):
        geoconv.build_op(name, 3, 4)
    assert geoconv.build_op(name, 3, 3).out_channels == 3
    op = geoconv.build_op(name, 3)
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ShapeError, match=r"must have in_channels=3 channels in dim 1.*got shape \(1, 2, 4, 4\)"):
        geoconv.get_op(name).apply(op, x[:, :2])
    with pytest.raises(ShapeError, match=r"x must have shape \(B, C, H, W\).*got a 3-D tensor of shape \(3, 4, 4\)"):
        geoconv.get_op(name).apply(op, x[0])


def test_pool_bad_inputs() -> None:
    with pytest.raises(ShapeError, match=r"max_pool: the pooling window \(kernel_size=\(5, 5\).*\(1, 2, 3, 3\)"):
        geoconv.build_op("max_pool", 2, kernel_size=5)(torch.randn(1, 2, 3, 3))
    with pytest.raises(ShapeError, match=r"avg_pool: the pooling window"):
        geoconv.build_op("avg_pool", 2, kernel_size=(1, 4), padding=(0, 1))(torch.randn(1, 2, 3, 1))
    with pytest.raises(ShapeError, match=r"avg_pool: x must have a floating-point dtype, got torch.int64"):
        geoconv.build_op("avg_pool", 1)(torch.ones(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(GeoconvError, match=r"reflect padding needs each width smaller than its dimension"):
        geoconv.build_op("max_pool", 1, kernel_size=3, padding=1, padding_mode="reflect")(torch.randn(1, 1, 1, 4))
    with pytest.raises(ShapeError, match=r"output row 0 would pool padding only"):
        geoconv.build_op("max_pool", 1, kernel_size=(2, 1), stride=1, padding=(1, 0), dilation=(2, 1))(
            torch.randn(1, 1, 1, 1)
        )


def test_unpool_bad_inputs() -> None:
    values, indices = geoconv.build_op("max_pool", 2, return_indices=True)(torch.randn(1, 2, 6, 6))
    unpool = geoconv.build_op("max_unpool", 2)
    with pytest.raises(ShapeError, match=r"indices must have the shape of x \(1, 2, 3, 3\), got \(1, 2, 3, 2\)"):
        unpool(values, indices[..., :2])
    with pytest.raises(ShapeError, match=r"indices must have shape \(B, C, H, W\).*3-D"):
        unpool(values, indices[0])
    with pytest.raises(ShapeError, match=r"indices must be a torch.Tensor"):
        unpool(values, indices.tolist())
    with pytest.raises(ShapeError, match=r"indices must be an integer tensor.*got dtype torch.float32"):
        unpool(values, indices.float())
    with pytest.raises(ShapeError, match=r"indices must be flat positions in \[0, 36\).*got values in \[\d+, 36\]"):
        unpool(values, torch.where(indices == indices.max(), 36, indices))
    with pytest.raises(ShapeError, match=r"indices must be flat positions in \[0, 36\).*\[-1, "):
        unpool(values, torch.where(indices == indices.min(), -1, indices))
    with pytest.raises(ShapeError, match=r"output_size\[0\]=8 is not a size.*expected a value in \[5, 7\]"):
        unpool(values, indices, output_size=(8, 6))
    with pytest.raises(GeoconvError, match=r"output_size\[1\] must be an integer >= 1, got 0"):
        unpool(values, indices, output_size=(6, 0))
    with pytest.raises(ShapeError, match=r"unpools to an empty \(0, 0\)"):
        geoconv.build_op("max_unpool", 2, padding=1)(values[..., :1, :1], indices[..., :1, :1])
