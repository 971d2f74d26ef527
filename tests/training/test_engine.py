"""Training end to end on tiny data: learning, kill-and-resume, bad checkpoints, divergence, bad input.

Runs go through :func:`geoconv.experiment.runner.run` with configs composed from the real ``conf/``
tree (``job=train``), so ``metrics.json`` is checked as a user would read it. The
synthetic ``blobs`` data (registered per test) is learnable in a few steps: the class sets
the mean of the signal, which global average pooling sees at once.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from geoconv.errors import GeoconvError
from geoconv.experiment.config import register_configs
from geoconv.experiment.runner import run
from geoconv.grids import get_grid
from geoconv.training import TRAINER_DEFAULTS, GeoconvTask, SignalDataModule, TrainingDivergedError
from geoconv.training.datamodule import BUILDERS, Splits
from geoconv.training.engine import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
# What a resumed run must reproduce; throughput and memory are measurements of the attempt.
TIMINGS = ("train/samples_per_s", "peak_memory_mb", "peak_memory_delta_mb")


class Blobs(Dataset):
    """A SignalDataset-like set: ``classes`` classes told apart by the signal's mean."""

    def __init__(self, grid: str, size: int, n: int, seed: int, classes: int = 3, segmentation: bool = False) -> None:
        generator = torch.Generator().manual_seed(seed)
        shape = get_grid(grid).shape(n, 1, size)
        labels = torch.randint(0, classes, (n,), generator=generator)
        offsets = (labels.float() - (classes - 1) / 2).view(-1, *[1] * (len(shape) - 1))
        self.inputs = torch.randn(shape, generator=generator) * 0.5 + offsets
        self.targets = (self.inputs > 0).float() if segmentation else labels
        self.grid, self.size, self.name = grid, size, "blobs"
        self.classes = 0 if segmentation else classes
        self.poisoned = False

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs[index]
        return (torch.full_like(x, math.nan) if self.poisoned else x), self.targets[index]


def blobs(data: dict[str, Any], grid: str, size: int) -> Splits:
    """The ``blobs`` data kind: ``data.n`` training samples and two test sets."""
    seed, segmentation = data.get("seed", 0), data.get("segmentation", False)
    train = Blobs(grid, size, data.get("n", 64), seed, segmentation=segmentation)
    tests = {tag: Blobs(grid, size, 32, seed + 1 + i, segmentation=segmentation) for i, tag in enumerate(("nr", "r"))}
    return Splits(train, tests, train.classes, "r")


@pytest.fixture(autouse=True)
def _blobs_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILDERS, "blobs", blobs)


