"""Trained runs back as models: ``load_run`` rebuilds exactly the model a run trained.

A tiny run is trained in-process with :func:`geoconv.training.engine.fit`, which keeps the
trained module; :func:`geoconv.load_run` then rebuilds the model from the run directory
alone, and its predictions must be bitwise those of the module that was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

import geoconv
from geoconv.data.base import SignalDataset
from geoconv.experiment.config import CONFIG_DIR, register_configs, validate
from geoconv.grids import get_grid
from geoconv.training.datamodule import BUILDERS, Splits
from geoconv.training.engine import fit
from geoconv.training.runs import SPEC_FORMAT, RunLoadError, load_run


def _blobs(grid: str, size: int, n: int, seed: int, segmentation: bool) -> SignalDataset:
    """Two channels with very different scales; the class sets the mean of the first."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    shape = get_grid(grid).shape(n, 2, size)
    x = torch.randn(shape, generator=generator)
    x[:, 0] += (labels.float() - 1).view(-1, *[1] * (len(shape) - 2))
    x[:, 1] = 100.0 + 50.0 * x[:, 1]
    targets = (x[:, :1] > 0).float() if segmentation else labels
    return SignalDataset(x, targets, grid, size, 0 if segmentation else 3, "blobs")


def _builder(data: dict[str, Any], grid: str, size: int) -> Splits:
    segmentation = bool(data.get("segmentation", False))
    train = _blobs(grid, size, 48, 0, segmentation)
    mean = train.inputs.double().mean(dim=(0, *range(2, train.inputs.ndim)))
    std = train.inputs.double().std(dim=(0, *range(2, train.inputs.ndim)))
    return Splits(
        train,
        {"": _blobs(grid, size, 16, 1, segmentation)},
        train.classes,
        "",
        class_names=() if segmentation else ("low", "middle", "high"),
        standardize=(tuple(mean.tolist()), tuple(std.tolist())),
    )


@pytest.fixture(autouse=True)
def _blobs_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILDERS, "std_blobs", _builder)


def _plain(*overrides: str, grid: str = "planar", size: int = 8, model: str = "classifier") -> dict[str, Any]:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "job.name=train",
                f"model={model}",
                f"grid={grid}",
                f"grid.size={size}",
                "data.kind=std_blobs",
                "device=cpu",
                "trainer.max_epochs=2",
                "trainer.batch_size=16",
                "trainer.progress_bar=false",
                *overrides,
            ],
        )
    return validate(cfg)


@pytest.mark.parametrize(
    ("grid", "size", "model", "extra"),
    [
        ("planar", 8, "classifier", ("model.widths=[4,8]",)),
        ("healpix", 4, "unet", ("+data.segmentation=true", "model.widths=[4,8]")),
    ],
)
def test_load_run_predicts_bitwise_as_the_trained_module(
    tmp_path: Path, grid: str, size: int, model: str, extra: tuple[str, ...]
) -> None:
    out = tmp_path / "run"
    fitted = fit(_plain(*extra, grid=grid, size=size, model=model), torch.device("cpu"), out)
    trained = fitted.task.model.eval()
    x = fitted.data.splits.tests[""].inputs
    with torch.no_grad():
        expected = trained(x)

    loaded = geoconv.load_run(out)
    model_back, config = loaded  # unpacks as (model, config)
    assert not model_back.training
    with torch.no_grad():
        got = model_back(x)
    assert torch.equal(got, expected)
    assert config == _plain(*extra, grid=grid, size=size, model=model)
    # The standardisation is part of the model: the saved statistics are the training set's.
    train = fitted.data.splits.train.inputs.double()
    mean = train.mean(dim=(0, *range(2, train.ndim))).float()
    assert torch.equal(model_back[0].mean, mean)
    assert loaded.epochs == 2 and loaded.checkpoint == out / "checkpoints" / "last.ckpt"
    if model == "classifier":
        assert loaded.class_names == ["low", "middle", "high"] and loaded.task == "classification"
    else:
        assert loaded.task == "segmentation"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BUILDERS, "std_blobs", _builder)
        fit(_plain("model.widths=[4]", "trainer.max_epochs=1"), torch.device("cpu"), out)
    return out


def _rewrite(source: Path, target: Path, change: Any) -> Path:
    checkpoint = torch.load(source / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    change(checkpoint)
    (target / "checkpoints").mkdir(parents=True)
    torch.save(checkpoint, target / "checkpoints" / "last.ckpt")
    return target


def test_load_run_refuses_what_is_not_a_training_run(tmp_path: Path, trained_run: Path) -> None:
    with pytest.raises(RunLoadError, match="does not exist"):
        load_run(tmp_path / "nothing")
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "metrics.json").write_text(json.dumps({"config": {"job": {"name": "shift"}}, "status": "ok"}))
    with pytest.raises(RunLoadError, match="not a training run .*job 'shift'"):
        load_run(probe)
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "metrics.json").write_text("{}")
    with pytest.raises(RunLoadError, match="multirun .* e.g. .*0"):
        load_run(sweep)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes()[:200])
    with pytest.raises(RunLoadError, match="truncated.ckpt cannot be read"):
        load_run(truncated)


def test_load_run_names_what_it_cannot_rebuild(tmp_path: Path, trained_run: Path) -> None:
    old = _rewrite(trained_run, tmp_path / "old", lambda c: c["geoconv"].pop("model"))
    with pytest.raises(RunLoadError, match="holds no model spec"):
        load_run(old)

    newer = _rewrite(trained_run, tmp_path / "newer", lambda c: c["geoconv"]["model"].update(format=SPEC_FORMAT + 1))
    with pytest.raises(RunLoadError, match=f"format {SPEC_FORMAT + 1}.*upgrade geoconv"):
        load_run(newer)

    def plugin_op(checkpoint: dict[str, Any]) -> None:
        checkpoint["geoconv"]["model"]["config"]["op"]["name"] = "someones_conv"

    with pytest.raises(RunLoadError, match="cannot rebuild .*op='someones_conv'.*Install the plugin"):
        load_run(_rewrite(trained_run, tmp_path / "plugin", plugin_op))

    def wider(checkpoint: dict[str, Any]) -> None:
        checkpoint["geoconv"]["model"]["config"]["model"]["widths"] = [6]

    with pytest.raises(RunLoadError, match="do not fit the model .*other shapes"):
        load_run(_rewrite(trained_run, tmp_path / "wider", wider))


def test_the_checkpoint_file_itself_loads_with_weights_only(trained_run: Path) -> None:
    # Only plain values in the spec: torch.load(weights_only=True) is how load_run reads it.
    loaded = load_run(trained_run / "checkpoints" / "last.ckpt")
    assert loaded.spec["input_shape"] == [2, 8, 8] and loaded.spec["outputs"] == 3
    assert loaded.spec["geoconv_version"] == geoconv.__version__
