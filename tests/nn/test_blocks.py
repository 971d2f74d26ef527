"""Blocks against hand-written torch.nn.functional compositions of their own weights."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import get_grid
from geoconv.nn import ClassicBlock, DecoderBlock, EncoderBlock, Head
from geoconv.ops.registry import register_op, unregister_op

EPS = 1e-5


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME: output ceil(size / stride), the odd extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_same(x: torch.Tensor, conv: nn.Module, stride: int = 1, dilation: int = 1, mode: str = "constant"):
    """F.conv2d with TF-same padding, from the weights of a geoconv conv op."""
    kh, kw = conv.weight.shape[-2:]
    top, bottom = tf_same_padding(x.shape[-2], kh, stride, dilation)
    left, right = tf_same_padding(x.shape[-1], kw, stride, dilation)
    padded = F.pad(x, (left, right, top, bottom), mode=mode)
    return F.conv2d(padded, conv.weight, conv.bias, stride=stride, dilation=dilation)


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine parameters and running statistics, so norms are not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, nn.BatchNorm1d | nn.InstanceNorm1d | nn.GroupNorm):
                if child.weight is not None:
                    child.weight.copy_(1 + 0.5 * torch.randn(child.weight.shape, generator=generator))
                    child.bias.copy_(torch.randn(child.bias.shape, generator=generator))
                if getattr(child, "running_mean", None) is not None:
                    child.running_mean.copy_(torch.randn(child.running_mean.shape, generator=generator))
                    child.running_var.copy_(torch.rand(child.running_var.shape, generator=generator) + 0.5)
    return module


def batch_norm(y: torch.Tensor, norm: nn.Module, training: bool) -> torch.Tensor:
    return F.batch_norm(y, norm.running_mean, norm.running_var, norm.weight, norm.bias, training, 0.0, EPS)


# --- EncoderBlock -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(16, 16), (15, 20), (7, 9)])
@pytest.mark.parametrize("kernel_size, dilation", [(3, 1), (4, 1), (3, 2)])
def test_encoder_plain_is_same_padded_strided_conv(size, kernel_size, dilation):
    block = EncoderBlock(3, 5, norm="none", activation="identity", kernel_size=kernel_size, dilation=dilation)
    x = torch.randn(2, 3, *size)
    y = block(x)
    assert y.shape == (2, 5, -(-size[0] // 2), -(-size[1] // 2))
    torch.testing.assert_close(y, conv_same(x, block.conv, stride=2, dilation=dilation))


def test_encoder_batch_norm_eval_uses_running_stats():
    block = randomise(EncoderBlock(3, 4)).eval()
    x = torch.randn(2, 3, 12, 10)
    expected = torch.relu(batch_norm(conv_same(x, block.conv, stride=2), block.norm, training=False))
    torch.testing.assert_close(block(x), expected)


def test_encoder_batch_norm_train_uses_batch_stats():
    block = randomise(EncoderBlock(3, 4, activation="leaky_relu"))
    x = torch.randn(3, 3, 9, 9)
    running_mean = block.norm.running_mean.clone()
    y = conv_same(x, block.conv, stride=2)
    mean = y.mean(dim=(0, 2, 3), keepdim=True)
    var = y.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
    weight, bias = block.norm.weight.view(1, -1, 1, 1), block.norm.bias.view(1, -1, 1, 1)
    expected = F.leaky_relu((y - mean) / torch.sqrt(var + EPS) * weight + bias, 0.2)
    torch.testing.assert_close(block(x), expected)
    torch.testing.assert_close(block.norm.running_mean, 0.9 * running_mean + 0.1 * mean.flatten())


def test_encoder_group_norm_and_circular_padding():
    block = randomise(EncoderBlock(2, 6, norm="group", norm_groups=3, padding_mode="circular", activation="tanh"))
    x = torch.randn(2, 2, 10, 8)
    y = conv_same(x, block.conv, stride=2, mode="circular")
    expected = torch.tanh(F.group_norm(y, 3, block.norm.weight, block.norm.bias, EPS))
    torch.testing.assert_close(block(x), expected)


def test_encoder_instance_norm():
    block = EncoderBlock(3, 4, norm="instance", stride=1, activation="elu")
    x = torch.randn(2, 3, 6, 6)
    expected = F.elu(F.instance_norm(conv_same(x, block.conv), eps=EPS))
    torch.testing.assert_close(block(x), expected)


def test_encoder_with_pool_is_stride_one_conv_then_pool():
    block = randomise(EncoderBlock(3, 4, pool="max_pool")).eval()
    assert block.conv.config.stride == (1, 1)
    x = torch.randn(2, 3, 12, 8)
    y = batch_norm(conv_same(x, block.conv), block.norm, training=False)
    torch.testing.assert_close(block(x), torch.relu(F.max_pool2d(y, 2)))


def test_encoder_pool_params_reach_the_pool():
    block = EncoderBlock(2, 3, norm="none", pool="avg_pool", pool_params={"kernel_size": 3, "stride": 3})
    x = torch.randn(1, 2, 9, 9)
    torch.testing.assert_close(block(x), torch.relu(F.avg_pool2d(conv_same(x, block.conv), 3, 3)))


def test_encoder_padding_mode_reaches_conv_and_blur_pool():
    block = EncoderBlock(2, 3, pool="blur_pool", padding_mode="circular", norm="none", activation="identity")
    assert block.pool.padding_mode == "circular"
    x = torch.randn(1, 2, 8, 10)
    y = conv_same(x, block.conv, mode="circular")
    taps = torch.tensor([1.0, 2.0, 1.0]) / 4
    blur = torch.outer(taps, taps).expand(3, 1, 3, 3)
    expected = F.conv2d(F.pad(y, (0, 1, 0, 1), mode="circular"), blur, stride=2, groups=3)
    torch.testing.assert_close(block(x), expected)
    assert EncoderBlock(2, 3, pool="blur_pool").pool.padding_mode == "reflect"  # None keeps the op's default


def test_encoder_with_aps_pool_is_circular_shift_equivariant():
    """Circular conv, batch norm, APS and relu: a one-pixel shift moves the output by a whole pixel or not at all."""
    block = EncoderBlock(2, 3, pool="aps_pool", padding_mode="circular").eval()
    x = torch.randn(1, 2, 8, 8)
    y, shifted = block(x), block(torch.roll(x, shifts=(1, 1), dims=(2, 3)))
    assert y.shape == (1, 3, 4, 4)
    candidates = [torch.roll(y, shifts=(a, b), dims=(2, 3)) for a in (0, 1) for b in (0, 1)]
    assert any(torch.allclose(shifted, c, atol=1e-5) for c in candidates)


def test_encoder_swaps_the_conv_op():
    block = EncoderBlock(
        3, 4, conv="gated_conv", conv_params={"activation": "relu"}, norm="none", activation="identity"
    )
    x = torch.randn(2, 3, 8, 8)
    kernels = block.conv.kernels()
    feature = F.conv2d(F.pad(x, (0, 1, 0, 1)), kernels["feature_weight"], kernels["feature_bias"], stride=2)
    gate = F.conv2d(F.pad(x, (0, 1, 0, 1)), kernels["gate_weight"], kernels["gate_bias"], stride=2)
    torch.testing.assert_close(block(x), torch.relu(feature) * torch.sigmoid(gate))


def test_encoder_conv_params_reach_the_conv():
    block = EncoderBlock(4, 8, conv_params={"bias": False, "groups": 2})
    assert block.conv.bias is None
    assert block.conv.weight.shape == (8, 2, 3, 3)
    assert [name for name, _ in block.named_children()] == ["conv", "norm", "pool", "act"]
    assert isinstance(block.pool, nn.Identity)


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    stride=st.integers(1, 3),
    kernel_size=st.integers(1, 4),
    dilation=st.integers(1, 2),
)
def test_encoder_any_geometry_matches_reference(height, width, stride, kernel_size, dilation):
    block = EncoderBlock(
        2, 3, stride=stride, kernel_size=kernel_size, dilation=dilation, norm="none", activation="identity"
    )
    x = torch.randn(1, 2, height, width)
    y = block(x)
    assert y.shape[-2:] == (-(-height // stride), -(-width // stride))
    torch.testing.assert_close(y, conv_same(x, block.conv, stride=stride, dilation=dilation))


# --- DecoderBlock -------------------------------------------------------------------------


def test_decoder_conv_transpose_with_skip_is_the_hand_composition():
    block = randomise(
        DecoderBlock(
            6, 4, upsample="conv_transpose", upsample_params={"padding": 1, "output_padding": 1}, skip_channels=2
        )
    ).eval()
    x, skip = torch.randn(2, 6, 5, 7), torch.randn(2, 2, 10, 14)
    assert block.up.weight.shape == (6, 4, 3, 3)  # a transposed conv maps in -> out channels
    up = F.conv_transpose2d(x, block.up.weight, block.up.bias, stride=2, padding=1, output_padding=1)
    joined = torch.cat([up, skip], dim=1)
    expected = torch.relu(batch_norm(conv_same(joined, block.conv), block.norm, training=False))
    torch.testing.assert_close(block(x, skip), expected)


@pytest.mark.parametrize("target", [(10, 14), (9, 13)])
def test_decoder_same_transposed_conv_reaches_the_skip_size(target):
    block = DecoderBlock(3, 2, upsample="conv_transpose", skip_channels=1, norm="none", activation="identity")
    x, skip = torch.randn(1, 3, 5, 7), torch.randn(1, 1, *target)
    # "same" makes it the adjoint of a same-padded stride-2 conv on the target: crop that conv's top/left padding.
    full = F.conv_transpose2d(x, block.up.weight, block.up.bias, stride=2)
    top, left = tf_same_padding(target[0], 3, 2)[0], tf_same_padding(target[1], 3, 2)[0]
    assert (top, left) == ((0, 0) if target == (10, 14) else (1, 1))
    up = full[..., top : top + target[0], left : left + target[1]]
    expected = conv_same(torch.cat([up, skip], dim=1), block.conv)
    torch.testing.assert_close(block(x, skip=skip), expected)


def test_decoder_without_skip_and_output_size():
    block = DecoderBlock(3, 2, upsample="conv_transpose", norm="none", activation="identity")
    x = torch.randn(1, 3, 4, 4)
    assert block(x).shape == (1, 2, 8, 8)
    assert block(x, output_size=(7, 8)).shape == (1, 2, 7, 8)
    assert block(x, output_size=7).shape == (1, 2, 7, 7)
    with pytest.raises(ShapeError, match="not reachable"):
        block(x, output_size=(12, 8))
    with pytest.raises(ParameterError, match="output_size"):
        block(x, output_size=(0, 8))
    assert block.conv.weight.shape[1] == 2  # no skip: the conv sees the upsampled channels only


def test_decoder_bilinear_with_skip_is_the_hand_composition():
    block = randomise(DecoderBlock(6, 4, skip_channels=3, norm="group", norm_groups=2))
    x, skip = torch.randn(2, 6, 4, 5), torch.randn(2, 3, 8, 10)
    assert block.conv.weight.shape == (4, 9, 3, 3)  # upsample keeps in_channels: 6 + 3
    up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    joined = torch.cat([up, skip], dim=1)
    expected = torch.relu(F.group_norm(conv_same(joined, block.conv), 2, block.norm.weight, block.norm.bias, EPS))
    torch.testing.assert_close(block(x, skip), expected)


def test_decoder_bilinear_skip_mismatch_names_both_shapes():
    block = DecoderBlock(4, 2, skip_channels=1)
    with pytest.raises(ShapeError, match=r"skip.*\(9, 9\).*\(8, 8\)"):
        block(torch.randn(1, 4, 4, 4), torch.randn(1, 1, 9, 9))


def test_decoder_bilinear_output_size_it_cannot_reach():
    block = DecoderBlock(2, 2, upsample_params={"mode": "nearest"})
    x = torch.randn(1, 2, 4, 4)
    assert block(x, output_size=(8, 8)).shape == (1, 2, 8, 8)
    with pytest.raises(ShapeError, match=r"output_size=\(7, 7\) is not reachable.*\(1, 2, 8, 8\)"):
        block(x, output_size=(7, 7))


def test_decoder_unreachable_skip_names_both_shapes():
    block = DecoderBlock(4, 2, upsample="conv_transpose", skip_channels=1)
    with pytest.raises(ShapeError, match=r"x \(1, 4, 4, 4\).*skip \(1, 1, 12, 12\)"):
        block(torch.randn(1, 4, 4, 4), torch.randn(1, 1, 12, 12))


def test_decoder_skip_errors():
    with_skip = DecoderBlock(4, 2, upsample="conv_transpose", skip_channels=3)
    without = DecoderBlock(4, 2, upsample="conv_transpose")
    x = torch.randn(1, 4, 4, 4)
    with pytest.raises(ShapeError, match="skip_channels=3; pass skip"):
        with_skip(x)
    with pytest.raises(ShapeError, match="skip_channels=0"):
        without(x, torch.randn(1, 3, 8, 8))
    with pytest.raises(ShapeError, match=r"skip must have shape .*C_skip=3.*got \(1, 2, 8, 8\)"):
        with_skip(x, torch.randn(1, 2, 8, 8))
    with pytest.raises(ShapeError, match="skip must have shape"):
        with_skip(x, torch.randn(2, 3, 8, 8))
    with pytest.raises(ShapeError, match="skip must be a torch.Tensor"):
        with_skip(x, [[0.0]])
    with pytest.raises(ShapeError, match=r"skip must have the layout of x.*\(3, 8\)"):
        with_skip(x, torch.randn(3, 8))
    with pytest.raises(ParameterError, match="either skip .* or output_size"):
        with_skip(x, torch.randn(1, 3, 8, 8), output_size=(8, 8))


# --- ClassicBlock and Head ----------------------------------------------------------------


@pytest.mark.parametrize(
    "pool, reference",
    [
        ("max_pool", F.max_pool2d),
        ("avg_pool", F.avg_pool2d),
        (None, None),
    ],
)
def test_classic_block_is_the_functional_composition(pool, reference):
    block = ClassicBlock(3, 5, pool=pool, activation="silu")
    x = torch.randn(2, 3, 11, 8)
    y = F.silu(conv_same(F.silu(conv_same(x, block.conv1)), block.conv2))
    expected = y if reference is None else reference(y, 2)
    torch.testing.assert_close(block(x), expected)
    assert [name for name, _ in block.named_children()] == [
        "conv1",
        "norm1",
        "act1",
        "conv2",
        "norm2",
        "act2",
        "pool",
    ]


def test_classic_block_with_batch_norm_and_dilation():
    block = randomise(ClassicBlock(2, 4, norm="batch", dilation=2, pool=None)).eval()
    x = torch.randn(2, 2, 9, 9)
    y = torch.relu(batch_norm(conv_same(x, block.conv1, dilation=2), block.norm1, training=False))
    y = torch.relu(batch_norm(conv_same(y, block.conv2, dilation=2), block.norm2, training=False))
    torch.testing.assert_close(block(x), y)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_head_with_sigmoid(kernel_size):
    head = Head(6, 2, kernel_size=kernel_size, sigmoid=True)
    x = torch.randn(2, 6, 7, 5) * 3
    y = head(x)
    assert ((y > 0) & (y < 1)).all()
    torch.testing.assert_close(y, torch.sigmoid(conv_same(x, head.conv)))


def test_head_without_sigmoid_is_the_conv():
    head = Head(4, 3)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(head(x), F.conv2d(x, head.conv.weight, head.conv.bias))
    assert isinstance(head.act, nn.Identity)


# --- stacks, gradients ----------------------------------------------------------------------


def unet(upsample: str) -> nn.ModuleList:
    return nn.ModuleList(
        [
            EncoderBlock(3, 8),
            EncoderBlock(8, 16),
            DecoderBlock(16, 8, upsample=upsample, skip_channels=8),
            DecoderBlock(8, 4, upsample=upsample, skip_channels=3),
            Head(4, 2, sigmoid=True),
        ]
    )


def run_unet(blocks: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    e1 = blocks[0](x)
    e2 = blocks[1](e1)
    d1 = blocks[2](e2, e1)
    d0 = blocks[3](d1, x)
    return [e1, e2, d1, d0, blocks[4](d0)]


@pytest.mark.parametrize(
    "upsample, size",
    [
        ("conv_transpose", (16, 16)),
        ("conv_transpose", (13, 10)),  # odd sizes reached through the skip's size
        ("conv_transpose", (9, 7)),
        ("upsample", (16, 12)),
    ],
)
def test_unet_round_trip_sizes(upsample, size):
    blocks = unet(upsample)
    x = torch.randn(2, 3, *size)
    e1, e2, d1, d0, out = run_unet(blocks, x)
    half = (-(-size[0] // 2), -(-size[1] // 2))
    quarter = (-(-half[0] // 2), -(-half[1] // 2))
    assert e1.shape == (2, 8, *half)
    assert e2.shape == (2, 16, *quarter)
    assert d1.shape == (2, 8, *half)
    assert d0.shape == (2, 4, *size)
    assert out.shape == (2, 2, *size)


def test_decoder_doubles_without_skip():
    enc = EncoderBlock(3, 4)
    dec = DecoderBlock(4, 3, upsample="conv_transpose")
    assert dec(enc(torch.randn(1, 3, 12, 20))).shape == (1, 3, 12, 20)


def test_gradients_reach_every_parameter():
    blocks = unet("conv_transpose")
    blocks.append(ClassicBlock(2, 3, norm="group", norm_groups=1, pool=None))
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    *_, out = run_unet(blocks, x)
    loss = (blocks[5](out) - 0.3).square().mean()
    loss.backward()
    for name, parameter in blocks.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_blocks_run_in_float64():
    block = EncoderBlock(2, 4).double()
    assert block(torch.randn(2, 2, 6, 6, dtype=torch.float64)).dtype == torch.float64


# --- the blocks on a faced layout (B, C, faces, F, F) --------------------------------------


@dataclass
class PointwiseConfig:
    kernel_size: int = 1


@dataclass
class RepeatConfig:
    scale_factor: int = 2


class Pointwise(nn.Module):
    """A 1x1 conv for any (B, C, *spatial) layout; it has no stride, dilation or padding mode."""

    def __init__(self, in_channels, out_channels, grid="planar", config=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))

    def forward(self, x):
        return torch.einsum("oc,bc...->bo...", self.weight, x)


class Repeat(nn.Module):
    """Nearest upsampling of the last two dims, for any layout."""

    def __init__(self, in_channels, out_channels, grid="planar", config=None):
        super().__init__()
        self.factor = config.scale_factor

    def forward(self, x):
        return x.repeat_interleave(self.factor, -1).repeat_interleave(self.factor, -2)


@pytest.fixture
def faced_ops():
    register_op("test_nn_pointwise", grids=("planar", "cubemap"), config=PointwiseConfig)(Pointwise)
    register_op("test_nn_repeat", grids=("planar", "cubemap"), config=RepeatConfig, same_channels=True)(Repeat)
    yield
    unregister_op("test_nn_pointwise")
    unregister_op("test_nn_repeat")


def _area_moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Batch-norm statistics on the sphere: every pixel counts by its solid angle, over the batch.
    areas = torch.as_tensor(get_grid("cubemap").pixel_areas(y.shape[-1]), dtype=y.dtype)
    w = areas / (y.shape[0] * areas.sum())
    mean = (y * w).sum(dim=(0, 2, 3, 4), keepdim=True)
    return mean, ((y - mean) ** 2 * w).sum(dim=(0, 2, 3, 4), keepdim=True)


def test_blocks_on_a_cubemap_layout(faced_ops):
    """Norm statistics over all faces (weighted by solid angle), the skip concatenated, nothing assumes 4-D."""
    enc = EncoderBlock(3, 4, grid="cubemap", conv="test_nn_pointwise", kernel_size=1, stride=1)
    dec = DecoderBlock(
        4, 2, grid="cubemap", upsample="test_nn_repeat", conv="test_nn_pointwise", kernel_size=1, skip_channels=3
    )
    x = torch.randn(2, 3, 6, 4, 4)
    low = torch.randn(2, 4, 6, 2, 2)
    y = torch.einsum("oc,bc...->bo...", enc.conv.weight, x)
    mean, var = _area_moments(y)
    torch.testing.assert_close(enc(x), torch.relu((y - mean) / torch.sqrt(var + EPS)))
    out = dec(low, skip=x)
    assert out.shape == (2, 2, 6, 4, 4)
    joined = torch.cat([low.repeat_interleave(2, -1).repeat_interleave(2, -2), x], dim=1)
    y = torch.einsum("oc,bc...->bo...", dec.conv.weight, joined)
    mean, var = _area_moments(y)
    torch.testing.assert_close(out, torch.relu((y - mean) / torch.sqrt(var + EPS)))
    with pytest.raises(ShapeError, match=r"skip's spatial shape \(6, 3, 3\) differs .* \(6, 4, 4\)"):
        dec(low, skip=torch.randn(2, 3, 6, 3, 3))


def test_op_without_stride_refuses_a_stride(faced_ops):
    with pytest.raises(UnknownNameError, match="stride"):
        EncoderBlock(3, 4, conv="test_nn_pointwise", kernel_size=1)  # stride 2 asks for something
    with pytest.raises(UnknownNameError, match="dilation"):
        ClassicBlock(3, 4, conv="test_nn_pointwise", kernel_size=1, dilation=2, pool=None)


def test_grid_the_op_does_not_support():
    with pytest.raises(GeoconvError, match="does not support grid 'cubemap'"):
        EncoderBlock(3, 4, grid="cubemap", conv="spectral_conv", stride=1, kernel_size=1)
    with pytest.raises(UnknownNameError, match="unknown grid: 'plane'; did you mean 'planar'"):
        Head(3, 4, grid="plane")


# --- bad arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: EncoderBlock(3, 4, conv="cnv"), r"unknown conv op: 'cnv'; did you mean 'conv'"),
        (lambda: EncoderBlock(3, 4, pool="maxpool"), r"unknown pool op: 'maxpool'"),
        (lambda: DecoderBlock(3, 4, upsample="conv_transpse"), r"unknown upsample op.*'conv_transpose'"),
        (lambda: ClassicBlock(3, 4, pool="avgpool"), r"unknown pool op"),
        (lambda: Head(3, 4, conv=None), r"unknown conv op"),
        (lambda: EncoderBlock(3, 4, norm="btach"), r"unknown norm: 'btach'; did you mean 'batch'"),
        (lambda: DecoderBlock(3, 4, upsample="conv_transpose", norm="layer"), r"unknown norm"),
        (lambda: EncoderBlock(3, 4, activation="rleu"), r"unknown activation: 'rleu'; did you mean 'relu'"),
        (lambda: ClassicBlock(3, 4, activation="swish", pool=None), r"unknown activation"),
    ],
)
def test_unknown_names_suggest(make, match):
    with pytest.raises(UnknownNameError, match=match):
        make()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: EncoderBlock(0, 4), "in_channels"),
        (lambda: EncoderBlock(3, -1), "out_channels"),
        (lambda: DecoderBlock(3.0, 4, upsample="conv_transpose"), "in_channels"),
        (lambda: ClassicBlock(3, 0, pool=None), "out_channels"),
        (lambda: Head(3, True), "out_channels"),
        (lambda: DecoderBlock(3, 4, upsample="conv_transpose", skip_channels=-1), "skip_channels"),
        (lambda: EncoderBlock(3, 4, stride=0), "stride"),
        (lambda: EncoderBlock(3, 4, kernel_size=0), "kernel_size"),
        (lambda: ClassicBlock(3, 4, dilation=(1, 0), pool=None), r"dilation\[1\]"),
        (lambda: Head(3, 4, kernel_size=-1), "kernel_size"),
        (lambda: Head(3, 4, sigmoid="yes"), "sigmoid"),
        (lambda: EncoderBlock(3, 4, norm="group", norm_groups=3), "groups=3"),
        (lambda: EncoderBlock(3, 4, conv_params=[("bias", False)]), "conv_params must be a mapping"),
        (lambda: EncoderBlock(3, 4, conv_params={"stride": 1}), "conv_params sets 'stride'"),
        (lambda: Head(3, 4, conv_params={"padding_mode": "zeros"}), "conv_params sets 'padding_mode'"),
        (lambda: EncoderBlock(3, 4, pool_params={"kernel_size": 2}), "pool_params.*without a pool"),
        (lambda: ClassicBlock(3, 4, pool_params={"padding_mode": "zeros"}), "pool_params sets 'padding_mode'"),
        (lambda: DecoderBlock(3, 4, upsample_params=5), "upsample_params must be a mapping"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(GeoconvError, match=match):
        make()


def test_unknown_op_parameter_names_the_key():
    with pytest.raises(UnknownNameError, match=r"parameter of op 'conv': 'bais'; did you mean 'bias'"):
        EncoderBlock(3, 4, conv_params={"bais": False})
    with pytest.raises(UnknownNameError, match="padding_mode"):
        EncoderBlock(3, 4, padding_mode="reflection")
