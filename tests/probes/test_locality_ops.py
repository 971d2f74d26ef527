"""Locality of any op: a plugin op measured through its own ``layers()``, ERF sweeps of the configured op.

References: the closed receptive-field formula :math:`r_0 = 1 + \\sum_l d_l (k_l - 1) \\prod_{i<l} s_i`,
the autograd gradient's support, and the ERF variance of an n-fold binomial blur (n/2 per
axis: the taps [1, 2, 1] / 4 have variance 1/2) against that of a uniform 3-tap kernel (2/3).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn

from geoconv import build_op
from geoconv.errors import GeoconvError, ParameterError
from geoconv.experiment.config import register_configs
from geoconv.experiment.runner import run
from geoconv.ops.registry import register_op, unregister_op
from geoconv.probes.locality import (
    LAYERS_METHOD,
    erf_sweep,
    gradient_support,
    layers_of,
    theoretical_receptive_field,
)
from geoconv.sizes import Layer

CONF = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class BoxConfig:
    kernel_size: int = 3
    stride: int = 1


class Box(nn.Module):
    """A plugin op: the mean over k x k windows with a stride, no padding ("valid")."""

    def __init__(self, in_channels: int, out_channels: int, grid: str = "planar", config: BoxConfig | None = None):
        super().__init__()
        self.config = config or BoxConfig()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.config.kernel_size, self.config.stride)

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        return [Layer(self.config.kernel_size, self.config.stride, 0, 1)]


class Opaque(nn.Module):
    """A plugin op that does not describe its geometry."""

    def __init__(self, in_channels: int, out_channels: int, grid: str = "planar", config: BoxConfig | None = None):
        super().__init__()
        self.k = (config or BoxConfig()).kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.k, 1)


@pytest.fixture
def plugins() -> Iterator[None]:
    register_op("test_box", grids=("planar",), config=BoxConfig, same_channels=True)(Box)
    register_op("test_opaque", grids=("planar",), config=BoxConfig, same_channels=True)(Opaque)
    yield
    unregister_op("test_box")
    unregister_op("test_opaque")


def test_a_plugin_op_with_layers_is_measured_exactly(plugins) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        build_op("conv", 1, 2, kernel_size=3),
        build_op("test_box", 2, kernel_size=5, stride=2),
        nn.ReLU(),
        build_op("conv", 2, 2, dilation=2),
        build_op("conv", 2, 1, stride=2),  # "same" at stride 2: needs the size after the box
    )
    shape = (1, 29, 30)
    # r0 = 1 + 1*2 + 1*4 + 2*(2*2) + 2*2: the box's stride 2 scales every later layer.
    expected = 1 + 2 + 4 + 2 * 2 * 2 + 2 * 2
    for axis in (-2, -1):
        layers = layers_of(model, shape, axis=axis)
        assert layers[1] == Layer(5, 2, 0, 1)
        assert theoretical_receptive_field(layers).size == expected
    rows = theoretical_receptive_field(layers_of(model, shape, axis=-2))
    cols = theoretical_receptive_field(layers_of(model, shape, axis=-1))
    with torch.no_grad():
        out = model(torch.zeros(1, *shape)).shape[-2:]
    centre = (out[0] // 2, out[1] // 2)
    got = gradient_support(model, shape, generator=torch.Generator().manual_seed(0))
    assert got.rows == rows.bounds(centre[0]) and got.cols == cols.bounds(centre[1])


def test_a_plugin_op_without_layers_is_told_the_method(plugins) -> None:
    model = nn.Sequential(build_op("conv", 1, 1), build_op("test_opaque", 1))
    with pytest.raises(GeoconvError, match=r"Sequential\.1 \(Opaque\)") as info:
        layers_of(model)
    assert "layers(self, input_size=None, axis=-1) -> list[geoconv.sizes.Layer]" in str(info.value)
    assert LAYERS_METHOD in str(info.value)


def test_a_layers_method_must_return_layers(plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Box, "layers", lambda self, input_size=None, axis=-1: [(3, 1, 1, 1)])
    with pytest.raises(ParameterError, match="must return a list of geoconv.sizes.Layer"):
        layers_of(nn.Sequential(build_op("test_box", 1)))


def test_builtin_refusals_name_the_module_path() -> None:
    with pytest.raises(ParameterError, match=r"Sequential\.1 \(Upsample\): upsample resamples"):
        layers_of(nn.Sequential(build_op("conv", 1, 1), build_op("upsample", 1)))
    with pytest.raises(ParameterError, match=r"Sequential\.0 \(Conv\).*pass input_shape=\(H, W\)"):
        layers_of(nn.Sequential(build_op("conv", 1, 1, stride=2)))
    with pytest.raises(ParameterError, match=r"MaxUnpool2d\) upsamples"):
        layers_of(nn.Sequential(nn.MaxUnpool2d(2)))


# --------------------------------------------------------------------------- ERF sweeps of the configured op (bug g)


def test_erf_sweep_runs_the_op_it_is_given() -> None:
    # A linear stack of n binomial blurs [1, 2, 1] / 4 has ERF variance n / 2 per axis; n uniform
    # 3-tap convs have n * 2 / 3. Both have r0 = 2n + 1.
    depths = [1, 2, 4]
    common = {"activation": "identity", "weights": "uniform", "inputs": 1, "inits": 1}
    blur = erf_sweep("depth", depths, op="blur_pool", **common)
    conv = erf_sweep("depth", depths, **common)
    for n, blur_std, conv_std in zip(depths, blur["std"], conv["std"], strict=True):
        assert blur_std**2 == pytest.approx(n / 2, rel=1e-6)
        assert conv_std**2 == pytest.approx(2 * n / 3, rel=1e-6)
    assert blur["rf_size"] == conv["rf_size"] == [3.0, 5.0, 9.0]
    assert [s**2 for s in blur["uniform_std"]] == pytest.approx([2 * n / 3 for n in depths])


def test_erf_sweep_takes_the_ops_params() -> None:
    # filter_size 5: taps [1, 4, 6, 4, 1] / 16, variance 1 per layer.
    sweep = erf_sweep(
        "depth", [1, 3], op="blur_pool", params={"filter_size": 5}, activation="identity", inputs=1, inits=1
    )
    assert [s**2 for s in sweep["std"]] == pytest.approx([1.0, 3.0], rel=1e-6)
    assert sweep["rf_size"] == [5.0, 13.0]


def test_erf_sweep_refuses_a_parameter_the_op_lacks() -> None:
    with pytest.raises(ParameterError, match=r"op 'blur_pool' has no parameter 'kernel_size'"):
        erf_sweep("kernel_size", [3, 5], op="blur_pool")
    with pytest.raises(ParameterError, match="has no padding"):
        erf_sweep("depth", [1], op="upsample", padding_mode="zeros")


def _locality(tmp_path: Path, *overrides: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=locality",
                "grid.size=9",
                "job.depths=[1,2]",
                "job.kernel_sizes=[3]",
                "job.dilations=[]",
                "job.strides=[]",
                "job.inits=1",
                "job.inputs=1",
                *overrides,
            ],
        )
    run(cfg, tmp_path)
    return json.loads((tmp_path / "metrics.json").read_text())["metrics"]


def test_the_locality_job_sweeps_the_configured_op(tmp_path: Path) -> None:
    # Was: `experiment=locality op=blur_pool` swept plain conv stacks (std^2 = 2n/3).
    blur = _locality(tmp_path / "blur", "op=blur_pool")
    for n in (1, 2):
        assert blur[f"erf/std@depth={n}"] ** 2 == pytest.approx(n / 2, rel=1e-6)
    assert blur["erf/slope_depth"] == pytest.approx(0.5, abs=1e-6)
    assert "erf/std@kernel_size=3" not in blur  # blur_pool has no kernel_size: that sweep is skipped
    conv = _locality(tmp_path / "conv", "op=conv")
    assert conv["erf/std@depth=2"] ** 2 == pytest.approx(4 / 3, rel=1e-6)
    assert conv["erf/std@kernel_size=3"] == pytest.approx(math.sqrt(4 * 8 / 12), rel=1e-6)
