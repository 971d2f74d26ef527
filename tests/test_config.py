"""Hydra composition: every experiment and every op compose; bad configs fail before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra import compose
from hydra.errors import ConfigCompositionException, MissingConfigException

import geoconv
from geoconv.errors import GeoconvError, ParameterError, UnknownNameError
from geoconv.experiment.config import op_node, register_configs, validate
from geoconv.experiment.jobs import list_jobs
from geoconv.nn.build import build_model
from geoconv.ops.registry import register_op, unregister_op

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(*overrides: str):
    return compose(config_name="config", overrides=list(overrides))


def test_the_experiments_exist() -> None:
    assert {"shift_invariance", "locality", "rotation_equivariance", "ablation"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(hydra_conf, experiment: str) -> None:
    plain = validate(_compose(f"experiment={experiment}"))
    assert plain["job"]["name"] in list_jobs()
    model = build_model(plain, plain["data"]["channels"], classes=3)
    x = torch.randn(geoconv.grids.get_grid(plain["grid"]["name"]).shape(1, plain["data"]["channels"], 8))
    assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("name", geoconv.list_ops())
def test_every_op_is_in_the_op_group_with_its_defaults(hydra_conf, name: str) -> None:
    grid = geoconv.get_op(name).grids[0]
    cfg = _compose(f"op={name}", f"grid={grid}", "experiment=shift_invariance", f"grid={grid}")
    plain = validate(cfg)
    assert plain["op"] == op_node(name)
    spec = geoconv.get_op(name)
    assert spec.make_config(**plain["op"]["params"]) == spec.config()


def test_a_plugin_op_joins_the_op_group(hydra_conf) -> None:
    @dataclass
    class TwiceConfig:
        factor: float = 2.0

    class Twice(torch.nn.Module):
        """Multiply by a factor (a test plugin)."""

        def __init__(self, in_channels, out_channels, grid="planar", config=None):
            super().__init__()
            self.factor = (config or TwiceConfig()).factor

        def forward(self, x):
            return self.factor * x

    register_op("test_twice", config=TwiceConfig, same_channels=True)(Twice)
    try:
        register_configs()
        plain = validate(_compose("op=test_twice", "op.params.factor=3"))
        assert plain["op"] == {"name": "test_twice", "params": {"factor": 3}}
    finally:
        unregister_op("test_twice")


def test_an_unknown_op_or_grid_fails_at_composition_listing_the_choices(hydra_conf) -> None:
    with pytest.raises(MissingConfigException, match=r"Could not find 'op/cnov'[\s\S]*gated_conv"):
        _compose("op=cnov")
    with pytest.raises(MissingConfigException, match=r"Could not find 'grid/sphere'[\s\S]*healpix"):
        _compose("grid=sphere")
    with pytest.raises(MissingConfigException, match=r"experiment/locallity[\s\S]*locality"):
        _compose("experiment=locallity")
    with pytest.raises(ConfigCompositionException, match="Could not override 'op.params.kernal_size'"):
        _compose("op.params.kernal_size=3")


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        # Named by the config key (issue 11 e): what key, what was expected, what came in.
        (
            ["op.params.kernel_size=abc"],
            ParameterError,
            r"^op\.params\.kernel_size must be of type int \| tuple\[int, int\], got 'abc'",
        ),
        (["op.params.stride=0"], ParameterError, "^op.params.stride must be an integer >= 1, got 0"),
        (["+op.params.kernal_size=3"], UnknownNameError, "did you mean 'kernel_size'"),
        (["op=cheb_conv"], UnknownNameError, "op 'cheb_conv' does not support grid 'planar'"),
        (["padding_mode=sphere"], UnknownNameError, "unknown padding_mode for grid 'planar': 'sphere'"),
        (["op=spectral_conv", "grid=equirect", "padding_mode=zeros"], ParameterError, "has no padding"),
        (["grid.size=???"], ParameterError, "config value missing .*grid.size"),
        (["model.kind=transformer"], UnknownNameError, "unknown model kind: 'transformer'"),
    ],
)
def test_bad_values_fail_validation_before_any_work(hydra_conf, overrides, error, match) -> None:
    cfg = _compose("experiment=shift_invariance", *overrides)
    with pytest.raises(error, match=match):
        validate(cfg)
    assert issubclass(error, GeoconvError)


def test_launcher_presets_compose(hydra_conf) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    joblib = compose(config_name="config", overrides=["hydra/launcher=joblib_local"], return_hydra_config=True)
    assert joblib.hydra.launcher._target_.endswith("JoblibLauncher") and joblib.hydra.launcher.n_jobs == 2
    slurm = compose(config_name="config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher") and slurm.hydra.launcher.gpus_per_node == 1
