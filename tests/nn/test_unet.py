"""UNet: shapes on every grid, hand-written references, exact symmetries, training, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.experiment.config import validate
from geoconv.grids import get_grid
from geoconv.nn import UNet
from geoconv.nn.build import build_model
from geoconv.nn.unet import DOWN_MODES, UP_MODES, unet_ops
from geoconv.ops.registry import get_op

CONF = Path(__file__).resolve().parents[2] / "conf"

# The grids at the sizes the brief names: (grid, shape of one batch of 2 with 3 channels).
GRID_SHAPES = [
    ("planar", (2, 3, 16, 16)),
    ("planar", (2, 3, 8, 20)),
    ("equirect", (2, 3, 8, 16)),
    ("cubemap", (2, 3, 6, 8, 8)),
    ("healpix", (2, 3, 12, 8, 8)),
]
ODD_PLANAR = [(9, 11), (7, 16), (5, 5)]
SMALL = (4, 6, 8)  # depth 2, small enough to keep every test fast


def spatial(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[2:]


def set_weights(net: torch.nn.Module, seed: int = 0) -> None:
    """Known values in every parameter (so the reference below reads the same numbers)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))


def tf_same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME split along one axis: output ceil(size / stride), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_ref(x: torch.Tensor, conv: torch.nn.Module, stride: int = 1) -> torch.Tensor:
    """F.conv2d with TF-same zero padding, from a geoconv conv's weights."""
    kh, kw = conv.weight.shape[-2:]
    (top, bottom), (left, right) = tf_same(x.shape[-2], kh, stride), tf_same(x.shape[-1], kw, stride)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, stride=stride)


def conv_transpose_ref(x: torch.Tensor, up: torch.nn.Module, out: tuple[int, int]) -> torch.Tensor:
    """The adjoint of a stride-2 TF-same zero-padded conv: scatter, then crop the padding back off."""
    kh, kw = up.weight.shape[-2:]
    top, left = tf_same(out[0], kh, 2)[0], tf_same(out[1], kw, 2)[0]
    full = F.conv_transpose2d(x, up.weight, stride=2)
    full = F.pad(full, (0, max(out[1] + kw - full.shape[-1], 0), 0, max(out[0] + kh - full.shape[-2], 0)))
    return full[..., top : top + out[0], left : left + out[1]] + up.bias.view(1, -1, 1, 1)


def blur_pool_ref(x: torch.Tensor) -> torch.Tensor:
    """[1, 2, 1] / 4 in each direction, reflect-padded TF-same, every second pixel."""
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype) / 4
    kernel = (taps[:, None] * taps[None, :]).expand(x.shape[1], 1, 3, 3)
    (top, bottom), (left, right) = tf_same(x.shape[-2], 3, 2), tf_same(x.shape[-1], 3, 2)
    return F.conv2d(F.pad(x, (left, right, top, bottom), mode="reflect"), kernel, stride=2, groups=x.shape[1])


# --- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("grid, shape", GRID_SHAPES, ids=[f"{g}-{'x'.join(map(str, s[2:]))}" for g, s in GRID_SHAPES])
@pytest.mark.parametrize("op", ["conv", "gated_conv"])
@pytest.mark.parametrize("down", DOWN_MODES)
@pytest.mark.parametrize("up", UP_MODES)
def test_output_has_the_input_shape_on_every_grid(grid, shape, op, down, up):
    net = UNet(op, 3, 2, grid=grid, widths=SMALL, down=down, up=up)
    y = net(torch.randn(shape))
    assert y.shape == (2, 2, *spatial(shape))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("size", ODD_PLANAR)
@pytest.mark.parametrize("op", ["conv", "gated_conv"])
@pytest.mark.parametrize("down", DOWN_MODES)
def test_odd_planar_sizes_round_trip_with_conv_transpose(size, op, down):
    # Every down mode maps a side n to ceil(n / 2); the transposed conv aims at the skip's size.
    net = UNet(op, 3, 1, widths=SMALL, down=down, up="conv_transpose")
    assert net(torch.randn(2, 3, *size)).shape == (2, 1, *size)


