"""Tests of :mod:`geoconv.sizes` against the shapes torch actually produces.

Each helper is checked against the output shape of the torch op it describes
(``F.conv2d``, ``F.conv_transpose2d``, ``F.max_pool2d``, ``F.avg_pool2d``): where torch
refuses the parameters the helper must raise ``GeoconvError``. The receptive field is
checked against the support of the gradient of one output of a stack of bias-free convs
with positive weights (no cancellation, so every path from an input pixel shows up).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geoconv import build_op
from geoconv.errors import GeoconvError
from geoconv.sizes import (
    Layer,
    conv_output_size,
    conv_transpose_output_size,
    effective_kernel_size,
    pool_output_size,
    receptive_field,
    same_padding,
)

kernels = st.integers(1, 5)
strides = st.integers(1, 3)
dilations = st.integers(1, 3)


def row(n: int) -> torch.Tensor:
    """A one-row image: sizes along the width only."""
    return torch.zeros(1, 1, 1, n)


def tf_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


# --------------------------------------------------------------------------- conv_output_size


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 20),
    k=kernels,
    s=strides,
    d=dilations,
    padding=st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3))),
)
def test_conv_output_size_matches_conv2d(n, k, s, d, padding):
    before, after = (padding, padding) if isinstance(padding, int) else padding
    x = F.pad(row(n), (before, after))
    try:
        actual = F.conv2d(x, torch.zeros(1, 1, 1, k), stride=(1, s), dilation=(1, d)).shape[-1]
    except RuntimeError:
        with pytest.raises(GeoconvError, match="kernel"):
            conv_output_size(n, k, s, padding, d)
        return
    assert conv_output_size(n, k, s, padding, d) == actual
    if isinstance(padding, int) and d == 1:
        assert actual == (n - k + 2 * padding) // s + 1  # the seed's formula, floored


@pytest.mark.parametrize(
    ("n", "k", "s", "p", "d", "expected"),
    [(32, 3, 2, 1, 1, 16), (5, 3, 1, 0, 1, 3), (4, 3, 1, 1, 1, 4), (7, 3, 1, 0, 2, 3), (10, 4, 3, (0, 1), 1, 3)],
)
def test_conv_output_size_by_hand(n, k, s, p, d, expected):
    assert conv_output_size(n, k, s, p, d) == expected


# --------------------------------------------------------------------------- conv_transpose_output_size


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10), k=kernels, s=strides, d=dilations, p=st.integers(0, 4), data=st.data())
def test_conv_transpose_output_size_matches_conv_transpose2d(n, k, s, d, p, data):
    output_padding = data.draw(st.integers(0, max(s, d) - 1))
    try:
        actual = F.conv_transpose2d(
            row(n),
            torch.zeros(1, 1, 1, k),
            stride=(1, s),
            padding=(0, p),
            output_padding=(0, output_padding),
            dilation=(1, d),
        ).shape[-1]
    except RuntimeError:
        with pytest.raises(GeoconvError, match="padding"):
            conv_transpose_output_size(n, k, s, p, d, output_padding)
        return
    assert conv_transpose_output_size(n, k, s, p, d, output_padding) == actual


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 10), k=kernels, s=strides, d=dilations, p=st.integers(0, 4), data=st.data())
def test_conv_transpose_output_size_inverts_conv_output_size(n, k, s, d, p, data):
    output_padding = data.draw(st.integers(0, s - 1))
    assume((n - 1) * s - 2 * p + d * (k - 1) + 1 >= 1)
    big = conv_transpose_output_size(n, k, s, p, d, output_padding)
    assert conv_output_size(big, k, s, p, d) == n


def test_conv_transpose_output_padding_too_large():
    with pytest.raises(GeoconvError, match="output_padding"):
        conv_transpose_output_size(4, 3, stride=2, output_padding=2)


# --------------------------------------------------------------------------- same_padding


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), k=kernels, s=strides, d=dilations)
def test_same_padding_matches_formula_and_ceil(n, k, s, d):
    before, after = same_padding(n, k, s, d)
    assert (before, after) == tf_same(n, k, s, d)
    assert after - before in (0, 1)  # the odd pixel goes after
    x = F.pad(row(n), (before, after))
    out = F.conv2d(x, torch.zeros(1, 1, 1, k), stride=(1, s), dilation=(1, d)).shape[-1]
    assert out == math.ceil(n / s) == conv_output_size(n, k, s, (before, after), d)
    # Minimal: one pixel less of padding loses the last output (or leaves the kernel no room).
    if after:
        try:
            assert conv_output_size(n, k, s, (before, after - 1), d) == out - 1
        except GeoconvError:
            assert out == 1


@pytest.mark.parametrize(
    ("n", "k", "s", "d", "pads"),
    [
        (7, 4, 1, 1, (1, 2)),
        (8, 3, 2, 1, (0, 1)),
        (8, 1, 2, 1, (0, 0)),
        (5, 3, 1, 1, (1, 1)),
        (10, 3, 1, 2, (2, 2)),
        (4, 5, 3, 1, (2, 2)),
        (3, 5, 1, 3, (6, 6)),
        (10, 2, 5, 1, (0, 0)),
    ],
)
def test_same_padding_by_hand(n, k, s, d, pads):
    assert same_padding(n, k, s, d) == pads


# --------------------------------------------------------------------------- pool_output_size


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 20),
    k=kernels,
    s=st.one_of(st.none(), strides),
    d=dilations,
    ceil_mode=st.booleans(),
    data=st.data(),
)
def test_pool_output_size_matches_max_pool2d(n, k, s, d, ceil_mode, data):
    p = data.draw(st.integers(0, k // 2))  # torch allows padding up to half the kernel
    try:
        actual = F.max_pool2d(
            row(n), (1, k), stride=None if s is None else (1, s), padding=(0, p), dilation=(1, d), ceil_mode=ceil_mode
        ).shape[-1]
    except RuntimeError:
        with pytest.raises(GeoconvError):
            pool_output_size(n, k, s, p, d, ceil_mode)
        return
    assert pool_output_size(n, k, s, p, d, ceil_mode) == actual
    if d == 1:
        avg = F.avg_pool2d(row(n), (1, k), stride=None if s is None else (1, s), padding=(0, p), ceil_mode=ceil_mode)
        assert avg.shape[-1] == actual


def test_pool_output_size_by_hand():
    assert pool_output_size(5, 2) == 2
    assert pool_output_size(5, 2, ceil_mode=True) == 3
    assert pool_output_size(6, 3, stride=2, padding=1, ceil_mode=True) == 4  # last window starts in the input
    assert pool_output_size(5, 2, stride=2, padding=1, ceil_mode=True) == 3  # one starting in the padding is dropped


# --------------------------------------------------------------------------- receptive field


def gradient_support(layers: list[tuple[int, int, int, int]], n: int, index: int, seed: int) -> list[int]:
    """Input pixels whose gradient on output ``index`` is nonzero, for a 1-D stack (k, s, p, d)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 1, n, dtype=torch.float64, requires_grad=True)
    y = x
    for k, s, p, d in layers:
        weight = 0.5 + torch.rand(1, 1, k, generator=generator, dtype=torch.float64)
        y = F.conv1d(y, weight, None, s, p, d)
    assume(0 <= index < y.shape[-1])
    (grad,) = torch.autograd.grad(y[0, 0, index], x)
    return torch.nonzero(grad[0, 0]).flatten().tolist()