def compose_config(
    *overrides: str,
    grid: str = "planar",
    size: int = 8,
    model: tuple[str, ...] = ("model=classifier", "model.widths=[4,8]"),
) -> DictConfig:
    """A training config from the real tree: a small classifier on ``blobs``, 1 epoch, CPU."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "job.name=train",
                *model,
                f"grid={grid}",
                f"grid.size={size}",
                "data.kind=blobs",
                "device=cpu",
                "seed=7",
                "trainer.batch_size=16",
                "trainer.lr=0.01",
                "trainer.progress_bar=false",
                "trainer.val_fraction=0.25",
                *overrides,
            ],
        )


def payload(out: Path) -> dict[str, Any]:
    return json.loads((out / "metrics.json").read_text())


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = state_dict(a), state_dict(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


# -- learning -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("grid", "size"), [("planar", 8), ("healpix", 2)])
def test_one_epoch_ends_with_a_finite_loss_below_the_start(tmp_path: Path, grid: str, size: int) -> None:
    out = tmp_path / "run"
    metrics = run(compose_config("+data.n=96", grid=grid, size=size), out)
    assert payload(out)["status"] == "ok" and payload(out)["metrics"] == pytest.approx(metrics, nan_ok=True)
    assert math.isfinite(metrics["val/loss"]) and math.isfinite(metrics["train/loss"])
    assert metrics["val/loss"] < metrics["val/loss_start"] and metrics["val/acc"] > metrics["val/acc_start"]
    assert metrics["epochs"] == 1 and metrics["steps"] == math.ceil(72 / 16)
    assert 0 <= metrics["test/acc_nr"] <= 1 and 0 <= metrics["test/acc_r"] <= 1
    assert metrics["test/acc"] == metrics["test/acc_r"]  # the protocol's own test set
    assert metrics["params"] == sum(
        v.numel()
        for k, v in state_dict(out / "checkpoints" / "last.ckpt").items()
        if "running" not in k and "num_batches" not in k
    )
    assert metrics["train/samples_per_s"] > 0 and metrics["peak_memory_mb"] > metrics["peak_memory_delta_mb"] >= 0
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert "val/loss" in (out / "logs" / "version_0" / "metrics.csv").read_text()


@pytest.mark.parametrize(
    ("grid", "size", "data"),
    [
        ("planar", 16, ["data.kind=translated_digits", "+data.limit=160", "+data.test_limit=32"]),
        (
            "healpix",
            4,
            ["data.kind=spherical_digits", "+data.split_protocol=NR/R", "+data.limit=160", "+data.test_limit=32"],
        ),
    ],
)
def test_one_epoch_on_real_digits_lowers_the_loss(tmp_path: Path, grid: str, size: int, data: list[str]) -> None:
    out = tmp_path / "run"
    metrics = run(compose_config(*data, "trainer.lr=0.02", grid=grid, size=size), out)
    assert math.isfinite(metrics["val/loss"]) and metrics["val/loss"] < metrics["val/loss_start"]
    assert metrics["val/acc"] > metrics["val/acc_start"]
    if grid == "planar":
        assert "test/acc" in metrics and "test/acc_nr" not in metrics
    else:
        assert {"test/acc_nr", "test/acc_r"} <= set(metrics) and metrics["test/acc"] == metrics["test/acc_r"]


@pytest.mark.slow
def test_earth_segmentation_with_a_unet_reports_canonical_and_rotated_iou(tmp_path: Path) -> None:
    unet = ("model=unet", "model.widths=[8,16]")
    overrides = ("data.kind=earth_segmentation", "+data.samples=4", "trainer.max_epochs=3", "trainer.lr=0.02")
    metrics = run(compose_config(*overrides, grid="healpix", size=4, model=unet), tmp_path / "run")
    assert metrics["val/loss"] < metrics["val/loss_start"]
    assert {"test/iou_nr", "test/iou_r", "test/pixel_acc_nr", "test/pixel_acc_r"} <= set(metrics)
    assert metrics["test/iou"] == metrics["test/iou_nr"]  # trained on the canonical Earth


def test_segmentation_reports_iou_and_pixel_accuracy(tmp_path: Path) -> None:
    # A one-channel stack is a segmentation model by shape: logits (B, 1, H, W).
    out = tmp_path / "run"
    stack = ("model=stack", "model.channels=1", "model.depth=1")
    metrics = run(compose_config("+data.segmentation=true", "trainer.max_epochs=2", model=stack), out)
    for name in ("iou", "pixel_acc"):
        for key in (f"val/{name}", f"test/{name}_nr", f"test/{name}_r", f"test/{name}"):
            assert 0 <= metrics[key] <= 1, key
    assert metrics["val/loss"] < metrics["val/loss_start"]
    assert "test/acc" not in metrics


def test_segmentation_metrics_are_exact_counts() -> None:
    task = GeoconvTask(torch.nn.Identity(), task="segmentation")
    logits = torch.tensor([[[[2.0, -1.0], [3.0, -2.0]]]])  # predicts land at (0, 0) and (1, 0)
    masks = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    _, counts = task.evaluate(logits, masks)
    metrics = task._metrics(counts)
    assert metrics["iou"] == pytest.approx(1 / 3) and metrics["pixel_acc"] == pytest.approx(2 / 4)


# -- kill and resume ----------------------------------------------------------------------------

_KILLED_RUN = """
import sys, time
from pathlib import Path
import torch
from omegaconf import OmegaConf
sys.path.insert(0, {tests!r})
import test_engine
from geoconv.experiment.runner import run
from geoconv.training import GeoconvTask
from geoconv.training.datamodule import BUILDERS

torch.set_num_threads({threads})
BUILDERS["blobs"] = test_engine.blobs
start = GeoconvTask.on_train_epoch_start

def pause_in_second_epoch(self):
    # Epoch 0's checkpoint is on disk before epoch 1 starts: the parent kills us here.
    if self.current_epoch == 1:
        Path({marker!r}).write_text("checkpointed")
        time.sleep(600)
    start(self)

