"""Locality probes: theoretical receptive field against the autograd support, ERF of uniform
linear stacks against the n-fold convolution of the kernel, sweeps against their closed forms."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

from geoconv import build_op
from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.nn import ClassicBlock, EncoderBlock
from geoconv.probes.locality import (
    Support,
    effective_receptive_field,
    erf_std,
    erf_sweep,
    gradient_support,
    layers_of,
    loglog_slope,
    theoretical_receptive_field,
    uniform_erf_variance,
)
from geoconv.sizes import Layer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seq(*layers: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*layers)


# (name, factory, hand-computed r0 = 1 + sum d (k - 1) prod(strides before))
STACKS: list[tuple[str, Callable[[], nn.Module], int]] = [
    ("3 convs 3x3", lambda: seq(*[build_op("conv", 2, 2) for _ in range(3)]), 7),
    ("5x5 then 3x3/2", lambda: seq(build_op("conv", 2, 3, kernel_size=5), build_op("conv", 3, 2, stride=2)), 7),
    (
        "dilated 2 and 3",
        lambda: seq(build_op("conv", 2, 2, dilation=2), nn.ReLU(), build_op("conv", 2, 2, dilation=3)),
        1 + 4 + 6,
    ),
    (
        "strides 2, 2 then 3x3",
        lambda: seq(
            build_op("conv", 2, 4, stride=2), nn.ReLU(), build_op("conv", 4, 4, stride=2), build_op("conv", 4, 2)
        ),
        1 + 2 + 2 * 2 + 4 * 2,
    ),
    (
        "max pool 2/2 then dilated conv",
        lambda: seq(build_op("conv", 2, 4), build_op("max_pool", 4), nn.ReLU(), build_op("conv", 4, 2, dilation=2)),
        1 + 2 + 1 + 2 * 4,
    ),
    (
        "valid conv, avg pool 3/2",
        lambda: seq(build_op("conv", 2, 4, padding="valid"), build_op("avg_pool", 4, kernel_size=3, stride=2)),
        1 + 2 + 2,
    ),
    ("blur pool", lambda: seq(build_op("conv", 2, 2), build_op("blur_pool", 2, filter_size=3)), 1 + 2 + 2),
    (
        "torch layers",
        lambda: seq(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 5, padding="same")),
        1 + 2 + 1 + 2 * 4,
    ),
    ("classic block", lambda: seq(ClassicBlock(2, 4), build_op("conv", 4, 2)), 1 + 2 + 2 + 1 + 2 * 2),
    ("gated conv", lambda: seq(build_op("gated_conv", 2, 2, kernel_size=5), build_op("conv", 2, 2)), 1 + 4 + 2),
]


@pytest.mark.parametrize(("name", "factory", "size"), STACKS, ids=[s[0] for s in STACKS])
def test_theoretical_receptive_field_equals_the_gradient_support(
    name: str, factory: Callable[[], nn.Module], size: int
) -> None:
    model = factory()
    shape = (2, 29, 30)  # odd and even sides, so that "same" padding splits both ways
    rows = theoretical_receptive_field(layers_of(model, shape, axis=-2))
    cols = theoretical_receptive_field(layers_of(model, shape, axis=-1))
    assert rows.size == cols.size == size
    with torch.no_grad():
        out = model(torch.zeros(1, *shape)).shape[-2:]
    centre = (out[0] // 2, out[1] // 2)
    expected = Support(rows=rows.bounds(centre[0]), cols=cols.bounds(centre[1]))
    assert expected.rows[0] >= 0 and expected.rows[1] < shape[1]  # inside: nothing clipped
    support = gradient_support(model, shape, generator=torch.Generator().manual_seed(0))
    assert support == expected
    assert support.shape == (size, size)


def test_gradient_support_off_centre_and_clipped_at_the_border() -> None:
    model = seq(build_op("conv", 1, 2), build_op("conv", 2, 1))
    assert gradient_support(model, (1, 10, 10), output_index=(0, 9)) == Support(rows=(0, 2), cols=(7, 9))


def test_layers_of_reads_padding_and_strides() -> None:
    model = seq(EncoderBlock(3, 8, kernel_size=5), EncoderBlock(8, 8, pool="aps_pool", pool_params={"filter_size": 3}))
    assert layers_of(model, (16, 16)) == [
        Layer(5, stride=2, padding=1),  # "same" at stride 2 on 16 pixels: total 3, split 1 + 2
        Layer(3, stride=1, padding=1),
        Layer(3, stride=1, padding=1),  # the aps blur
        Layer(1, stride=2, padding=0),
    ]


# --------------------------------------------------------------------------- ERF of uniform linear stacks


def uniform_linear_stack(depth: int, kernel_size: int = 3, channels: int = 2) -> nn.Module:
    layers = []
    for index in range(depth):
        conv = build_op("conv", 1 if index == 0 else channels, channels, kernel_size=kernel_size, bias=False)
        with torch.no_grad():
            conv.weight.fill_(1.0 / conv.weight[0].numel())
        layers.append(conv)
    return nn.Sequential(*layers)


def n_fold_box(depth: int, kernel_size: int) -> np.ndarray:
    """The n-fold convolution of the uniform distribution on k taps, by numpy."""
    taps = np.ones(kernel_size) / kernel_size
    out = np.ones(1)
    for _ in range(depth):
        out = np.convolve(out, taps)
    return out


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_uniform_linear_stack_erf_is_the_n_fold_box_and_its_variance_n_k2_minus_1_over_12(depth: int) -> None:
    k, size = 3, 2 * 8 + 7
    erf = effective_receptive_field(lambda seed: uniform_linear_stack(depth, k), (1, size, size), inputs=2, inits=2)
    assert erf.shape == (size, size)
    # The map itself: the outer product of the 1-D n-fold box, centred on the centre pixel.
    profile = n_fold_box(depth, k)
    expected = np.zeros((size, size))
    lo = size // 2 - depth * (k - 1) // 2
    expected[lo : lo + len(profile), lo : lo + len(profile)] = np.outer(profile, profile)
    np.testing.assert_allclose((erf / erf.sum()).double().numpy(), expected, atol=1e-6)
    closed_form = depth * (k * k - 1) / 12
    for axis in (None, -2, -1):
        assert erf_std(erf, axis=axis) ** 2 == pytest.approx(closed_form, rel=0.1)
        assert erf_std(erf, axis=axis) ** 2 == pytest.approx(closed_form, rel=1e-5)  # in fact exact


def test_erf_std_grows_like_the_square_root_of_depth() -> None:
    sweep = erf_sweep("depth", [1, 2, 4, 8, 16], activation="identity", weights="uniform", inputs=1, inits=1)
    assert loglog_slope(sweep["value"], sweep["std"]) == pytest.approx(0.5, abs=0.01)
    assert sweep["rf_size"] == [3.0, 5.0, 9.0, 17.0, 33.0]


@pytest.mark.parametrize(
    ("parameter", "values", "variance"),
    [
        # 4 layers each: n (k^2 - 1) / 12, n d^2 (k^2 - 1) / 12, sum_l s^(2l) (k^2 - 1) / 12
        ("kernel_size", [1, 3, 5, 7], lambda k: 4 * (k * k - 1) / 12),
        ("dilation", [1, 2, 3], lambda d: 4 * d * d * 8 / 12),
        ("stride", [1, 2, 3], lambda s: sum(s ** (2 * layer) for layer in range(4)) * 8 / 12),
    ],
)
def test_erf_sweeps_of_uniform_stacks_match_their_closed_forms(
    parameter: str, values: list[int], variance: Callable[[int], float]
) -> None:
    sweep = erf_sweep(parameter, values, activation="identity", weights="uniform", inputs=1, inits=1)
    assert sweep["value"] == [float(v) for v in values]
    for value, std, closed in zip(values, sweep["std"], sweep["uniform_std"], strict=True):
        assert closed**2 == pytest.approx(variance(value), rel=1e-12)
        assert std**2 == pytest.approx(variance(value), rel=0.1, abs=1e-9)


def test_uniform_erf_variance_formula() -> None:
    assert uniform_erf_variance([Layer(3)] * 5) == pytest.approx(5 * 8 / 12)
    assert uniform_erf_variance([Layer(5, stride=2), Layer(3, dilation=2)]) == pytest.approx(24 / 12 + 16 * 8 / 12)


def test_random_relu_stacks_erf_grows_about_like_sqrt_depth() -> None:
    # Random zero-mean weights: E[g^2] follows the uniform map, so |g| tends to a Gaussian with
    # sqrt(2) times its radius; at finite depth the ratio is still climbing, so the slope is
    # a little above 0.5 (0.57 measured over 8..32).
    sweep = erf_sweep("depth", [8, 16, 32], channels=4, generator=torch.Generator().manual_seed(0))
    assert 0.45 < loglog_slope(sweep["value"], sweep["std"]) < 0.65
    ratios = [s / u for s, u in zip(sweep["std"], sweep["uniform_std"], strict=True)]
    assert 1.2 < ratios[-1] < 1.5


def test_effective_receptive_field_is_reproducible_and_seeds_the_factory() -> None:
    seen: list[int] = []

    def make(seed: int) -> nn.Module:
        seen.append(seed)
        return nn.Sequential(build_op("conv", 1, 4), nn.ReLU(), build_op("conv", 4, 4))

    first = effective_receptive_field(make, (1, 11, 11), inits=3, generator=torch.Generator().manual_seed(0))
    second = effective_receptive_field(make, (1, 11, 11), inits=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, second)
    assert seen[:3] == seen[3:] and len(set(seen[:3])) == 3
    assert int((first > 0).sum()) == 25  # two 3x3 convs: the centre 5x5
    # Seeding the factory leaves the global RNG as it was; without a generator the seeds are 0, 1, ...
    state = torch.random.get_rng_state()
    effective_receptive_field(make, (1, 11, 11), inits=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.random.get_rng_state())
    effective_receptive_field(make, (1, 11, 11), inits=2)
    assert seen[-2:] == [0, 1]


# --------------------------------------------------------------------------- erf_std and loglog_slope


def test_erf_std_of_known_maps() -> None:
    delta = torch.zeros(5, 5)
    delta[1, 3] = 2.0
    assert erf_std(delta) == 0.0
    two = torch.zeros(5, 7)
    two[2, 1] = two[2, 5] = 1.0  # columns 1 and 5: std 2; rows: 0
    assert erf_std(two, axis=-1) == pytest.approx(2.0)
    assert erf_std(two, axis=-2) == 0.0
    assert erf_std(two) == pytest.approx(math.sqrt(2.0))


def test_loglog_slope_recovers_a_power() -> None:
    xs = [1.0, 2.0, 3.0, 7.0]
    assert loglog_slope(xs, [3 * x**1.7 for x in xs]) == pytest.approx(1.7)


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_parameter() -> None:
    model = seq(build_op("conv", 1, 1))
    with pytest.raises(ParameterError, match="input_shape"):
        gradient_support(model, (8, 8))
    with pytest.raises(ParameterError, match=r"input_shape\[1\]"):
        gradient_support(model, (1, 0, 8))
    with pytest.raises(ShapeError, match="output_index"):
        gradient_support(model, (1, 8, 8), output_index=(8, 0))
    with pytest.raises(ParameterError, match="inputs"):
        gradient_support(model, (1, 8, 8), inputs=0)
    with pytest.raises(ParameterError, match=r"Sequential\.1 \(Linear\)"):
        layers_of(nn.Sequential(build_op("conv", 1, 1), nn.Linear(3, 3)))
    with pytest.raises(ParameterError, match="upsamples"):
        layers_of(nn.Sequential(build_op("conv_transpose", 1, 1)))
    with pytest.raises(ParameterError, match="input_shape"):
        layers_of(nn.Sequential(build_op("conv", 1, 1, stride=2)))
    with pytest.raises(ParameterError, match="axis"):
        layers_of(model, axis=0)
    with pytest.raises(ParameterError, match="make_model"):
        effective_receptive_field(lambda seed: "net", (1, 8, 8))
    with pytest.raises(ParameterError, match="inits"):
        effective_receptive_field(lambda seed: model, (1, 8, 8), inits=0)
    with pytest.raises(ShapeError, match="erf_map"):
        erf_std(torch.ones(3))
    with pytest.raises(ParameterError, match="erf_map"):
        erf_std(torch.zeros(3, 3))
    with pytest.raises(ParameterError, match="positive"):
        loglog_slope([1, 2], [1, -1])
    with pytest.raises(ParameterError, match="same length"):
        loglog_slope([1, 2, 3], [1, 2])
    with pytest.raises(UnknownNameError, match="parameter") as info:
        erf_sweep("dilations", [1, 2])
    assert info.value.suggestions[0] == "dilation"
    with pytest.raises(ParameterError, match=r"values\[1\]"):
        erf_sweep("depth", [1, 0])
    with pytest.raises(GeoconvError, match="activation"):
        erf_sweep("depth", [1], activation="relu6")


# --------------------------------------------------------------------------- CUDA (skipped without one)


@pytest.mark.gpu
def test_locality_probes_run_on_cuda_and_agree_with_the_cpu() -> None:
    model = STACKS[3][1]().double()
    shape = (2, 29, 30)
    support = gradient_support(copy.deepcopy(model).cuda(), shape, generator=torch.Generator().manual_seed(0))
    assert support == gradient_support(model, shape, generator=torch.Generator().manual_seed(0))

    def make(seed: int) -> nn.Module:
        return nn.Sequential(build_op("conv", 1, 4), nn.ReLU(), build_op("conv", 4, 4)).double()

    cpu = effective_receptive_field(make, (1, 11, 11), inits=2, generator=torch.Generator().manual_seed(0))
    gpu = effective_receptive_field(
        make, (1, 11, 11), inits=2, generator=torch.Generator().manual_seed(0), device="cuda"
    )
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
    assert erf_std(gpu) == pytest.approx(erf_std(cpu))
