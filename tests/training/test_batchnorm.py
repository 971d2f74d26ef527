"""Precise batch-norm statistics: exact averages over batches, and the engine's hook that recomputes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn

from geoconv.errors import ParameterError
from geoconv.experiment.config import register_configs, validate
from geoconv.nn import BatchNorm
from geoconv.training import train
from geoconv.training.batchnorm import batch_norms, recalibrate_batch_norm

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_statistics_are_the_exact_average_over_the_batches() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), BatchNorm(3, momentum=0.1), nn.ReLU(), nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)
    )
    model.eval()
    batches = [torch.randn(4, 1, 6, 6, dtype=torch.float64) + k for k in range(3)]
    model.double()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "tracked" not in k}
    assert recalibrate_batch_norm(model, iter(batches)) == 3
    # The reference: per batch, the channel mean and the unbiased variance of each norm's input
    # (computed in float64 from the layers before it), averaged over the batches.
    with torch.no_grad():
        firsts = [model[0](x) for x in batches]
        # During the pass the first norm used each batch's own statistics (train mode).
        normed = [F.batch_norm(h, None, None, model[1].weight, model[1].bias, training=True) for h in firsts]
        seconds = [model[3](model[2](h)) for h in normed]
    for layer, inputs in ((model[1], firsts), (model[4], seconds)):
        means = torch.stack([h.mean(dim=(0, 2, 3)) for h in inputs]).mean(0)
        variances = torch.stack([h.transpose(0, 1).flatten(1).var(1, unbiased=True) for h in inputs]).mean(0)
        torch.testing.assert_close(layer.running_mean, means, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.running_var, variances, rtol=1e-12, atol=1e-12)
        assert int(layer.num_batches_tracked) == 3 and layer.momentum == 0.1
    assert not model.training  # the mode is restored
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value), key  # no parameter moved


def test_a_model_without_batch_norm_is_left_alone() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    assert batch_norms(model) == [] and recalibrate_batch_norm(model, [torch.randn(3, 2)]) == 0


def test_limit_and_tuples_of_inputs_and_targets() -> None:
    model = nn.BatchNorm1d(2)
    batches = [(torch.full((2, 2), float(k)) + torch.tensor([[0.0], [1.0]]), torch.zeros(2)) for k in range(5)]
    assert recalibrate_batch_norm(model, batches, limit=2) == 2
    torch.testing.assert_close(model.running_mean, torch.full((2,), 1.0))  # batches 0 and 1: means 0.5, 1.5


def _config(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "job.name=train",
                "model=classifier",
                "model.widths=[4,8]",
                "model.norm=batch",
                "grid=planar",
                "grid.size=12",
                "data=translated_digits",
                "data.limit=96",
                "data.test_limit=16",
                "data.cache_dir=null",
                "device=cpu",
                "trainer.batch_size=16",
                "trainer.max_epochs=2",
                "trainer.progress_bar=false",
                *overrides,
            ],
        )


@pytest.mark.parametrize("batches", [0, 3])
def test_the_engine_recomputes_the_statistics_each_epoch(tmp_path: Path, batches: int) -> None:
    plain = validate(_config(f"trainer.bn_recalibration={batches}"))
    train(plain, torch.device("cpu"), torch.Generator().manual_seed(0), tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    tracked = [int(v) for k, v in state.items() if k.endswith("num_batches_tracked")]
    assert tracked, "the classifier has batch norms"
    # Recomputed: the count restarts at each recalibration and ends at its batch count; otherwise
    # it counts every training step (96 digits - 10% validation = 87 -> 6 steps per epoch, 2 epochs).
    assert tracked == [batches or 12] * len(tracked)


def test_a_negative_batch_count_is_refused(tmp_path: Path) -> None:
    plain = validate(_config("trainer.bn_recalibration=-1"))
    with pytest.raises(ParameterError, match="trainer.bn_recalibration must be an integer >= 0, got -1"):
        train(plain, torch.device("cpu"), torch.Generator().manual_seed(0), tmp_path)
