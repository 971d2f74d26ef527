"""Tests of the ``conv`` op against independent references.

The references are written here, not taken from geoconv: a direct float64 numpy sum over
the kernel with its own padding (an index map per mode), and ``torch.nn.functional``
(``F.pad`` then ``F.conv2d`` with no padding). TensorFlow's "same" padding is the closed
formula in :func:`tf_same`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geoconv import build_op
from geoconv.errors import GeoconvError
from geoconv.ops.conv import Conv
from geoconv.sizes import conv_output_size

MODES = ("zeros", "constant", "reflect", "replicate", "circular")
DTYPE = torch.float64


# --------------------------------------------------------------------------- references


def tf_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow "SAME": output ceil(n/s); total padding split with the odd pixel after."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def pad_widths(padding, size, kernel, stride, dilation) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` for any padding spec the op accepts."""
    if padding == "same":
        return tf_same(size[0], kernel[0], stride[0], dilation[0]) + tf_same(size[1], kernel[1], stride[1], dilation[1])
    if padding == "valid":
        return (0, 0, 0, 0)
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def source_index(i: int, n: int, mode: str) -> int | None:
    """Input index that padded coordinate ``i`` (relative to the first input pixel) reads; None: the fill."""
    if 0 <= i < n:
        return i
    if mode in ("zeros", "constant"):
        return None
    if mode == "reflect":
        return -i if i < 0 else 2 * (n - 1) - i
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    return i % n  # circular


def numpy_pad(x: np.ndarray, widths, mode: str, value: float) -> np.ndarray:
    top, bottom, left, right = widths
    b, c, h, w = x.shape
    fill = value if mode == "constant" else 0.0
    out = np.full((b, c, h + top + bottom, w + left + right), fill, dtype=np.float64)
    for i in range(out.shape[2]):
        si = source_index(i - top, h, mode)
        for j in range(out.shape[3]):
            sj = source_index(j - left, w, mode)
            if si is not None and sj is not None:
                out[:, :, i, j] = x[:, :, si, sj]
    return out


def numpy_conv(x, weight, bias, stride, dilation, groups, widths, mode, value) -> np.ndarray:
    """Direct float64 sum over the kernel: y[o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] xp[c, s i + d u, s j + d v]."""
    xp = numpy_pad(x, widths, mode, value)
    b, _, hp, wp = xp.shape
    out_c, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    og = out_c // groups
    y = np.zeros((b, out_c, ho, wo))
    for g in range(groups):
        xs = xp[:, g * cg : (g + 1) * cg]
        for u in range(kh):
            for v in range(kw):
                patch = xs[:, :, dh * u : dh * u + sh * (ho - 1) + 1 : sh, dw * v : dw * v + sw * (wo - 1) + 1 : sw]
                y[:, g * og : (g + 1) * og] += np.einsum("oc,bcij->boij", weight[g * og : (g + 1) * og, :, u, v], patch)
    if bias is not None:
        y += bias[None, :, None, None]
    return y


def torch_conv(x, weight, bias, stride, dilation, groups, widths, mode, value) -> torch.Tensor:
    top, bottom, left, right = widths
    if mode in ("zeros", "constant"):
        padded = F.pad(x, (left, right, top, bottom), mode="constant", value=value if mode == "constant" else 0.0)
    else:
        padded = F.pad(x, (left, right, top, bottom), mode=mode)
    return F.conv2d(padded, weight, bias, stride, 0, dilation, groups)


def fits(n: int, k: int, s: int, d: int, padding, axis: int, mode: str) -> bool:
    """Whether an input of size ``n`` along ``axis`` is a legal input for these parameters."""
    if padding == "same":
        before, after = tf_same(n, k, s, d)
    else:
        widths = pad_widths(padding, (n, n), (k, k), (s, s), (d, d))
        before, after = widths[2 * axis], widths[2 * axis + 1]
    if mode == "reflect" and max(before, after) >= n:
        return False
    if mode == "circular" and max(before, after) > n:
        return False
    return n + before + after >= d * (k - 1) + 1


def randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=DTYPE)


def make_conv(cin, cout, generator, **params):
    """A float64 ``conv`` op with random weights and bias (not torch's init)."""
    op = build_op("conv", cin, cout, grid="planar", **params).to(DTYPE)
    with torch.no_grad():
        op.weight.copy_(randn(generator, *op.weight.shape))
        if op.bias is not None:
            op.bias.copy_(randn(generator, *op.bias.shape))
    return op


