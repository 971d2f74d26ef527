"""Tests of ``gated_conv`` against its formula, O = phi(k_f * I) ⊙ sigma(k_g * I) (Yu et al. 2019).

The reference runs the two convolutions as two separate ``F.conv2d`` calls on an input
padded by the TensorFlow "same" formula written here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geoconv import build_op
from geoconv.errors import GeoconvError
from geoconv.ops.conv import GatedConv

DTYPE = torch.float64

PHI = {
    "identity": lambda t: t,
    "elu": F.elu,
    "relu": F.relu,
    # DeepFill v2's slope, the one geoconv documents for gated convs.
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "tanh": torch.tanh,
}


def tf_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def reference(x, weight, bias, kernel, stride, dilation, groups):
    """One plain ``F.conv2d`` with "same" zero padding by the formula."""
    top, bottom = tf_same(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = tf_same(x.shape[-1], kernel[1], stride[1], dilation[1])
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation, groups)


def make_gated(cin, cout, generator, **params):
    op = build_op("gated_conv", cin, cout, grid="planar", **params).to(DTYPE)
    assert isinstance(op, GatedConv)
    with torch.no_grad():
        for parameter in op.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=DTYPE))
    return op


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("activation", sorted(PHI))
@pytest.mark.parametrize(
    ("kernel", "stride", "dilation", "bias"),
    [((3, 3), (1, 1), (1, 1), True), ((2, 3), (2, 1), (1, 2), False), ((4, 1), (1, 3), (2, 1), True)],
)
def test_matches_formula(groups, activation, kernel, stride, dilation, bias):
    generator = torch.Generator().manual_seed(4)
    op = make_gated(
        4,
        6,
        generator,
        kernel_size=kernel,
        stride=stride,
        dilation=dilation,
        groups=groups,
        bias=bias,
        activation=activation,
    )
    x = torch.randn(2, 4, 7, 8, generator=generator, dtype=DTYPE)
    k = op.kernels()
    assert k["feature_weight"].shape == k["gate_weight"].shape == (6, 4 // groups, *kernel)
    assert (k["feature_bias"] is None) == (k["gate_bias"] is None) == (not bias)
    feature = reference(x, k["feature_weight"], k["feature_bias"], kernel, stride, dilation, groups)
    gate = reference(x, k["gate_weight"], k["gate_bias"], kernel, stride, dilation, groups)
    expected = PHI[activation](feature) * torch.sigmoid(gate)
    got = op(x)
    assert got.shape == (2, 6, -(-7 // stride[0]), -(-8 // stride[1]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def _channels(groups: int, out_channels: int, part: int) -> list[int]:
    """Channels of the inner conv holding the feature (part 0) or gate (part 1) of each group.

    The documented layout: each group holds its feature channels, then its gate channels.
    """
    per = out_channels // groups
    return [g * 2 * per + part * per + j for g in range(groups) for j in range(per)]


@pytest.mark.parametrize("groups", [1, 2, 3])
@pytest.mark.parametrize("activation", sorted(PHI))
def test_kernels_select_the_right_channels(groups, activation):
    generator = torch.Generator().manual_seed(5)
    op = make_gated(6, 6, generator, kernel_size=3, groups=groups, activation=activation)
    x = torch.randn(1, 6, 5, 6, generator=generator, dtype=DTYPE)
    gate_channels = _channels(groups, 6, 1)
    feature_channels = _channels(groups, 6, 0)
    with torch.no_grad():
        op.conv.weight[gate_channels] = 0.0
        op.conv.bias[gate_channels] = 0.0
    k = op.kernels()
    assert k["gate_weight"].abs().max().item() == 0 and k["gate_bias"].abs().max().item() == 0
    assert torch.equal(k["feature_weight"], op.conv.weight[feature_channels])
    assert torch.equal(k["feature_bias"], op.conv.bias[feature_channels])
    # The gate is sigma(0) = 1/2 everywhere: the output is half the activated features.
    feature = reference(x, k["feature_weight"], k["feature_bias"], (3, 3), (1, 1), (1, 1), groups)
    torch.testing.assert_close(op(x), 0.5 * PHI[activation](feature), rtol=0, atol=1e-12)

    # Zero the features instead: every phi here has phi(0) = 0, so the output vanishes.
    with torch.no_grad():
        op.conv.weight[feature_channels] = 0.0
        op.conv.bias[feature_channels] = 0.0
        op.conv.bias[gate_channels] = 3.0
    assert op(x).abs().max().item() == 0


def test_gate_bounds_the_output():
    # |O| <= |phi(feature)| since sigma is in (0, 1); a large gate bias opens the gate fully.
    generator = torch.Generator().manual_seed(6)
    op = make_gated(2, 2, generator, activation="identity", kernel_size=1)
    with torch.no_grad():
        op.conv.weight[_channels(1, 2, 1)] = 0.0
        op.conv.bias[_channels(1, 2, 1)] = 40.0
    x = torch.randn(1, 2, 3, 3, generator=generator, dtype=DTYPE)
    k = op.kernels()
    feature = F.conv2d(x, k["feature_weight"], k["feature_bias"])
    torch.testing.assert_close(op(x), feature, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(activation="relu6"), "activation"),
        (dict(activation="Relu"), "did you mean .*'relu'"),
        (dict(activation=1), "activation"),
        (dict(groups=4), "divisible by groups=4"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(padding_mode="reflection"), "did you mean 'reflect'"),
        (dict(kernel=3), "did you mean 'kernel_size'"),
    ],
)
def test_bad_config_raises(params, match):
    with pytest.raises(GeoconvError, match=match):
        build_op("gated_conv", 2, 6, **params)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(2, 5, 5), r"\(B, C, H, W\)"),
        (torch.zeros(1, 3, 5, 5), "in_channels=2"),
        (torch.zeros(1, 2, 5, 5, dtype=torch.float64), "dtype"),
    ],
)
def test_bad_input_raises(x, match):
    op = build_op("gated_conv", 2, 4)
    with pytest.raises(GeoconvError, match=match):
        op(x)