@pytest.mark.parametrize("size", ODD_PLANAR)
def test_upsample_needs_sides_divisible_by_two_to_the_depth(size):
    net = UNet("conv", 3, 1, widths=SMALL, up="upsample")
    with pytest.raises(ShapeError, match=r"up='upsample'.*2 \*\* depth = 4.*conv_transpose"):
        net(torch.randn(1, 3, *size))


@pytest.mark.parametrize("up", UP_MODES)
def test_cheb_conv_on_healpix_with_avg_pool(up):
    net = UNet("cheb_conv", 3, 2, grid="healpix", widths=SMALL, down="avg_pool", up=up)
    y = net(torch.randn(2, 3, 12, 8, 8))
    assert y.shape == (2, 2, 12, 8, 8) and torch.isfinite(y).all()


@pytest.mark.parametrize(
    "op, grid", [(op, grid) for op in unet_ops() for grid in get_op(op).grids], ids=lambda v: str(v)
)
def test_every_unet_op_on_every_grid_it_supports(op, grid):
    down = "stride" if "stride" in {p.name for p in get_op(op).parameters()} else "avg_pool"
    x = torch.randn(get_grid(grid).shape(1, 2, 8))
    y = UNet(op, 2, 3, grid=grid, widths=SMALL, down=down)(x)
    assert y.shape == (1, 3, *spatial(x.shape))


def test_depth_and_structure_follow_widths():
    net = UNet("conv", 3, 1, widths=(8, 16, 32, 64))
    assert net.depth == 3 and len(net.encoder) == 4 and len(net.decoder) == 3
    assert [b.out_channels for b in net.encoder] == [8, 16, 32, 64]
    assert [(b.in_channels, b.skip_channels, b.out_channels) for b in net.decoder] == [
        (64, 32, 32),
        (32, 16, 16),
        (16, 8, 8),
    ]
    assert net(torch.randn(1, 3, 16, 24)).shape == (1, 1, 16, 24)
    # One width: no halving, a conv block and the head.
    assert UNet("conv", 3, 2, widths=(4,)).depth == 0
    assert UNet("conv", 3, 2, widths=(4,))(torch.randn(1, 3, 7, 5)).shape == (1, 2, 7, 5)


def test_kernel_dilation_and_padding_mode_reach_every_conv():
    net = UNet(
        "conv",
        3,
        1,
        grid="equirect",
        widths=SMALL,
        up="conv_transpose",
        params={"kernel_size": 5, "dilation": 2, "bias": False},
        padding_mode="zeros",
    )
    convs = [b.conv for b in net.encoder] + [b.conv for b in net.decoder]
    assert all(c.config.kernel_size == (5, 5) and c.config.dilation == (2, 2) for c in convs)
    assert all(c.bias is None and c.padding_mode == "zeros" for c in convs)
    assert all(b.up.config.kernel_size == (5, 5) and b.up.padding_mode == "zeros" for b in net.decoder)
    assert net.encoder[1].conv.config.stride == (2, 2)
    assert net(torch.randn(1, 3, 8, 16)).shape == (1, 1, 8, 16)


# --- against hand-written torch.nn.functional compositions -------------------------------


def test_identity_pieces_give_x_plus_upsampled_pooled_x():
    """Identity 1x1 convs, no norm, no activation: y = x + up(avg_pool(x)), by hand."""
    net = UNet(
        "conv", 2, 2, widths=(2, 2), params={"kernel_size": 1}, down="avg_pool", norm="none", activation="identity"
    ).double()
    eye = torch.eye(2, dtype=torch.float64)[:, :, None, None]
    with torch.no_grad():
        for param in net.parameters():
            param.zero_()
        net.encoder[0].conv.weight.copy_(eye)
        net.encoder[1].conv.weight.copy_(eye)
        net.decoder[0].conv.weight.copy_(torch.cat([eye, eye], dim=1))  # [upsampled, skip] -> their sum
        net.head.conv.weight.copy_(eye)
    x = torch.randn(3, 2, 8, 12, dtype=torch.float64)
    expected = x + F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("down", DOWN_MODES)