def check_against_references(op, x, padding, mode, value):
    cfg = op.config
    widths = pad_widths(padding, tuple(x.shape[-2:]), cfg.kernel_size, cfg.stride, cfg.dilation)
    bias = None if op.bias is None else op.bias.detach()
    weight = op.weight.detach()
    got = op(x).detach()
    expected_np = numpy_conv(
        x.numpy(),
        weight.numpy(),
        None if bias is None else bias.numpy(),
        cfg.stride,
        cfg.dilation,
        cfg.groups,
        widths,
        mode,
        value,
    )
    expected_torch = torch_conv(x, weight, bias, cfg.stride, cfg.dilation, cfg.groups, widths, mode, value)
    assert got.shape == expected_np.shape == expected_torch.shape
    np.testing.assert_allclose(got.numpy(), expected_np, rtol=0, atol=1e-11)
    torch.testing.assert_close(got, expected_torch, rtol=0, atol=1e-12)
    return got


# --------------------------------------------------------------------------- the seed's worked example

SEED_INPUT = [[1, 2, 3, 4, 5], [6, 7, 8, 2, 3], [2, 5, 9, 9, 5], [4, 8, 8, 2, 1]]
SEED_KERNEL = [[1, 1, 1], [2, 1, 2], [3, 2, 1]]


def test_seed_worked_example():
    op = build_op("conv", 1, 1, kernel_size=3, padding="valid", bias=False).to(DTYPE)
    assert isinstance(op, Conv) and op.bias is None
    with torch.no_grad():
        op.weight.copy_(torch.tensor(SEED_KERNEL, dtype=DTYPE)[None, None])
    y = op(torch.tensor(SEED_INPUT, dtype=DTYPE)[None, None])[0, 0]

    # Plain scalar loops over the kernel positions, as in the seed's text.
    expected = [
        [sum(SEED_KERNEL[u][v] * SEED_INPUT[i + u][j + v] for u in range(3) for v in range(3)) for j in range(3)]
        for i in range(2)
    ]
    assert expected == [[66, 77, 86], [84, 96, 79]]  # by hand: 6+35+25, 9+26+42, 12+24+50, ...
    assert y[0, 0].item() == 66
    assert y.tolist() == expected
    # The seed's output size (x - k + 2p)/s + 1 with x=(4, 5), k=3, p=0, s=1.
    assert tuple(y.shape) == ((4 - 3) // 1 + 1, (5 - 3) // 1 + 1)


# --------------------------------------------------------------------------- every mode, deterministic

CASES = [
    # kernel, stride, dilation, groups, padding, bias
    (3, 1, 1, 1, "same", True),
    ((2, 3), 1, 1, 1, "same", False),
    (4, 2, 1, 2, "same", True),
    ((3, 1), (2, 1), (1, 2), 1, 1, True),
    (3, 1, 2, 3, (1, 2), False),
    (2, 3, 1, 1, (0, 2, 1, 1), True),
    ((5, 2), (1, 2), (2, 3), 1, "same", True),
    (3, 2, 1, 1, "valid", True),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("kernel", "stride", "dilation", "groups", "padding", "bias"), CASES)
def test_conv_every_mode(mode, kernel, stride, dilation, groups, padding, bias):
    generator = torch.Generator().manual_seed(0)
    value = -1.5 if mode == "constant" else 0.0
    params = dict(
        kernel_size=kernel,
        stride=stride,
        dilation=dilation,
        groups=groups,
        padding=padding,
        bias=bias,
        padding_mode=mode,
    )
    if mode == "constant":
        params["value"] = value
    op = make_conv(3 * groups, 2 * groups, generator, **params)
    x = randn(generator, 2, 3 * groups, 9, 8)
    check_against_references(op, x, padding, mode, value)


def test_constant_value_is_used():
    # A 1x1 all-ones input with a 3x3 all-ones kernel: the 8 padded pixels hold `value`.
    op = build_op("conv", 1, 1, kernel_size=3, padding_mode="constant", value=2.5, bias=False).to(DTYPE)
    with torch.no_grad():
        op.weight.fill_(1.0)
    assert op(torch.ones(1, 1, 1, 1, dtype=DTYPE)).item() == 1 + 8 * 2.5


def test_padding_tuple_order_is_top_bottom_left_right():
    # Only the top gets padded: a 1x1 kernel shows where the zero row went.
    op = build_op("conv", 1, 1, kernel_size=1, padding=(1, 0, 0, 2), bias=False).to(DTYPE)
    with torch.no_grad():
        op.weight.fill_(1.0)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=DTYPE)
    expected = [[0, 0, 0, 0], [1, 2, 0, 0], [3, 4, 0, 0]]
    assert op(x)[0, 0].tolist() == expected


