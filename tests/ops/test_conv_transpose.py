"""Tests of ``conv_transpose``: the adjoint of ``conv``, and torch's ``conv_transpose2d``.

With a conv weight of shape ``(O, I/g, kh, kw)`` (mapping I -> O channels) used unchanged
as the weight of a transposed conv mapping O -> I channels,

.. math:: \\langle \\mathrm{conv}\\,x, y\\rangle = \\langle x, \\mathrm{conv}^\\top y\\rangle

for every ``x`` and ``y``. The references are that inner product, the vector-Jacobian
product of ``conv`` computed by autograd (which *is* the adjoint applied to ``y``), and
``torch.nn.functional.conv_transpose2d``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geoconv import build_op
from geoconv.errors import GeoconvError
from geoconv.ops.conv import ConvTranspose
from geoconv.sizes import conv_transpose_output_size

DTYPE = torch.float64


def randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=DTYPE)


def full_size(n: int, k: int, s: int, d: int, p: int, output_padding: int = 0) -> int:
    """torch's transposed-conv output size, written out: (n - 1)s - 2p + d(k - 1) + 1 + output_padding."""
    return (n - 1) * s - 2 * p + d * (k - 1) + 1 + output_padding


def shared_pair(generator, channels_in, channels_out, groups, conv_params, transpose_params):
    """A ``conv`` (I -> O) and a ``conv_transpose`` (O -> I) sharing one random weight, no bias."""
    conv = build_op("conv", channels_in, channels_out, groups=groups, bias=False, **conv_params).to(DTYPE)
    convt = build_op("conv_transpose", channels_out, channels_in, groups=groups, bias=False, **transpose_params)
    convt = convt.to(DTYPE)
    assert isinstance(convt, ConvTranspose)
    assert convt.weight.shape == conv.weight.shape
    with torch.no_grad():
        conv.weight.copy_(randn(generator, *conv.weight.shape))
        convt.weight.copy_(conv.weight)
    return conv, convt