@pytest.mark.parametrize("up", UP_MODES)
def test_one_level_1x1_unet_is_the_functional_composition(down, up):
    net = UNet(
        "conv", 3, 2, widths=(4, 5), params={"kernel_size": 1}, down=down, up=up, norm="none", activation="identity"
    ).double()
    set_weights(net)
    enc0, enc1, dec, head = net.encoder[0].conv, net.encoder[1].conv, net.decoder[0], net.head.conv
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)

    skip = F.conv2d(x, enc0.weight, enc0.bias)
    if down == "stride":
        coarse = F.conv2d(skip, enc1.weight, enc1.bias, stride=2)
    else:
        coarse = F.conv2d(skip, enc1.weight, enc1.bias)
        coarse = {
            "max_pool": lambda t: F.max_pool2d(t, 2),
            "avg_pool": lambda t: F.avg_pool2d(t, 2),
            "blur_pool": blur_pool_ref,
        }[down](coarse)
    if up == "upsample":
        upsampled = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
    else:
        # A 1x1 stride-2 transposed conv: the values on the even pixels, the bias elsewhere.
        upsampled = F.conv_transpose2d(coarse, dec.up.weight, dec.up.bias, stride=2, output_padding=1)
    decoded = F.conv2d(torch.cat([upsampled, skip], dim=1), dec.conv.weight, dec.conv.bias)
    expected = F.conv2d(decoded, head.weight, head.bias)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "size, down, up",
    [((8, 10), "stride", "conv_transpose"), ((9, 7), "stride", "conv_transpose"), ((8, 12), "max_pool", "upsample")],
)
def test_two_level_3x3_relu_unet_is_the_functional_composition(size, down, up):
    net = UNet("conv", 2, 1, widths=(3, 4, 5), down=down, up=up, norm="none", activation="relu").double()
    set_weights(net, seed=1)
    x = torch.randn(2, 2, *size, dtype=torch.float64)

    def encode(t, block, halve):
        t = conv_ref(t, block.conv, stride=2 if halve and down == "stride" else 1)
        return torch.relu(F.max_pool2d(t, 2, ceil_mode=True) if halve and down == "max_pool" else t)

    def decode(t, skip, block):
        if up == "upsample":
            t = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
        else:
            t = conv_transpose_ref(t, block.up, tuple(skip.shape[-2:]))
        return torch.relu(conv_ref(torch.cat([t, skip], dim=1), block.conv))

    e0 = encode(x, net.encoder[0], halve=False)
    e1 = encode(e0, net.encoder[1], halve=True)
    e2 = encode(e1, net.encoder[2], halve=True)
    d1 = decode(e2, e1, net.decoder[0])
    d0 = decode(d1, e0, net.decoder[1])
    expected = F.conv2d(d0, net.head.conv.weight, net.head.conv.bias)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-10)


def test_sigmoid_squashes_the_logits():
    logits = UNet("conv", 3, 1, widths=SMALL).eval()
    probs = UNet("conv", 3, 1, widths=SMALL, sigmoid=True).eval()
    probs.load_state_dict(logits.state_dict())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(probs(x), torch.sigmoid(logits(x)))


@pytest.mark.parametrize("up, expected", [("upsample", 21), ("conv_transpose", 17)])
def test_receptive_field_is_the_documented_one(up, expected):
    # r = 1 + d (k - 1) (2 ** (D + 1) - 1) = 15 from the convs, widened by the upsampling.
    net = UNet("conv", 1, 1, widths=(2, 2, 2), up=up, norm="none", activation="identity").double()
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(param.abs() + 0.1)  # positive weights: no cancellation inside the field
    x = torch.zeros(1, 1, 64, 64, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, 32, 32].backward()
    reached = (x.grad[0, 0] != 0).nonzero()
    extent = (reached.max(0).values - reached.min(0).values + 1).tolist()
    assert extent == [expected, expected]


# --- exact symmetries on the sphere ------------------------------------------------------