# --------------------------------------------------------------------------- hypothesis over the parameter space

kernel_st = st.integers(1, 5)
padding_st = st.one_of(
    st.sampled_from(["same", "valid"]),
    st.integers(0, 3),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
)


@st.composite
def conv_cases(draw):
    kernel = (draw(kernel_st), draw(kernel_st))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    groups = draw(st.sampled_from([1, 2, 3]))
    mode = draw(st.sampled_from(MODES))
    padding = draw(padding_st)
    sizes = []
    for axis in range(2):
        ok = [n for n in range(1, 13) if fits(n, kernel[axis], stride[axis], dilation[axis], padding, axis, mode)]
        assume(ok)
        sizes.append(draw(st.sampled_from(ok)))
    return dict(
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        groups=groups,
        mode=mode,
        padding=padding,
        bias=draw(st.booleans()),
        value=draw(st.floats(-3, 3)) if mode == "constant" else 0.0,
        cin=groups * draw(st.integers(1, 2)),
        cout=groups * draw(st.integers(1, 2)),
        size=tuple(sizes),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_conv_matches_references(case):
    generator = torch.Generator().manual_seed(case["seed"])
    op = make_conv(
        case["cin"],
        case["cout"],
        generator,
        kernel_size=case["kernel"],
        stride=case["stride"],
        dilation=case["dilation"],
        groups=case["groups"],
        padding=case["padding"],
        padding_mode=case["mode"],
        value=case["value"],
        bias=case["bias"],
    )
    x = randn(generator, 2, case["cin"], *case["size"])
    y = check_against_references(op, x, case["padding"], case["mode"], case["value"])
    if case["padding"] == "same":
        assert tuple(y.shape[-2:]) == tuple(-(-n // s) for n, s in zip(case["size"], case["stride"], strict=True))


# --------------------------------------------------------------------------- TensorFlow "same"


@pytest.mark.parametrize(
    ("n", "k", "s", "d", "pads"),
    [
        (7, 4, 1, 1, (1, 2)),  # total 3: the odd pixel after
        (5, 3, 1, 1, (1, 1)),
        (6, 2, 1, 1, (0, 1)),
        (8, 3, 2, 1, (0, 1)),  # out 4: (4-1)*2 + 3 - 8 = 1
        (9, 2, 2, 1, (0, 1)),  # out 5: 8 + 2 - 9 = 1
        (7, 3, 3, 1, (1, 1)),  # out 3: 6 + 3 - 7 = 2
        (4, 5, 3, 1, (2, 2)),  # out 2: 3 + 5 - 4 = 4
        (12, 4, 3, 1, (0, 1)),  # out 4: 9 + 4 - 12 = 1
        (8, 1, 2, 1, (0, 0)),  # a 1x1 kernel never pads
        (10, 3, 1, 2, (2, 2)),  # span 5
        (5, 2, 3, 2, (0, 1)),  # span 3, out 2: 3 + 3 - 5 = 1
        (3, 5, 1, 3, (6, 6)),  # span 13, wider than the input
        (10, 2, 5, 1, (0, 0)),  # stride beyond the span: no padding
    ],
)
def test_same_padding_hand_cases(n, k, s, d, pads):
    assert tf_same(n, k, s, d) == pads
    op = build_op("conv", 1, 1, kernel_size=(k, 1), stride=(s, 1), dilation=(d, 1))
    assert op.padding_widths((n, 1))[:2] == pads
    assert op(torch.zeros(1, 1, n, 1)).shape[-2] == math.ceil(n / s)


def test_same_extra_pixel_goes_bottom_right():
    # Kernel [10, 1] over [1, 2, 3]: pads (0, 1) read [1, 2, 3, 0] -> [12, 23, 30];
    # the extra pixel on the left would read [0, 1, 2, 3] -> [1, 12, 23].
    for shape, kernel in (((1, 3), (1, 2)), ((3, 1), (2, 1))):
        op = build_op("conv", 1, 1, kernel_size=kernel, padding="same", bias=False).to(DTYPE)
        with torch.no_grad():
            op.weight.copy_(torch.tensor([10.0, 1.0], dtype=DTYPE).view(1, 1, *kernel))
        y = op(torch.tensor([1.0, 2.0, 3.0], dtype=DTYPE).view(1, 1, *shape))
        assert y.flatten().tolist() == [12.0, 23.0, 30.0]


@settings(max_examples=40, deadline=None)
@given(
    n=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    k=st.tuples(kernel_st, kernel_st),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**31 - 1),
)
def test_same_matches_formula(n, k, s, d, seed):
    generator = torch.Generator().manual_seed(seed)
    op = make_conv(2, 3, generator, kernel_size=k, stride=s, dilation=d, padding="same")
    x = randn(generator, 1, 2, *n)
    (top, bottom), (left, right) = tf_same(n[0], k[0], s[0], d[0]), tf_same(n[1], k[1], s[1], d[1])
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), op.weight, op.bias, s, 0, d)
    got = op(x)
    assert tuple(got.shape[-2:]) == (math.ceil(n[0] / s[0]), math.ceil(n[1] / s[1]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- shift equivariance


@pytest.mark.parametrize(("kernel", "dilation"), [(1, 1), (2, 1), (3, 1), (4, 1), ((3, 2), (2, 1)), (3, 2), (2, 3)])
def test_circular_conv_commutes_with_every_circular_shift(kernel, dilation):
    generator = torch.Generator().manual_seed(1)
    op = make_conv(2, 3, generator, kernel_size=kernel, dilation=dilation, padding_mode="circular")
    x = randn(generator, 1, 2, 7, 6)
    y = op(x)
    scale = y.abs().max().item()
    for sh in range(7):
        for sw in range(6):
            shifted = op(torch.roll(x, (sh, sw), dims=(-2, -1)))
            error = (shifted - torch.roll(y, (sh, sw), dims=(-2, -1))).abs().max().item()
            assert error <= 1e-13 * scale, (sh, sw, error)


def seam_band(n: int, shift: int, before: int, after: int) -> torch.Tensor:
    """Rows where a zero-padded stride-1 conv may disagree with a circular shift.

    Output ``i`` reads input rows ``[i - before, i + after]``. It agrees with the shifted
    output unless that window leaves ``[0, n)`` for ``i`` (the frame: ``before`` rows at
    the top, ``after`` at the bottom) or for the source row ``(i - shift) mod n`` (the same
    frame, rolled: rows ``shift - after .. shift + before - 1`` around the seam). Without a
    shift along this axis both sides pad the same zeros there, so no row is at risk.
    """
    rows = torch.arange(n)
    if shift % n == 0:
        return torch.zeros(n, dtype=torch.bool)
    source = (rows - shift) % n
    frame = (rows < before) | (rows > n - 1 - after)
    moved = (source < before) | (source > n - 1 - after)
    return frame | moved


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (2, 1), (4, 1), ((3, 5), (2, 1)), (2, 2)])
def test_zero_padding_breaks_shift_equivariance_only_in_a_border_band(kernel, dilation):
    generator = torch.Generator().manual_seed(2)
    op = make_conv(1, 2, generator, kernel_size=kernel, dilation=dilation, padding_mode="zeros")
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    h, w = 11, 12
    (top, bottom), (left, right) = tf_same(h, kh, 1, dh), tf_same(w, kw, 1, dw)
    # Stride 1: the frame is half the dilated kernel's span on each side, the odd pixel after.
    assert (top + bottom, left + right) == (dh * (kh - 1), dw * (kw - 1))
    x = randn(generator, 1, 1, h, w)
    y = op(x)
    for sh, sw in [(0, 0), (1, 0), (0, 1), (3, 5), (10, 11), (6, 2)]:
        error = (op(torch.roll(x, (sh, sw), dims=(-2, -1))) - torch.roll(y, (sh, sw), dims=(-2, -1))).abs()
        band = seam_band(h, sh, top, bottom)[:, None] | seam_band(w, sw, left, right)[None, :]
        outside = error[..., ~band]
        assert outside.numel() == 0 or outside.max().item() <= 1e-12
        if (sh, sw) == (0, 0):
            assert error.max().item() == 0
        else:
            assert error[..., band].max().item() > 1e-6  # the band is not empty of error