def assert_adjoint(conv, convt, x, y, **call):
    """Inner products and the autograd VJP both say ``convt`` is the adjoint of ``conv``."""
    x = x.clone().requires_grad_(True)
    cx = conv(x)
    assert cx.shape == y.shape
    ty = convt(y, **call)
    assert ty.shape == x.shape
    lhs, rhs = (cx * y).sum().item(), (x * ty).sum().item()
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs), cx.norm().item() * y.norm().item())
    (vjp,) = torch.autograd.grad(cx, x, y)
    torch.testing.assert_close(ty.detach(), vjp, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- int padding: torch and the adjoint


@st.composite
def transpose_cases(draw):
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    op = tuple(draw(st.integers(0, max(s[a], d[a]) - 1)) for a in range(2))
    n = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    groups = draw(st.sampled_from([1, 2]))
    return dict(
        k=k,
        s=s,
        d=d,
        p=p,
        op=op,
        n=n,
        groups=groups,
        cin=groups * draw(st.integers(1, 2)),
        cout=groups * draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        padding_as_int=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(max_examples=40, deadline=None)
@given(transpose_cases())
def test_matches_torch_conv_transpose2d(case):
    generator = torch.Generator().manual_seed(case["seed"])
    padding = case["p"][0] if case["padding_as_int"] else case["p"]
    p = (padding, padding) if isinstance(padding, int) else padding
    op = build_op(
        "conv_transpose",
        case["cin"],
        case["cout"],
        kernel_size=case["k"],
        stride=case["s"],
        dilation=case["d"],
        padding=padding,
        output_padding=case["op"],
        groups=case["groups"],
        bias=case["bias"],
    ).to(DTYPE)
    with torch.no_grad():
        for parameter in op.parameters():
            parameter.copy_(randn(generator, *parameter.shape))
    x = randn(generator, 2, case["cin"], *case["n"])
    sizes = [full_size(case["n"][a], case["k"][a], case["s"][a], case["d"][a], p[a], case["op"][a]) for a in range(2)]
    if (
        min(sizes) < 1
        or min(full_size(case["n"][a], case["k"][a], case["s"][a], case["d"][a], p[a]) for a in range(2)) < 1
    ):
        with pytest.raises(GeoconvError, match="padding"):
            op(x)
        return
    expected = F.conv_transpose2d(x, op.weight, op.bias, case["s"], p, case["op"], case["groups"], case["d"]).detach()
    got = op(x).detach()
    assert tuple(got.shape) == (2, case["cout"], *sizes)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)

    # The same output asked for by size at call time, with no output_padding configured.
    plain = build_op(
        "conv_transpose",
        case["cin"],
        case["cout"],
        kernel_size=case["k"],
        stride=case["s"],
        dilation=case["d"],
        padding=padding,
        groups=case["groups"],
        bias=case["bias"],
    ).to(DTYPE)
    plain.load_state_dict(op.state_dict())
    torch.testing.assert_close(plain(x, output_size=sizes).detach(), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(plain(x, output_size=expected.shape).detach(), expected, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(transpose_cases())
def test_int_padding_is_the_adjoint_of_conv(case):
    # output_padding < stride keeps the conv of the transposed output at the input size.
    op = tuple(min(case["op"][a], case["s"][a] - 1) for a in range(2))
    sizes = [full_size(case["n"][a], case["k"][a], case["s"][a], case["d"][a], case["p"][a], op[a]) for a in range(2)]
    assume(min(full_size(case["n"][a], case["k"][a], case["s"][a], case["d"][a], case["p"][a]) for a in range(2)) >= 1)
    generator = torch.Generator().manual_seed(case["seed"])
    common = dict(kernel_size=case["k"], stride=case["s"], dilation=case["d"], padding=case["p"])
    conv, convt = shared_pair(
        generator, case["cin"], case["cout"], case["groups"], common, {**common, "output_padding": op}
    )
    x = randn(generator, 2, case["cin"], *sizes)
    y = randn(generator, 2, case["cout"], *case["n"])
    assert_adjoint(conv, convt, x, y)


def test_seed_style_example():
    # One input pixel scatters the kernel, scaled by its value: [[2]] * k with stride 2.
    op = build_op("conv_transpose", 1, 1, kernel_size=2, stride=2, padding=0, bias=False).to(DTYPE)
    with torch.no_grad():
        op.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=DTYPE)[None, None])
    y = op(torch.tensor([[[[2.0, -1.0]]]], dtype=DTYPE))
    assert y[0, 0].tolist() == [[2.0, 4.0, -1.0, -2.0], [6.0, 8.0, -3.0, -4.0]]


# --------------------------------------------------------------------------- "same": the adjoint of a "same" conv


@pytest.mark.parametrize(
    ("kernel", "stride", "dilation", "groups"),
    [
        (3, 1, 1, 1),
        (3, 2, 1, 1),
        (4, 2, 1, 2),
        (2, 3, 1, 1),
        ((5, 2), (1, 3), (1, 2), 1),
        (3, 2, 2, 2),
        (1, 2, 1, 1),
        (4, 3, 3, 1),
    ],
)
def test_same_is_the_adjoint_of_same_conv_for_every_reachable_size(kernel, stride, dilation, groups):
    generator = torch.Generator().manual_seed(3)
    common = dict(kernel_size=kernel, stride=stride, dilation=dilation, padding="same")
    conv, convt = shared_pair(generator, 2 * groups, 3 * groups, groups, common, common)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    n = (4, 3)
    y = randn(generator, 1, 3 * groups, *n)
    assert tuple(convt(y).shape[-2:]) == (n[0] * sh, n[1] * sw)  # the default output size
    # Every N with ceil(N / s) == n is reachable; output_size picks it.
    for big_h in range((n[0] - 1) * sh + 1, n[0] * sh + 1):
        for big_w in range((n[1] - 1) * sw + 1, n[1] * sw + 1):
            x = randn(generator, 1, 2 * groups, big_h, big_w)
            assert_adjoint(conv, convt, x, y, output_size=(big_h, big_w))


@settings(max_examples=40, deadline=None)
@given(
    n=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    k=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**31 - 1),
)
def test_same_adjoint_hypothesis(n, k, s, d, seed):
    generator = torch.Generator().manual_seed(seed)
    common = dict(kernel_size=k, stride=s, dilation=d, padding="same")
    conv, convt = shared_pair(generator, 2, 2, 1, common, common)
    small = tuple(-(-n[a] // s[a]) for a in range(2))
    x = randn(generator, 1, 2, *n)
    y = randn(generator, 1, 2, *small)
    assert_adjoint(conv, convt, x, y, output_size=n)


# --------------------------------------------------------------------------- bias and call-time sizes


def test_bias_is_added_once_per_output_channel():
    op = build_op("conv_transpose", 2, 3, kernel_size=3, stride=2).to(DTYPE)
    x = torch.zeros(1, 2, 3, 3, dtype=DTYPE)
    y = op(x)
    torch.testing.assert_close(y, op.bias.detach().view(1, 3, 1, 1).expand_as(y))


def test_output_size_forms():
    op = build_op("conv_transpose", 1, 1, kernel_size=3, stride=2)
    x = torch.zeros(1, 1, 4, 5)
    assert op(torch.zeros(1, 1, 4, 4), output_size=7).shape == (1, 1, 7, 7)
    assert op(x, output_size=[7, 9]).shape == (1, 1, 7, 9)
    assert op(x, output_size=torch.Size([1, 1, 8, 10])).shape == (1, 1, 8, 10)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(padding_mode="reflection"), "did you mean 'reflect'"),
        (dict(padding_mode="circle"), "did you mean 'circular'"),
        (dict(padding_mode="reflection"), "did you mean 'reflect'"),
        (dict(stride=2, output_padding=2), "output_padding"),
        (dict(stride=1, dilation=1, padding=0, output_padding=1), "output_padding"),
        (dict(padding="same", output_padding=1), "output_padding"),
        (dict(padding="valid"), "padding"),
        (dict(padding=-1), "padding"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(stride=0), "stride"),
        (dict(dilation=-1), "dilation"),
        (dict(groups=4), "divisible by groups=4"),
        (dict(stride="2"), "stride"),
        (dict(kernel_size=True), "kernel_size"),
        (dict(output_size=(4, 4)), "did you mean"),
    ],
)
def test_bad_config_raises(params, match):
    with pytest.raises(GeoconvError, match=match):
        build_op("conv_transpose", 2, 6, **params)


