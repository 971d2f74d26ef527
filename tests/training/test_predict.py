"""``geoconv predict``: a trained run's predictions for map files, in the inputs' own formats.

Each test trains a tiny run on a demonstration folder (``geoconv.data.demo``) in-process with
:func:`geoconv.training.engine.fit`, then runs the command line on files and compares what
it wrote with the trained module's own outputs on the same maps, read back independently
(healpy for FITS, the CSV module for the table).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import healpy
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from geoconv.cli import main
from geoconv.data.demo import write_power_spectrum_folder, write_segmentation_folder
from geoconv.data.files import read_map, to_grid
from geoconv.experiment.config import CONFIG_DIR, register_configs, validate
from geoconv.grids.healpix import faces_to_ring
from geoconv.training.engine import Fitted, fit


def _fit(experiment: str, folder: Path, out: Path, *overrides: str) -> Fitted:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                f"experiment={experiment}",
                f"data.path={folder}",
                f"data.cache_dir={out.parent / 'cache'}",
                "grid.size=4",
                "model.widths=[4,8]",
                "trainer.max_epochs=2",
                "trainer.progress_bar=false",
                "device=cpu",
                *overrides,
            ],
        )
    return fit(validate(cfg), torch.device("cpu"), out)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fitted, Path, Path]:
    root = tmp_path_factory.mktemp("classify")
    folder = write_power_spectrum_folder(root / "maps", n_maps=12, nside=4, fmt="fits")
    return _fit("classify", folder, root / "run"), folder, root / "run"


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fitted, Path, Path]:
    root = tmp_path_factory.mktemp("segment")
    folder = write_segmentation_folder(root / "maps", n_maps=8, nside=4, fmt="fits")
    return _fit("segment", folder, root / "run", "trainer.batch_size=4"), folder, root / "run"


def _logits(fitted: Fitted, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return fitted.task.model.eval()(x)


def test_classification_writes_the_trained_models_labels_and_probabilities(
    classifier: tuple[Fitted, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fitted, folder, run = classifier
    files = sorted(folder.glob("*.fits"))[:5]
    assert main(["predict", str(run), *map(str, files), "--out", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    names = list(fitted.data.splits.class_names)
    assert [row["file"] for row in rows] == [str(f) for f in files]
    x = torch.stack([to_grid(read_map(f), "healpix", 4) for f in files])
    expected = torch.softmax(_logits(fitted, x).double(), dim=1)
    for row, p in zip(rows, expected, strict=True):
        assert row["label"] == names[int(p.argmax())]
        got = [float(row[f"p_{name}"]) for name in names]
        assert got == pytest.approx(p.tolist(), rel=1e-5, abs=1e-7)
    assert f"{files[0]}\t{rows[0]['label']}" in capsys.readouterr().out


def test_segmentation_writes_a_fits_map_per_input_in_its_ordering(
    segmenter: tuple[Fitted, Path, Path], tmp_path: Path
) -> None:
    fitted, folder, run = segmenter
    source = sorted(folder.glob("*.fits"))[0]
    # The same map in NESTED order: the output must come back in NESTED too.
    ring = healpy.read_map(str(source), dtype=np.float64)
    nested = tmp_path / "nested.fits"
    healpy.write_map(str(nested), healpy.reorder(ring, r2n=True), nest=True, dtype=np.float64)
    out = tmp_path / "out"
    assert main(["predict", str(run), str(source), str(nested), "--out", str(out)]) == 0

    x = to_grid(read_map(source), "healpix", 4).unsqueeze(0)
    probability = torch.sigmoid(_logits(fitted, x))[0, 0].double().numpy()
    expected_ring = faces_to_ring(probability)
    got, header = healpy.read_map(str(out / source.name), h=True, dtype=np.float64)
    assert dict(header)["ORDERING"] == "RING"
    np.testing.assert_allclose(got, expected_ring, rtol=0, atol=1e-6)
    got_nested, header = healpy.read_map(str(out / "nested.fits"), nest=True, h=True, dtype=np.float64)
    assert dict(header)["ORDERING"] == "NESTED"
    np.testing.assert_allclose(healpy.reorder(got_nested, n2r=True), expected_ring, rtol=0, atol=1e-6)


def test_another_resolution_is_regridded_with_a_note_and_written_back_at_its_own(
    segmenter: tuple[Fitted, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, run = segmenter
    fine = tmp_path / "fine.fits"
    healpy.write_map(str(fine), np.cos(healpy.pix2ang(8, np.arange(healpy.nside2npix(8)))[0]), dtype=np.float64)
    assert main(["predict", str(run), str(fine), "--out", str(tmp_path / "out")]) == 0
    assert "healpix 8 regridded to healpix 4" in capsys.readouterr().err
    written = healpy.read_map(str(tmp_path / "out" / "fine.fits"), dtype=np.float64)
    assert written.size == healpy.nside2npix(8) and ((written >= 0) & (written <= 1)).all()


def _error(capsys: pytest.CaptureFixture[str], *args: Any) -> str:
    assert main(["predict", *map(str, args)]) == 2
    return capsys.readouterr().err


def test_predict_refuses_what_it_cannot_do(
    classifier: tuple[Fitted, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, folder, run = classifier
    first = sorted(folder.glob("*.fits"))[0]
    # An array that is not in the run's grid layout is refused, naming the file and both shapes.
    np.save(tmp_path / "picture.npy", np.zeros((5, 7), dtype=np.float32))
    message = _error(capsys, run, tmp_path / "picture.npy", "--out", tmp_path / "o1")
    assert "picture.npy" in message and "(5, 7)" in message and "healpix" in message
    # An existing output is not overwritten silently, and --overwrite replaces it.
    out = tmp_path / "o2"
    assert main(["predict", str(run), str(first), "--out", str(out)]) == 0
    assert "predictions.csv exists" in _error(capsys, run, first, "--out", out)
    assert main(["predict", str(run), str(first), "--out", str(out), "--overwrite"]) == 0
    # Not a run; a file of an unknown kind; a run directory given as the input.
    assert "not a training run" in _error(capsys, folder, first, "--out", tmp_path / "o3")
    (tmp_path / "notes.txt").write_text("hello")
    assert "notes.txt" in _error(capsys, run, tmp_path / "notes.txt", "--out", tmp_path / "o4")