@pytest.mark.parametrize(
    "op, down, up",
    [
        ("conv", "stride", "upsample"),
        ("conv", "stride", "conv_transpose"),
        ("conv", "max_pool", "upsample"),
        ("gated_conv", "avg_pool", "conv_transpose"),
        ("conv", "blur_pool", "upsample"),
        ("spectral_conv", "avg_pool", "conv_transpose"),
    ],
)
def test_equirect_unet_commutes_with_longitude_rolls_by_two_to_the_depth(op, down, up):
    torch.manual_seed(0)
    mode = "sphere" if "padding_mode" in {p.name for p in get_op(op).parameters()} else None
    net = UNet(
        op, 2, 3, grid="equirect", widths=SMALL, padding_mode=mode, down=down, up=up, norm="none", activation="identity"
    ).double()
    x = torch.randn(2, 2, 8, 16, dtype=torch.float64)
    y = net(x)
    for shift in (4, 8, -12):
        error = (net(x.roll(shift, dims=-1)) - y.roll(shift, dims=-1)).abs().max().item()
        assert error < 1e-10, (shift, error)


def test_equirect_roll_by_less_than_two_to_the_depth_is_not_exact():
    # The control for the test above: a roll off the coarsest lattice is not a symmetry.
    torch.manual_seed(0)
    net = UNet("conv", 2, 3, grid="equirect", widths=SMALL, padding_mode="sphere", activation="identity").double()
    x = torch.randn(2, 2, 8, 16, dtype=torch.float64)
    assert (net(x.roll(1, dims=-1)) - net(x).roll(1, dims=-1)).abs().max() > 1e-3


@pytest.mark.parametrize(
    "op, down, up, norm, activation",
    [
        ("conv", "stride", "upsample", "none", "identity"),
        ("conv", "max_pool", "conv_transpose", "none", "identity"),
        ("gated_conv", "blur_pool", "upsample", "none", "identity"),
        ("cheb_conv", "avg_pool", "conv_transpose", "none", "identity"),
        ("neighbour_conv", "avg_pool", "upsample", "none", "identity"),
        ("conv", "stride", "conv_transpose", "batch", "relu"),  # batch statistics are permutation invariant
    ],
)
def test_healpix_unet_commutes_with_quarter_turns(op, down, up, norm, activation):
    torch.manual_seed(0)
    healpix = get_grid("healpix")
    net = UNet(op, 2, 3, grid="healpix", widths=SMALL, down=down, up=up, norm=norm, activation=activation).double()
    x = torch.randn(2, 2, 12, 8, 8, dtype=torch.float64)
    y = net(x)
    for k in (1, 2, 3):
        error = (net(healpix.quarter_turn(x, k)) - healpix.quarter_turn(y, k)).abs().max().item()
        assert error < 1e-10, (k, error)


# --- training ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, grid, down, norm",
    [
        ("conv", "planar", "stride", "none"),
        ("gated_conv", "equirect", "max_pool", "group"),
        ("conv", "cubemap", "blur_pool", "instance"),
        ("cheb_conv", "healpix", "avg_pool", "none"),
    ],
)
@pytest.mark.parametrize("up", UP_MODES)
def test_gradients_reach_every_parameter(op, grid, down, norm, up):
    torch.manual_seed(0)
    net = UNet(op, 2, 1, grid=grid, widths=SMALL, down=down, up=up, norm=norm, norm_groups=2, activation="elu")
    x = torch.randn(get_grid(grid).shape(2, 2, 8))
    net(x).square().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().max() > 0, name


def test_gradients_reach_every_parameter_through_batch_norm():
    net = UNet("conv", 2, 1, widths=SMALL)
    net(torch.randn(2, 2, 8, 8)).sum().backward()
    # A conv bias right before a batch norm has a zero gradient in exact arithmetic, so
    # only that gradients exist and are finite is checked here.
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_a_tiny_unet_overfits_one_random_mask():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    mask = (torch.rand(1, 1, 16, 16) < 0.5).float()
    net = UNet("conv", 3, 1, widths=(8, 16), norm="batch")
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(50):
        optimiser.zero_grad()
        loss = loss_fn(net(x), mask)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