@pytest.mark.parametrize(
    ("params", "x", "call", "match"),
    [
        (dict(padding="same", stride=2), torch.zeros(1, 2, 4, 4), dict(output_size=(9, 8)), r"output_size\[0\]=9"),
        (dict(padding="same", stride=2), torch.zeros(1, 2, 4, 4), dict(output_size=(8, 6)), r"output_size\[1\]=6"),
        (dict(padding=1, stride=2), torch.zeros(1, 2, 4, 4), dict(output_size=(10, 7)), r"\[7, 8\]"),
        (dict(padding=1, stride=2), torch.zeros(1, 2, 4, 4), dict(output_size=(8, 9)), r"output_size\[1\]=9"),
        (dict(padding=0, stride=1, dilation=3), torch.zeros(1, 2, 4, 4), dict(output_size=(9, 12)), r"\[10, 12\]"),
        (dict(padding=1, stride=2), torch.zeros(1, 2, 4, 4), dict(output_size=(6, 7)), "not reachable"),
        (dict(), torch.zeros(1, 2, 4, 4), dict(output_size=(0, 8)), "output_size"),
        (dict(), torch.zeros(1, 2, 4, 4), dict(output_size=(1, 8, 8)), "output_size"),
        (dict(), torch.zeros(1, 2, 4, 4), dict(output_size="8"), "output_size"),
        (dict(kernel_size=2, stride=1, padding=5), torch.zeros(1, 2, 4, 4), {}, "padding"),
        (dict(), torch.zeros(2, 4, 4), {}, r"\(B, C, H, W\)"),
        (dict(), torch.zeros(1, 3, 4, 4), {}, "in_channels=2"),
        (dict(), torch.zeros(1, 2, 4, 4, dtype=torch.float64), {}, "dtype"),
        (dict(), torch.zeros(1, 2, 4, 4, dtype=torch.int32), {}, "floating-point"),
    ],
)
def test_bad_input_raises(params, x, call, match):
    op = build_op("conv_transpose", 2, 4, **params)
    with pytest.raises(GeoconvError, match=match):
        op(x, **call)


maybe_pair = st.one_of(st.integers(-1, 5), st.tuples(st.integers(-1, 4), st.integers(0, 4)), st.just("2"))


@settings(max_examples=50, deadline=None)
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "kernel_size": maybe_pair,
            "stride": maybe_pair,
            "dilation": maybe_pair,
            "padding": st.one_of(maybe_pair, st.sampled_from(["same", "valid"])),
            "output_padding": maybe_pair,
            "groups": st.integers(0, 3),
            "padding_mode": st.sampled_from(["zeros", "reflect", None]),
        },
    ),
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    target=st.one_of(st.none(), st.tuples(st.integers(0, 16), st.integers(0, 16))),
)
def test_random_params_build_and_run_or_raise_geoconv_error(params, size, target):
    try:
        op = build_op("conv_transpose", 2, 2, **params)
    except GeoconvError:
        return
    cfg = op.config
    x = torch.zeros(1, 2, *size)
    try:
        y = op(x, output_size=target)
    except GeoconvError:
        return
    for a in range(2):
        k, s, d = cfg.kernel_size[a], cfg.stride[a], cfg.dilation[a]
        if target is not None:
            assert y.shape[2 + a] == target[a]
        elif cfg.padding == "same":
            assert y.shape[2 + a] == size[a] * s
        else:
            assert y.shape[2 + a] == conv_transpose_output_size(size[a], k, s, cfg.padding[a], d, cfg.output_padding[a])


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 2, "same"), (4, 2, "same"), (3, 2, 1), (3, 1, "same")])
def test_every_padding_mode_gives_the_adjoint_of_conv(mode, kernel, stride, padding):
    # The reference is conv itself (checked against F.conv2d elsewhere) through the
    # definition of the adjoint: <conv x, y> = <x, conv_transpose y> for all x and y.
    generator = torch.Generator().manual_seed(5)
    params = dict(kernel_size=kernel, stride=stride, padding=padding, padding_mode=mode, bias=False)
    conv = build_op("conv", 3, 5, **params).to(DTYPE)
    transpose = build_op("conv_transpose", 5, 3, **params).to(DTYPE)
    with torch.no_grad():
        transpose.weight.copy_(conv.weight)
    x = randn(generator, 2, 3, 9, 8)
    y = randn(generator, *conv(x).shape)
    left = (conv(x) * y).sum()
    right = (x * transpose(y, output_size=x.shape[-2:])).sum()
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)