@settings(max_examples=40, deadline=None)
@given(
    layers=st.lists(
        st.tuples(kernels, strides, st.integers(0, 2), dilations),
        min_size=1,
        max_size=4,
    ),
    seed=st.integers(0, 2**31 - 1),
)
def test_receptive_field_is_the_gradient_support(layers, seed):
    rf = receptive_field([Layer(k, stride=s, padding=p, dilation=d) for k, s, p, d in layers])
    # Araujo et al.'s closed forms, written out here.
    size, stride, padding = 1, 1, 0
    for k, s, p, d in layers:
        size += d * (k - 1) * stride
        padding += p * stride
        stride *= s
    assert (rf.size, rf.stride, rf.padding, rf.start) == (size, stride, padding, -padding)

    # An input long enough that the middle output's field lies well inside it.
    n = 3 * size + 2 * padding + 4 * stride
    length = n
    for k, s, p, d in layers:
        length = (length + 2 * p - d * (k - 1) - 1) // s + 1
    index = length // 2
    support = gradient_support(layers, n, index, seed)
    assume(support and support[0] > 0 and support[-1] < n - 1)
    assert (support[0], support[-1]) == rf.bounds(index)
    assert support[-1] - support[0] + 1 == rf.size
    assert (support[0] + support[-1]) / 2 == rf.centre(index)
    # The next output sees the same field moved by the effective stride.
    if index + 1 < length:
        following = gradient_support(layers, n, index + 1, seed)
        if following[-1] < n - 1:
            assert [i - stride for i in following] == support