# --- configs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ["grid=planar"],
        ["grid=equirect", "padding_mode=zeros", "model.up=conv_transpose"],
        ["grid=cubemap", "op=gated_conv", "model.down=blur_pool"],
        ["grid=healpix", "op=cheb_conv", "model.down=avg_pool"],
    ],
)
def test_the_unet_config_composes_and_builds(hydra_conf, overrides):
    plain = validate(compose(config_name="config", overrides=["model=unet", *overrides]))
    assert plain["model"]["sigmoid"] is False
    net = build_model(plain, 3, 1)
    assert isinstance(net, UNet) and net.widths == (16, 32, 64)
    x = torch.randn(get_grid(plain["grid"]["name"]).shape(1, 3, 8))
    assert net(x).shape == (1, 1, *spatial(x.shape))
    if plain["padding_mode"] is not None:
        assert all(b.conv.padding_mode == plain["padding_mode"] for b in [*net.encoder, *net.decoder])


def test_the_unet_config_names_down_for_a_strideless_op(hydra_conf):
    plain = validate(compose(config_name="config", overrides=["model=unet", "grid=healpix", "op=cheb_conv"]))
    with pytest.raises(GeoconvError, match="down='stride'"):
        build_model(plain, 3, 1)
    with pytest.raises(GeoconvError, match="output channels"):
        build_model(plain, 3)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"op": "cnov"}, UnknownNameError, r"unknown op: 'cnov'; did you mean 'conv'"),
        ({"op": "max_pool"}, ParameterError, r"op 'max_pool'.*'cheb_conv', 'conv'"),
        ({"op": "conv_transpose"}, ParameterError, r"op 'conv_transpose'"),
        ({"op": "spectral_conv"}, GeoconvError, r"grid"),
        ({"grid": "sphere"}, UnknownNameError, r"unknown grid"),
        ({"down": "max_pol"}, UnknownNameError, r"unknown down: 'max_pol'; did you mean 'max_pool'"),
        ({"up": "conv_transpse"}, UnknownNameError, r"unknown up: 'conv_transpse'; did you mean 'conv_transpose'"),
        ({"up": "bilinear"}, UnknownNameError, r"unknown up.*'upsample'"),
        ({"op": "cheb_conv", "grid": "healpix"}, ParameterError, r"down='stride'.*'cheb_conv'.*avg_pool"),
        ({"op": "neighbour_conv", "grid": "healpix"}, ParameterError, r"down='stride'"),
        ({"widths": ()}, ParameterError, r"widths.*empty"),
        ({"widths": []}, ParameterError, r"widths.*empty"),
        ({"widths": 16}, ParameterError, r"widths must be a sequence"),
        ({"widths": (8, 0)}, ParameterError, r"widths\[1\]"),
        ({"widths": (8, 2.5)}, ParameterError, r"widths\[1\]"),
        ({"in_channels": 0}, ParameterError, r"in_channels"),
        ({"out_channels": 0}, ParameterError, r"out_channels"),
        ({"params": {"stride": 2}}, ParameterError, r"params\['stride'\].*down="),
        ({"params": {"padding": "valid"}}, ParameterError, r"params\['padding'\]"),
        ({"params": [1, 2]}, ParameterError, r"params must be a mapping"),
        ({"params": {"kernal_size": 3}}, GeoconvError, r"kernal_size"),
        ({"norm": "bacth"}, GeoconvError, r"batch"),
        ({"activation": "rleu"}, GeoconvError, r"activation.*relu"),
        ({"sigmoid": "yes"}, ParameterError, r"sigmoid"),
        ({"norm": "group", "norm_groups": 3}, GeoconvError, r"group"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, match):
    arguments = {"op": "conv", "in_channels": 3, "out_channels": 1, "widths": (4, 8)} | kwargs
    with pytest.raises(error, match=match):
        UNet(**arguments)


def test_bad_inputs_raise_shape_errors():
    net = UNet("conv", 3, 1, widths=SMALL)
    with pytest.raises(ShapeError, match="in_channels=3"):
        net(torch.randn(1, 2, 8, 8))
    with pytest.raises(ShapeError):
        net(torch.randn(3, 8, 8))
    with pytest.raises(ShapeError):
        UNet("conv", 3, 1, grid="healpix", widths=SMALL)(torch.randn(1, 3, 8, 8))
