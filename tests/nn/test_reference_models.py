"""Cohen et al. (2018)'s two models: the planar baseline against torch.nn.functional, S2CNN's invariances."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geoconv.errors import GeoconvError
from geoconv.grids.fields import BandLimitedField
from geoconv.nn import S2CNN, PlainCNN
from geoconv.nn.build import build_model


def _haar_rotation(seed: int) -> torch.Tensor:
    """QR of a Gaussian matrix with the sign fix (Mezzadri 2007), det +1."""
    gaussian = torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def test_planar_baseline_is_the_paper_stack_in_torch_functional() -> None:
    torch.manual_seed(0)
    params = {"kernel_size": 5, "stride": 3, "padding": "valid"}
    model = PlainCNN("conv", 1, classes=10, grid="equirect", widths=[32, 64], params=params).double()
    x = torch.rand(3, 1, 60, 120, dtype=torch.float64)
    logits = model(x)  # materialises the lazy head
    first, second = model.features[0], model.features[2]
    h = F.relu(F.conv2d(x, first.weight, first.bias, stride=3))
    h = F.relu(F.conv2d(h, second.weight, second.bias, stride=3))
    assert h.shape[1:] == (64, 5, 12)  # (60 - 5) // 3 + 1 = 19, then (19 - 5) // 3 + 1 = 5
    reference = F.linear(h.flatten(1), model.head.weight, model.head.bias)
    torch.testing.assert_close(logits, reference, rtol=1e-12, atol=1e-12)


def test_planar_baseline_is_not_rotation_invariant_but_s2cnn_is_under_a_quarter_turn() -> None:
    # A quarter turn about the pole is a roll by W/4 columns: an exact symmetry of the SOFT grids
    # of every layer (2b_out alphas: 20 and 12 here, both multiples of 4), so the Haar integral of
    # S2CNN's last layer is unchanged to round-off, ReLUs included.
    torch.manual_seed(1)
    x = torch.rand(2, 1, 20, 40, dtype=torch.float64)
    turned = torch.roll(x, 10, dims=-1)
    s2cnn = S2CNN("s2_conv", 1, classes=10, widths=[4, 6], bands=[10, 6]).double()
    torch.testing.assert_close(s2cnn(turned), s2cnn(x), rtol=1e-9, atol=1e-11)
    planar = PlainCNN("conv", 1, 10, grid="equirect", widths=[4], params={"kernel_size": 5, "stride": 3}).double()
    assert (planar(turned) - planar(x)).abs().max() > 1e-3


def test_s2cnn_features_are_nearly_invariant_under_haar_random_rotations() -> None:
    # Band-limited input, sampled exactly at every rotation; the ReLUs on the SOFT grid alias,
    # so the invariance is approximate: measured 0.012-0.021 of the features' norm (rotation
    # seeds 0..2, model seed 0; 0.006-0.012 for model seeds 1, 2), against 0.12-0.15 between two
    # different inputs: a rotation moves the features by at most 0.14 of what another input does.
    torch.manual_seed(0)
    # norm="none": the features before the (per-feature, affine in eval mode) batch norm.
    model = S2CNN("s2_conv", 1, classes=10, widths=[5, 8], bands=[6, 4], norm="none").double()
    field = BandLimitedField.random(7, batch=2, channels=1, generator=torch.Generator().manual_seed(2))
    other = BandLimitedField.random(7, batch=2, channels=1, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        features = model.features(field.sample("equirect", 16))
        between = (model.features(other.sample("equirect", 16)) - features).norm() / features.norm()
        for seed in range(3):
            rotated = model.features(field.rotate(_haar_rotation(seed)).sample("equirect", 16))
            change = (rotated - features).norm() / features.norm()
            assert change < 0.03 and change < 0.2 * between


def test_s2cnn_layers_follow_the_band_limits() -> None:
    model = S2CNN("s2_conv", 1, classes=10, norm="none")  # the paper's: 20, 40 channels, b 30 -> 10 -> 6
    s2, so3 = model.features[0], model.features[2]
    assert (s2.config.b_out, so3.config.b_in, so3.config.b_out) == (10, 10, 6)
    assert (s2.weight.shape, so3.weight.shape) == ((1, 20, 24), (20, 40, 192))
    # s2cnn's parameter count: 1*20*24 + 20 + 20*40*192 + 40 + 40*10 + 10
    assert sum(p.numel() for p in model.parameters()) == 480 + 20 + 153600 + 40 + 410
    with_norm = S2CNN("s2_conv", 1, classes=10)  # geoconv's default adds a batch norm's scale and shift
    assert isinstance(with_norm.features[-1], torch.nn.BatchNorm1d)
    assert sum(p.numel() for p in with_norm.parameters()) == 154550 + 2 * 40


def test_the_model_kinds_build_from_a_config() -> None:
    plain = {
        "op": {"name": "s2_conv", "params": {}},
        "grid": {"name": "equirect"},
        "model": {"kind": "s2cnn", "widths": [3], "bands": [2]},
    }
    model = build_model(plain, in_channels=1, classes=4)
    assert isinstance(model, S2CNN) and model.eval()(torch.zeros(1, 1, 8, 16)).shape == (1, 4)
    plain = {"op": {"name": "conv", "params": {"stride": 2}}, "grid": {"name": "equirect"}, "model": {"kind": "cnn"}}
    assert isinstance(build_model(plain, in_channels=1, classes=3), PlainCNN)
    with pytest.raises(GeoconvError, match="needs a number of classes"):
        build_model(plain, in_channels=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"widths": [4, 8], "bands": [4]}, r"one output band limit per layer: 2 widths \[4, 8\], got 1"),
        ({"widths": [4, 8], "bands": [3, 4]}, r"bands must not increase .* got \[3, 4\]"),
        ({"widths": [], "bands": []}, r"widths must be a non-empty list"),
        ({"widths": [4, 0], "bands": [4, 3]}, r"widths\[1\] must be an integer >= 1, got 0"),
        ({"widths": [4], "bands": [4], "norm": "layer"}, r"unknown norm: 'layer'. Valid choices: 'batch', 'none'"),
    ],
)
def test_s2cnn_refuses_bad_layers(options: dict, match: str) -> None:
    with pytest.raises(GeoconvError, match=match):
        S2CNN("s2_conv", 1, classes=10, **options)


def test_s2cnn_refuses_a_band_limit_the_input_does_not_have() -> None:
    model = S2CNN("s2_conv", 1, classes=10, widths=[3], bands=[6])
    with pytest.raises(GeoconvError, match="b_out=6 is too large .* b_in=4"):
        model(torch.zeros(1, 1, 8, 16))  # 2b = 8: b_in 4
    with pytest.raises(GeoconvError, match=r"\(B, C, 2b, 2b\) or \(B, C, 2b, 4b\)"):
        model(torch.zeros(1, 1, 12, 12 * 3))