def test_receptive_field_of_a_2d_conv_stack():
    # 3x3, 3x3 stride 2, 3x3 dilation 2: r = 1 + 2 + 2 + (2 * 2) * 2 = 13.
    specs = [dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, dilation=2)]
    # The last conv pads "same" (the default): on 20 pixels with a span of 5 that is (2, 2).
    ops = [build_op("conv", 1, 1, bias=False, **spec).to(torch.float64) for spec in specs]
    with torch.no_grad():
        for op in ops:
            op.weight.uniform_(0.5, 1.5)
    x = torch.zeros(1, 1, 40, 40, dtype=torch.float64, requires_grad=True)
    y = x
    for op in ops:
        y = op(y)
    centre = (y.shape[-2] // 2, y.shape[-1] // 2)
    (grad,) = torch.autograd.grad(y[0, 0, centre[0], centre[1]], x)
    rows, cols = torch.nonzero(grad[0, 0], as_tuple=True)
    rf = receptive_field([Layer(3, padding=1), Layer(3, stride=2, padding=1), Layer(3, dilation=2, padding=2)])
    assert rf.size == 13
    assert (rows.min().item(), rows.max().item()) == rf.bounds(centre[0])
    assert (cols.min().item(), cols.max().item()) == rf.bounds(centre[1])


def test_effective_kernel_size():
    assert [effective_kernel_size(k, d) for k, d in [(1, 3), (3, 1), (3, 2), (5, 3)]] == [1, 3, 5, 13]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: conv_output_size(0, 3), "size"),
        (lambda: conv_output_size(5, 0), "kernel_size"),
        (lambda: conv_output_size(5, 3, stride=0), "stride"),
        (lambda: conv_output_size(5, 3, dilation=0), "dilation"),
        (lambda: conv_output_size(5, 3, padding=-1), "padding"),
        (lambda: conv_output_size(5, 3, padding=(1, 2, 3)), "padding"),
        (lambda: conv_output_size(2, 5), "kernel"),
        (lambda: conv_output_size(5, 3, stride=1.5), "stride"),
        (lambda: conv_transpose_output_size(3, 2, padding=5), "padding"),
        (lambda: same_padding(5, 0), "kernel_size"),
        (lambda: same_padding(0, 3), "size"),
        (lambda: pool_output_size(2, 5), "kernel"),
        (lambda: receptive_field([]), "layers"),
        (lambda: receptive_field([3]), r"layers\[0\]"),
        (lambda: Layer(0), "kernel_size"),
        (lambda: Layer(3, stride=0), "stride"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(GeoconvError, match=match):
        call()