# --------------------------------------------------------------------------- property: success or GeoconvError

maybe_int = st.one_of(st.integers(-1, 6), st.sampled_from(["3", True, 2.0, None]))
maybe_pair = st.one_of(maybe_int, st.tuples(st.integers(-1, 5), st.integers(-1, 5)), st.just((1, 2, 3)))
maybe_padding = st.one_of(
    st.sampled_from(["same", "valid", "SAME", "full", None]),
    st.integers(-1, 4),
    st.tuples(st.integers(-1, 3), st.integers(0, 3)),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(-1, 3)),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
)
maybe_mode = st.sampled_from([*MODES, "reflection", "wrap", None, 1])


@st.composite
def random_params(draw):
    pool = {
        "kernel_size": maybe_pair,
        "stride": maybe_pair,
        "dilation": maybe_pair,
        "padding": maybe_padding,
        "groups": st.one_of(st.integers(-1, 4), st.just("1")),
        "padding_mode": maybe_mode,
        "bias": st.sampled_from([True, False, 1]),
        "kernal_size": st.just(3),
    }
    params = {}
    for key, strategy in pool.items():
        if draw(st.booleans()) if key != "kernal_size" else draw(st.integers(0, 9)) == 0:
            params[key] = draw(strategy)
    return params


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _valid_pair(value, minimum):
    def ok(v):
        return type(v) is int and v >= minimum

    if type(value) is int:
        return ok(value)
    return isinstance(value, tuple) and len(value) == 2 and all(ok(v) for v in value)