GeoconvTask.on_train_epoch_start = pause_in_second_epoch
run(OmegaConf.load({config!r}), Path({out!r}))
"""


def test_a_killed_run_resumes_to_the_metrics_and_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    overrides = ("trainer.max_epochs=2", "trainer.scheduler=cosine", "trainer.optimizer=sgd")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    expected = run(compose_config(*overrides), whole)

    config, marker = tmp_path / "config.yaml", tmp_path / "checkpointed"
    OmegaConf.save(compose_config(*overrides), config)
    script = _KILLED_RUN.format(
        tests=str(Path(__file__).parent),
        threads=torch.get_num_threads(),
        marker=str(marker),
        config=str(config),
        out=str(killed),
    )
    log = tmp_path / "killed.log"  # a file, not a pipe: a full pipe would stall the child
    with log.open("w") as sink:
        child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if child.poll() is not None:
                pytest.fail(f"the run to kill ended on its own (rc {child.returncode}):\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail("the run to kill never reached its second epoch")
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()
    checkpoint = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0

    resumed = run(compose_config(*overrides, "++ckpt_path=last"), killed)
    assert payload(killed)["status"] == "ok"
    assert {k: v for k, v in resumed.items() if k not in TIMINGS} == {
        k: v for k, v in expected.items() if k not in TIMINGS
    }
    assert_same_weights(whole / "checkpoints" / "last.ckpt", killed / "checkpoints" / "last.ckpt")
    # The resumed attempt logs beside the killed one instead of over it.
    assert sorted(p.name for p in (killed / "logs").iterdir()) == ["version_0", "version_1"]


def test_checkpoints_are_written_beside_their_target_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lightning's own writer stages the file in the system's temporary directory and moves it:
    # a copy, not a rename, when that is another file system; a kill then truncates last.ckpt.
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def recording_replace(source: Any, target: Any) -> None:
        renames.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    out = tmp_path / "run"
    run(compose_config(), out)
    checkpoints = out / "checkpoints"
    written = [(source, target) for source, target in renames if target.suffix == ".ckpt"]
    assert {target.name for _, target in written} == {p.name for p in checkpoints.iterdir()} >= {"last.ckpt"}
    for source, target in written:
        assert source.parent == target.parent == checkpoints and source.name.startswith(f".{target.name}.")
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 3


def test_resuming_a_finished_run_for_more_epochs_matches_a_longer_run(tmp_path: Path) -> None:
    whole, staged = tmp_path / "whole", tmp_path / "staged"
    expected = run(compose_config("trainer.max_epochs=2"), whole)
    run(compose_config("trainer.max_epochs=1"), staged)
    resumed = run(compose_config("trainer.max_epochs=2", "++ckpt_path=last", "overwrite=true"), staged)
    assert {k: v for k, v in resumed.items() if k not in TIMINGS} == {
        k: v for k, v in expected.items() if k not in TIMINGS
    }
    assert_same_weights(whole / "checkpoints" / "last.ckpt", staged / "checkpoints" / "last.ckpt")


def test_resuming_a_finished_run_leaves_its_results_as_they_were(tmp_path: Path) -> None:
    # Issue 11 (a): the resume trained nothing and rewrote metrics.json with 4 metrics fewer and a NaN throughput.
    out = tmp_path / "run"
    finished = run(compose_config("+data.n=48"), out)
    before = {path.name: path.read_bytes() for path in (out / "metrics.json", out / "checkpoints" / "last.ckpt")}
    logs = sorted(p.name for p in (out / "logs").iterdir())
    again = run(compose_config("+data.n=48", "++ckpt_path=last"), out)
    assert again == pytest.approx(finished, nan_ok=True) and math.isfinite(again["train/samples_per_s"])
    assert (out / "metrics.json").read_bytes() == before["metrics.json"]
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before["last.ckpt"]
    assert sorted(p.name for p in (out / "logs").iterdir()) == logs  # no Lightning attempt at all


def test_resuming_a_finished_run_without_results_says_so(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(compose_config("+data.n=48"), out)
    (out / "metrics.json").unlink()  # as after a kill while testing, past the last checkpoint
    with pytest.raises(GeoconvError, match=r"already trained 1 epoch\(s\) and trainer.max_epochs=1.*overwrite=true"):
        run(compose_config("+data.n=48", "++ckpt_path=last"), out)
    assert payload(out)["status"] == "failed" and "nothing to resume" in payload(out)["error"]


# -- bad checkpoints ----------------------------------------------------------------------------


def test_a_missing_checkpoint_is_an_error_naming_the_path(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="no checkpoint file at .*checkpoints/last.ckpt") as caught:
        run(compose_config("++ckpt_path=last"), out)
    assert str(out / "checkpoints" / "last.ckpt") in str(caught.value)
    assert payload(out)["status"] == "failed" and "CheckpointError" in payload(out)["error"]
    assert not (out / "logs").exists()  # nothing was trained


def test_a_truncated_checkpoint_is_an_error_naming_the_path(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(compose_config(), out)
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(GeoconvError, match="cannot be read") as caught:
        run(compose_config("++ckpt_path=last", "overwrite=true"), out)
    assert str(last) in str(caught.value)
    assert payload(out)["status"] == "failed"
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["version_0"]  # no second attempt started


def test_a_checkpoint_of_another_model_is_named_as_such(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(compose_config(), out)
    with pytest.raises(CheckpointError, match="different model"):
        # One more epoch than the run has trained, so there is something to resume.
        overrides = ("trainer.max_epochs=2", "++ckpt_path=last", "overwrite=true")
        run(compose_config(*overrides, model=("model=classifier", "model.widths=[4,6]")), out)


def test_starting_afresh_over_checkpoints_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(compose_config(), out)
    (out / "metrics.json").unlink()  # as after a kill
    with pytest.raises(GeoconvError, match="ckpt_path=last"):
        run(compose_config(), out)
    stale = out / "checkpoints" / "epoch=8-step=99.ckpt"
    stale.write_bytes(b"an older run's")
    run(compose_config("overwrite=true"), out)
    assert not stale.exists() and (out / "checkpoints" / "last.ckpt").is_file()


# -- divergence and bad input -------------------------------------------------------------------


def test_a_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = GeoconvTask.on_train_epoch_start

    def poison_second_epoch(self: GeoconvTask) -> None:
        if self.current_epoch == 1:
            self.trainer.datamodule.splits.train.poisoned = True
        start(self)

    monkeypatch.setattr(GeoconvTask, "on_train_epoch_start", poison_second_epoch)
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"nan at global step 3 \(epoch 1, batch 0\)") as caught:
        run(compose_config("trainer.max_epochs=3"), out)
    # 64 samples, a quarter held out, batches of 16: three steps an epoch.
    assert caught.value.step == 3 and caught.value.epoch == 1
    assert payload(out)["status"] == "failed" and "global step 3" in payload(out)["error"]
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_batch_size_zero_is_refused_before_any_data_or_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    monkeypatch.setitem(BUILDERS, "blobs", lambda *args: built.append("data") or blobs(*args))
    out = tmp_path / "run"
    with pytest.raises(GeoconvError, match="trainer.batch_size must be an integer >= 1, got 0"):
        run(compose_config("trainer.batch_size=0"), out)
    assert built == [] and not (out / "checkpoints").exists()
    assert payload(out)["status"] == "failed"
    with pytest.raises(GeoconvError, match="batch_size"):
        SignalDataModule({"kind": "blobs"}, "planar", 8, batch_size=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.optimizer=lbfgs", "unknown trainer.optimizer: 'lbfgs'"),
        ("trainer.scheduler=step", "unknown trainer.scheduler"),
        ("+trainer.max_epoch=3", "unknown trainer key: 'max_epoch'; did you mean 'max_epochs'"),
        ("data.kind=nosie", "unknown data kind"),
        ("trainer.precision=17-weird", "Lightning rejected the trainer settings"),
    ],
)
def test_bad_trainer_and_data_settings_are_named_before_any_data_are_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: str, message: str
) -> None:
    built: list[str] = []
    monkeypatch.setitem(BUILDERS, "blobs", lambda *args: built.append("data") or blobs(*args))
    with pytest.raises(GeoconvError, match=message):
        run(compose_config(override), tmp_path / "run")
    assert built == [] and not (tmp_path / "run" / "checkpoints").exists()


def test_the_trainer_config_declares_exactly_the_engine_defaults() -> None:
    declared = yaml.safe_load((CONF / "trainer" / "default.yaml").read_text())
    assert declared == TRAINER_DEFAULTS


def test_consistency_counts_agreeing_predictions() -> None:
    from geoconv.training.engine import _consistency

    first = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    pair = (_Sized(first), _Sized(second))
    # The identity "classifier" predicts the argmax of the input: samples 0 and 2 agree.
    assert _consistency(torch.nn.Identity(), pair, batch_size=3, device=torch.device("cpu")) == 0.5


class _Sized:
    def __init__(self, inputs: torch.Tensor) -> None:
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)
