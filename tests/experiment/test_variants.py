"""Variants: each composes into the model it names; a variant's grid is kept; an empty seed list is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose
from omegaconf import OmegaConf

from geoconv.errors import ParameterError
from geoconv.experiment.config import validate
from geoconv.experiment.runner import check_seed_list
from geoconv.nn import S2CNN, PlainCNN
from geoconv.nn.build import build_model

CONF = Path(__file__).resolve().parents[2] / "conf"
VARIANTS = sorted(p.stem for p in (CONF / "variant").glob("*.yaml"))


def _compose(*overrides: str):
    return compose(
        config_name="config", overrides=["experiment=spherical_mnist", "data.mnist_dir=/nowhere", *overrides]
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_composes_validates_and_builds(hydra_conf, variant: str) -> None:
    plain = validate(_compose(f"variant={variant}"))
    model = build_model(plain, in_channels=1, classes=10)
    size = plain["grid"]["size"]
    x = torch.zeros((2, 1, *{"equirect": (size, 2 * size), "healpix": (12, size, size)}[plain["grid"]["name"]]))
    assert model(x).shape == (2, 10)


def test_the_papers_models_are_the_papers(hydra_conf) -> None:
    plain = validate(_compose("variant=s2cnn"))
    model = build_model(plain, in_channels=1, classes=10)
    assert isinstance(model, S2CNN) and plain["grid"] == {"name": "equirect", "size": 60}
    assert [m.out_channels for m in model.features if hasattr(m, "out_channels")] == [20, 40]
    plain = validate(_compose("variant=planar_cohen"))
    model = build_model(plain, in_channels=1, classes=10)
    assert isinstance(model, PlainCNN)
    first = model.features[0]
    assert (first.weight.shape, first.config.stride, first.config.padding) == ((32, 1, 5, 5), (3, 3), "valid")
    assert (plain["trainer"]["lr"], plain["trainer"]["batch_size"]) == (5e-3, 32)  # the paper's Adam


@pytest.mark.parametrize(
    ("variant", "grid", "needed"),
    [
        ("s2cnn", "healpix", "equirect"),
        ("planar_cohen", "cubemap", "equirect"),
        ("cheb_healpix16", "equirect", "healpix"),
    ],
)
def test_a_variant_refuses_another_grid_before_any_work(hydra_conf, variant: str, grid: str, needed: str) -> None:
    with pytest.raises(ParameterError, match=f"requires grid.name='{needed}' .* got grid.name='{grid}'"):
        validate(_compose(f"variant={variant}", f"grid={grid}"))


def test_a_required_key_that_is_missing_is_named() -> None:
    cfg = OmegaConf.create({"op": {"name": "conv"}, "grid": {"name": "planar"}, "requires": {"model.kind": "s2cnn"}})
    with pytest.raises(ParameterError, match="requires model.kind='s2cnn', but the config has no key model.kind"):
        validate(cfg)


def _hydra(task: list[str], params: dict | None = None):
    return OmegaConf.create({"hydra": {"overrides": {"task": task}, "sweeper": {"params": params or {}}}})


@pytest.mark.parametrize(
    ("task", "params"),
    [
        (["seed="], {"seed": "0,1,2"}),
        ([], {"seed": ""}),
        ([], {"seed": "[]"}),
        (["seed=[]"], None),
        (["+seed= , "], None),
    ],
)
def test_an_empty_seed_list_is_refused(task: list[str], params: dict | None) -> None:
    with pytest.raises(ParameterError, match="seed is an empty list"):
        check_seed_list(_hydra(task, params))


@pytest.mark.parametrize(("task", "params"), [(["seed=3"], {"seed": ""}), ([], {"seed": "0,1,2"}), ([], None)])
def test_a_seed_list_with_a_seed_passes(task: list[str], params: dict | None) -> None:
    check_seed_list(_hydra(task, params))  # the command line wins over the sweeper's params