def expected_config_ok(params, cin, cout):
    """Whether ``build_op`` must accept these parameters (None: either answer is fine)."""
    if "kernal_size" in params:
        return False
    for key in ("kernel_size", "stride", "dilation"):
        if key in params and not _valid_pair(params[key], 1):
            return False
    padding = params.get("padding", "same")
    if padding in ("SAME",):
        return None  # case variants of "same": accepting or rejecting them are both reasonable
    if padding not in ("same", "valid"):
        ok = type(padding) is int and padding >= 0
        ok = ok or (
            isinstance(padding, tuple) and len(padding) in (2, 4) and all(type(p) is int and p >= 0 for p in padding)
        )
        if not ok:
            return False
    groups = params.get("groups", 1)
    if type(groups) is not int or groups < 1 or cin % groups or cout % groups:
        return False
    if params.get("padding_mode") not in (*MODES, None):
        return False
    return type(params.get("bias", True)) is bool


@settings(max_examples=60, deadline=None)
@given(
    params=random_params(),
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    size=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    wrong_channels=st.booleans(),
)
def test_random_params_build_and_run_or_raise_geoconv_error(params, cin, cout, size, wrong_channels):
    expected = expected_config_ok(params, cin, cout)
    try:
        op = build_op("conv", cin, cout, grid="planar", **params)
    except GeoconvError:
        assert expected is not True, params
        return
    assert expected is not False, params

    cfg = op.config
    kernel, stride, dilation = _pair(cfg.kernel_size), _pair(cfg.stride), _pair(cfg.dilation)
    padding = params.get("padding", "same")
    padding = padding.lower() if isinstance(padding, str) else padding
    mode = params.get("padding_mode") or "zeros"
    widths = pad_widths(padding, size, kernel, stride, dilation)
    try:
        predicted = tuple(
            conv_output_size(size[a], kernel[a], stride[a], widths[2 * a : 2 * a + 2], dilation[a]) for a in range(2)
        )
    except GeoconvError:
        predicted = None
    runnable = (
        predicted is not None
        and not wrong_channels
        and all(fits(size[a], kernel[a], stride[a], dilation[a], padding, a, mode) for a in range(2))
    )
    x = torch.zeros(1, cin + wrong_channels, *size)
    try:
        y = op(x)
    except GeoconvError:
        assert not runnable, (params, size)
        return
    assert runnable, (params, size)
    assert tuple(y.shape) == (1, cout, *predicted)
    if padding == "same":
        assert predicted == (math.ceil(size[0] / stride[0]), math.ceil(size[1] / stride[1]))
