"""Figures of a training run: the curves read from the CSV logs, the confusion matrix, the PNGs.

The numbers behind each figure are checked against an independent computation (the
model's argmax counted with numpy, the per-epoch series written into a synthetic log);
that the PNGs exist is checked as well, not instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import geoconv
from geoconv.data.base import SignalDataset
from geoconv.data.registry import get_dataset
from geoconv.grids import get_grid
from geoconv.nn.build import build_model
from geoconv.training.figures import confusion_matrix, read_curves, training_figures

PNG = b"\x89PNG\r\n\x1a\n"

# Lightning's CSVLogger layout: the validation before training at step 0, then per epoch a
# validation row and a training row at the epoch's last step; per-step rows; the test row.
VERSION_0 = """epoch,step,test/acc_nr,train/acc,train/loss,train/loss_step,val/acc,val/loss
0,0,,,,,0.10,2.40
0,1,,,,2.35,,
0,3,,,,,0.20,2.20
0,3,,0.15,2.30,,,
1,5,,,,2.10,,
1,7,,,,,0.30,2.00
1,7,,0.35,2.05,,,
"""
# The resumed attempt: epoch 1 trained again (the killed attempt's values are replaced), then 2, then the test.
VERSION_1 = """epoch,step,test/acc_nr,test/acc_r,train/acc,train/loss,val/acc,val/loss
1,7,,,,,0.32,1.98
1,7,,,0.36,2.04,,
2,11,,,,,0.50,1.70
2,11,,,0.55,1.60,,
3,12,0.48,0.21,,,,
"""


def _logs(folder: Path, *versions: tuple[int, str]) -> Path:
    for number, text in versions:
        (folder / "logs" / f"version_{number}").mkdir(parents=True)
        (folder / "logs" / f"version_{number}" / "metrics.csv").write_text(text)
    return folder


def test_curves_of_a_resumed_run_are_one_series_per_metric(tmp_path: Path) -> None:
    curves = read_curves(_logs(tmp_path, (0, VERSION_0), (1, VERSION_1)))
    assert curves is not None
    # x = epochs trained: the validation before training at 0, the end of epoch e at e + 1.
    expected = {
        "val/loss": ([0, 1, 2, 3], [2.40, 2.20, 1.98, 1.70]),
        "val/acc": ([0, 1, 2, 3], [0.10, 0.20, 0.32, 0.50]),
        "train/loss": ([1, 2, 3], [2.30, 2.04, 1.60]),
        "train/acc": ([1, 2, 3], [0.15, 0.36, 0.55]),
    }
    assert sorted(curves.series) == sorted(expected)  # no train/loss_step, no epoch or step
    for name, (epochs, values) in expected.items():
        got_epochs, got_values = curves.curve(name)
        np.testing.assert_array_equal(got_epochs, epochs)
        np.testing.assert_allclose(got_values, values)
    assert curves.test == {"test/acc_nr": 0.48, "test/acc_r": 0.21}
    assert curves.resumed_at == [1]
    assert curves.curve("val/iou")[0].size == 0


def test_versions_are_read_in_numeric_order(tmp_path: Path) -> None:
    row = "epoch,step,val/loss\n0,4,{}\n"
    curves = read_curves(_logs(tmp_path, (10, row.format(1.0)), (9, row.format(9.0)), (2, row.format(2.0))))
    assert curves is not None and curves.series["val/loss"] == {1: 1.0}  # version_10 is the last attempt
    assert read_curves(tmp_path / "nowhere") is None


def _classifier_and_digits(norm: str = "batch") -> tuple[torch.nn.Module, SignalDataset]:
    data = get_dataset("translated_digits")({"limit": 4, "test_limit": 37}, "planar", 16).tests[""]
    plain = {
        "op": {"name": "conv", "params": {}},
        "grid": {"name": "planar"},
        "model": {"kind": "classifier", "widths": [4], "norm": norm},
    }
    torch.manual_seed(0)
    model = build_model(plain, 1, 10)
    model(data.inputs[:8])  # lazy parameters; moves the batch-norm statistics away from their start
    return model, data


def test_the_confusion_matrix_counts_the_models_argmax(tmp_path: Path) -> None:
    model, data = _classifier_and_digits()
    model.train()
    with torch.no_grad():  # the whole set at once, in eval mode (batch norm: running statistics)
        predicted = model.eval()(data.inputs).argmax(1).numpy()
    model.train()
    truth = data.targets.numpy()
    expected = np.bincount(truth * 10 + predicted, minlength=100).reshape(10, 10)
    # Batches of 5 (37 is not a multiple): eval mode makes the answer independent of the batching.
    matrix = confusion_matrix(model, data, batch_size=5)
    assert matrix.dtype == np.int64 and matrix.shape == (10, 10)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == 37 and np.trace(matrix) == int((predicted == truth).sum())
    assert model.training  # the model's mode is given back
    # A plain data set (no .inputs) goes through a DataLoader and counts the same.
    plain = torch.utils.data.TensorDataset(data.inputs, data.targets)
    np.testing.assert_array_equal(confusion_matrix(model, plain, batch_size=8), expected)
    with pytest.raises(geoconv.GeoconvError, match=r"labels and predictions must lie in \[0, 3\)"):
        confusion_matrix(model, data, classes=3)


def test_classification_figures_are_written(tmp_path: Path) -> None:
    model, data = _classifier_and_digits()
    _logs(tmp_path, (0, VERSION_0), (1, VERSION_1))
    names = [f"digit {i}" for i in range(10)]
    paths = training_figures(
        tmp_path, model=model, test_set=data, task="classification", grid="planar", size=16, class_names=names
    )
    assert [p.name for p in paths] == ["training_curves.png", "confusion_matrix.png"]
    for path in paths:
        assert path.parent == tmp_path and path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def _segmentation_set(grid: str, size: int, n: int = 5, channels: int = 3) -> SignalDataset:
    """Masks of a cap around a random direction; inputs that show it, plus noise."""
    generator = torch.Generator().manual_seed(3)
    vectors = torch.from_numpy(get_grid(grid).vectors(get_grid(grid).resolution(size))).float()
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=1)
    masks = ((vectors @ directions.T).movedim(-1, 0) > 0.3).float()[:, None]
    inputs = (masks.repeat(1, channels, *[1] * (masks.dim() - 2)) * 0.6 + 0.2).clamp(0, 1)
    return SignalDataset(inputs, masks, grid, size, 0, "caps")


@pytest.mark.parametrize(("grid", "size", "channels"), [("healpix", 8, 3), ("cubemap", 8, 1), ("equirect", 8, 1)])
def test_segmentation_figures_are_written_on_the_sphere(grid: str, size: int, channels: int, tmp_path: Path) -> None:
    data = _segmentation_set(grid, size, channels=channels)
    plain = {"op": {"name": "conv", "params": {}}, "grid": {"name": grid}, "model": {"kind": "unet", "widths": [4, 8]}}
    torch.manual_seed(0)
    model = build_model(plain, channels, 1)
    _logs(tmp_path, (0, "epoch,step,train/iou,val/iou,train/loss,val/loss\n0,0,,0.1,,0.9\n0,2,0.3,0.2,0.7,0.8\n"))
    paths = training_figures(tmp_path, model=model, test_set=data, task="segmentation", grid=grid, size=size)
    assert [p.name for p in paths] == ["training_curves.png", "predictions.png"]
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 10_000 for p in paths)


def test_segmentation_figures_on_the_plane_are_images(tmp_path: Path) -> None:
    masks = (torch.rand(3, 1, 12, 20, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    data = SignalDataset(masks * 2.0 - 1.0, masks, "planar", 12, 0, "noise")
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    paths = training_figures(tmp_path, model=model, test_set=data, task="segmentation", grid="planar", size=12)
    assert [p.name for p in paths] == ["predictions.png"]  # no logs: no curves
    assert paths[0].read_bytes()[:8] == PNG


def test_a_figure_that_fails_is_a_warning_not_a_failed_run(tmp_path: Path, caplog) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("out of memory, say")

    _, data = _classifier_and_digits()
    _logs(tmp_path, (0, VERSION_0))
    with caplog.at_level(logging.INFO, logger="geoconv.training.figures"):
        paths = training_figures(tmp_path, model=Broken(), test_set=data, task="classification", grid="planar", size=16)
    assert [p.name for p in paths] == ["training_curves.png"]
    assert not (tmp_path / "confusion_matrix.png").exists()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1 and "confusion_matrix.png not drawn: RuntimeError: out of memory, say" in warnings[0].message
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="geoconv.training.figures"):
        model, _ = _classifier_and_digits()
        fresh = tmp_path / "fresh"
        paths = training_figures(fresh, model=model, test_set=data, task="classification", grid="planar", size=16)
    assert [p.name for p in paths] == ["confusion_matrix.png"]
    assert any("training_curves.png skipped: no metrics" in r.message for r in caplog.records)
    with pytest.raises(geoconv.GeoconvError, match="task must be one of"):
        training_figures(tmp_path, model=model, test_set=data, task="regression", grid="planar", size=16)


def test_only_rank_zero_draws(tmp_path: Path, monkeypatch) -> None:
    model, data = _classifier_and_digits()
    monkeypatch.setenv("RANK", "1")
    assert training_figures(tmp_path, model=model, test_set=data, task="classification", grid="planar", size=16) == []
    assert list(tmp_path.iterdir()) == []
