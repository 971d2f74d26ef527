"""Shift probes: exact equivariance where the theory says so, border bands from the receptive field,
consistency of APS against strided sampling, and the absolute-position test of Kayhan & van Gemert."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from geoconv import build_op
from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.probes.locality import layers_of
from geoconv.probes.position import absolute_position_test, border_profile, consistency, predicted_border_band
from geoconv.probes.shift import shift_equivariance
from geoconv.sizes import Layer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny tensors on shared cores: one thread is faster and its timings steadier.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def conv_stack(depth: int, padding_mode: str, *, kernel_size: int = 3, dilation: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for index in range(depth):
        layers.append(
            build_op(
                "conv",
                2 if index == 0 else 4,
                4,
                kernel_size=kernel_size,
                dilation=dilation,
                padding_mode=padding_mode,
            )
        )
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def images(*shape: int, seed: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- circular equivariance


@pytest.mark.parametrize("axis", [None, -2, -1])
def test_circular_stride1_stack_is_equivariant_for_every_integer_shift(axis: int | None) -> None:
    model = conv_stack(3, "circular")
    x = images(2, 2, 12, 12)
    shifts = list(range(-12, 13))
    curve = shift_equivariance(model, x, shifts, axis=axis, pooled=True)
    assert curve.shifts == tuple(shifts)
    assert max(curve.errors) < 1e-5
    assert max(curve.pooled_errors) < 1e-5
    assert curve.summary()["error_max"] == max(curve.errors)


def test_error_matches_a_direct_computation() -> None:
    # Zero padding: compare with the formula written out by hand for one shift.
    model = conv_stack(2, "zeros")
    x = images(2, 2, 10, 10)
    curve = shift_equivariance(model, x, [3], pooled=True)
    with torch.no_grad():
        y, ys = model(x), model(torch.roll(x, (3, 3), (-2, -1)))
    expected = (ys - torch.roll(y, (3, 3), (-2, -1))).norm() / y.norm()
    pooled = (ys.mean((-2, -1)) - y.mean((-2, -1))).norm() / y.mean((-2, -1)).norm()
    assert curve.errors[0] == pytest.approx(float(expected), rel=1e-6)
    assert curve.pooled_errors[0] == pytest.approx(float(pooled), rel=1e-6)
    assert curve.errors[0] > 1e-2


def test_strided_circular_conv_is_equivariant_for_multiples_of_the_stride_only() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(build_op("conv", 2, 4, stride=2, padding_mode="circular"), nn.ReLU())
    x = images(2, 2, 16, 16)
    curve = shift_equivariance(model, x, range(8), output_stride=2, pooled=True)
    for shift, error, pooled in zip(curve.shifts, curve.errors, curve.pooled_errors, strict=True):
        if shift % 2 == 0:
            assert error < 1e-5 and pooled < 1e-5
        else:
            assert math.isnan(error)  # no output shift corresponds to an odd input shift
            assert pooled > 1e-3  # and strided sampling aliases


def test_circular_kind_checks_the_output_stride() -> None:
    model = build_op("conv", 2, 4, stride=2, padding_mode="circular")
    with pytest.raises(ShapeError, match="output_stride"):
        shift_equivariance(model, images(1, 2, 16, 16), [2])


def test_classifier_outputs_are_measured_as_invariant() -> None:
    body = conv_stack(2, "circular")

    def classifier(x: torch.Tensor) -> torch.Tensor:
        return body(x).amax(dim=(-2, -1))

    curve = shift_equivariance(classifier, images(3, 2, 8, 8), [1, 5], pooled=True)
    assert max(curve.errors) < 1e-6
    assert curve.pooled_errors == curve.errors


# --------------------------------------------------------------------------- crop shifts


def test_valid_padding_is_exactly_equivariant_under_crop_shifts() -> None:
    # "valid" convs never see a border: a crop offset moves the output by the same offset.
    torch.manual_seed(0)
    model = nn.Sequential(
        build_op("conv", 2, 4, padding="valid"), nn.ReLU(), build_op("conv", 4, 3, kernel_size=5, padding="valid")
    )
    x = images(2, 2, 24, 24)
    curve = shift_equivariance(model, x, [0, 1, 2, 5, 8], kind="crop")
    assert max(curve.errors) < 1e-5


def test_crop_shifts_with_a_stride_compare_the_stride_aligned_overlap() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(build_op("conv", 2, 4, padding="valid"), build_op("conv", 4, 4, stride=2, padding="valid"))
    x = images(2, 2, 25, 25)
    curve = shift_equivariance(model, x, [0, 1, 2, 3, 4], kind="crop", output_stride=2, pooled=True)
    assert [math.isnan(e) for e in curve.errors] == [False, True, False, True, False]
    assert max(e for e in curve.errors if not math.isnan(e)) < 1e-5
    assert curve.pooled_errors[0] == 0.0 and curve.pooled_errors[1] > 0


def test_zero_padding_breaks_crop_equivariance_on_one_axis() -> None:
    model = conv_stack(2, "zeros")
    curve = shift_equivariance(model, images(2, 2, 16, 16), [0, 3], kind="crop", axis=-1)
    assert curve.errors[0] == 0.0 and curve.errors[1] > 1e-2


# --------------------------------------------------------------------------- border bands


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize(
    ("depth", "kernel_size", "dilation", "band"), [(1, 3, 1, 1), (3, 3, 1, 3), (2, 5, 1, 4), (2, 3, 2, 4)]
)
@pytest.mark.parametrize("kind", ["circular", "crop"])
def test_error_is_confined_to_the_predicted_border_band(
    mode: str, depth: int, kernel_size: int, dilation: int, band: int, kind: str
) -> None:
    model = conv_stack(depth, mode, kernel_size=kernel_size, dilation=dilation).double()
    # band: the "same" padding d(k - 1)/2 of each layer, added up (worked out by hand per case)
    assert predicted_border_band(layers_of(model)) == band
    x = images(2, 2, 26, 26, dtype=torch.float64)
    profile = border_profile(model, x, 5, kind=kind)
    assert profile.dtype == torch.float64 and profile.dim() == 1
    assert len(profile) > band + 2
    assert bool((profile[band:] < 1e-12).all()), profile
    assert bool((profile[:band] > 1e-4).all()), profile


def test_circular_padding_has_no_border_band() -> None:
    model = conv_stack(3, "circular").double()
    profile = border_profile(model, images(1, 2, 16, 16, dtype=torch.float64), 4)
    assert float(profile.max()) < 1e-12


def test_border_band_with_a_stride() -> None:
    # P0 = 1 + 1*1 = 2 at stride S0 = 2 (padding of the second conv counts twice): ceil(3 / 2) = 2
    layers = [Layer(3, padding=1), Layer(3, stride=2, padding=1), Layer(3, padding=1)]
    assert predicted_border_band(layers) == 2
    assert predicted_border_band([Layer(5, padding=0)]) == 0


def test_border_profile_refuses_shifts_off_the_stride() -> None:
    model = build_op("conv", 2, 2, stride=2, padding_mode="circular")
    with pytest.raises(ParameterError, match="multiple of output_stride"):
        border_profile(model, images(1, 2, 8, 8), 3, output_stride=2)


# --------------------------------------------------------------------------- consistency


class Classifier(nn.Module):
    """conv, ReLU, downsample, conv, ReLU, downsample, global mean, linear."""

    def __init__(self, downsample: str) -> None:
        super().__init__()
        torch.manual_seed(0)

        def down() -> nn.Module:
            if downsample == "aps":
                return build_op("aps_pool", 8, stride=2)
            return nn.Identity()

        stride = 1 if downsample == "aps" else 2
        self.features = nn.Sequential(
            build_op("conv", 1, 8, stride=stride, padding_mode="circular"),
            nn.ReLU(),
            down(),
            build_op("conv", 8, 8, stride=stride, padding_mode="circular"),
            nn.ReLU(),
            down(),
        )
        self.head = nn.Linear(8, 10)
        # Untrained, the bias alone would pick most classes whatever the features say.
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(-2, -1)))


def test_aps_network_is_perfectly_consistent_and_a_strided_one_is_not() -> None:
    x = images(64, 1, 16, 16)
    aps = consistency(Classifier("aps"), x, 8, pairs=8, generator=torch.Generator().manual_seed(0))
    strided = consistency(Classifier("strided"), x, 8, pairs=8, generator=torch.Generator().manual_seed(0))
    assert aps == 1.0
    assert strided < 0.8  # measured 0.42


def test_consistency_follows_the_shift_distribution() -> None:
    # A "classifier" that predicts the row of the one bright pixel: two draws agree exactly
    # when their row shifts agree, which for shifts uniform on {0..m} happens with probability 1/(m+1).
    def row_of_peak(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x.amax(dim=(1, 3)).argmax(dim=1), x.shape[-2]).double()

    x = torch.zeros(50, 1, 16, 16)
    x[:, :, 5, 7] = 1.0
    m = 3
    for kind in ("circular", "crop"):
        value = consistency(row_of_peak, x, m, pairs=60, kind=kind, generator=torch.Generator().manual_seed(1))
        # 3000 pairs: standard error sqrt(p(1-p)/3000) ~ 0.008
        assert value == pytest.approx(1 / (m + 1), abs=0.04)


def test_consistency_is_reproducible_under_a_generator() -> None:
    model, x = Classifier("strided"), images(16, 1, 16, 16)
    first = consistency(model, x, 8, kind="crop", generator=torch.Generator().manual_seed(3))
    second = consistency(model, x, 8, kind="crop", generator=torch.Generator().manual_seed(3))
    assert first == second


def test_probes_leave_the_model_mode_alone() -> None:
    model = Classifier("strided")
    model.train()
    model.head.eval()
    consistency(model, images(4, 1, 16, 16), 2)
    assert model.training and model.features.training and not model.head.training


# --------------------------------------------------------------------------- absolute position


def test_zero_padding_leaks_absolute_position_and_circular_does_not() -> None:
    zeros = absolute_position_test("zeros", generator=torch.Generator().manual_seed(0))
    circular = absolute_position_test("circular", generator=torch.Generator().manual_seed(0))
    assert zeros >= 0.9
    assert circular <= 0.65


def test_absolute_position_test_is_deterministic_under_a_generator() -> None:
    runs = [absolute_position_test("zeros", steps=40, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert runs[0] == runs[1]


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_parameter() -> None:
    model = conv_stack(1, "circular")
    x = images(1, 2, 8, 8)
    with pytest.raises(ParameterError, match="shifts"):
        shift_equivariance(model, x, [])
    with pytest.raises(ParameterError, match=r"shifts\[1\]"):
        shift_equivariance(model, x, [1, -2], kind="crop")
    with pytest.raises(ParameterError, match=r"shifts\[0\]"):
        shift_equivariance(model, x, [1.5])
    with pytest.raises(UnknownNameError, match="kind") as info:
        shift_equivariance(model, x, [1], kind="circ")
    assert "circular" in info.value.suggestions
    with pytest.raises(ShapeError, match=r"x must have shape \(B, C, H, W\)"):
        shift_equivariance(model, x[0], [1])
    with pytest.raises(ParameterError, match="axis"):
        shift_equivariance(model, x, [1], axis=0)
    with pytest.raises(ParameterError, match="output_stride"):
        shift_equivariance(model, x, [1], output_stride=0)
    with pytest.raises(ShapeError, match="crop shifts"):
        shift_equivariance(model, x, [8], kind="crop")
    with pytest.raises(ParameterError, match="model"):
        shift_equivariance("conv", x, [1])
    with pytest.raises(ShapeError, match="feature map"):
        shift_equivariance(lambda t: t.sum(), x, [1])
    with pytest.raises(ParameterError, match="max_shift"):
        consistency(model, x, -1)
    with pytest.raises(ParameterError, match="pairs"):
        consistency(model, x, 1, pairs=0)
    with pytest.raises(ShapeError, match="logits"):
        consistency(model, x, 1)
    with pytest.raises(ShapeError, match="max_shift"):
        consistency(model, x, 8, kind="crop")
    with pytest.raises(UnknownNameError, match="padding_mode"):
        absolute_position_test("zero", steps=1)
    with pytest.raises(ParameterError, match="size"):
        absolute_position_test("zeros", size=3, pattern_size=2)
    with pytest.raises(ParameterError, match="steps"):
        absolute_position_test("zeros", steps=0)
    for call in (lambda: predicted_border_band([]), lambda: border_profile(model, x, 1, kind="cropped")):
        with pytest.raises(GeoconvError):
            call()


# --------------------------------------------------------------------------- CUDA (skipped without one)


@pytest.mark.gpu
def test_probes_run_on_cuda_and_agree_with_the_cpu() -> None:
    model = conv_stack(2, "zeros").double()
    x = images(2, 2, 16, 16, dtype=torch.float64)
    model_cuda, x_cuda = copy.deepcopy(model).cuda(), x.cuda()
    cpu = shift_equivariance(model, x, [0, 1, 3], pooled=True)
    gpu = shift_equivariance(model_cuda, x_cuda, [0, 1, 3], pooled=True)
    assert gpu.errors == pytest.approx(cpu.errors, rel=1e-9, abs=1e-12)
    assert gpu.pooled_errors == pytest.approx(cpu.pooled_errors, rel=1e-9, abs=1e-12)
    profile = border_profile(model_cuda, x_cuda, 4, kind="crop")
    assert profile.device.type == "cuda"
    torch.testing.assert_close(profile.cpu(), border_profile(model, x, 4, kind="crop"), equal_nan=True)
    classifier = Classifier("strided")
    batch = images(16, 1, 16, 16)
    expected = consistency(classifier, batch, 4, generator=torch.Generator().manual_seed(0))
    on_cuda = consistency(copy.deepcopy(classifier).cuda(), batch.cuda(), 4, generator=torch.Generator().manual_seed(0))
    assert on_cuda == expected
    assert absolute_position_test("zeros", device="cuda", generator=torch.Generator().manual_seed(0)) >= 0.9
    assert absolute_position_test("circular", device="cuda", generator=torch.Generator().manual_seed(0)) <= 0.65
