"""Demonstration folders: the spectra they claim (healpy.anafast), deterministic, learnable, safe to write."""

from __future__ import annotations

import csv
from pathlib import Path

import healpy
import numpy as np
import pytest
import torch
from PIL import Image

from geoconv.data.demo import PNG_RANGE, SPECTRA, main, spectrum, write_power_spectrum_folder, write_segmentation_folder
from geoconv.errors import GeoconvError
from geoconv.grids import convert
from geoconv.grids.healpix import ring_to_faces

NSIDE = 8


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def spectra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_power_spectrum_folder(tmp_path_factory.mktemp("demo") / "spectra", n_maps=16, nside=NSIDE, seed=0)


def test_each_class_has_the_power_spectrum_it_is_drawn_from(spectra: Path) -> None:
    rows = _rows(spectra)
    assert [r["label"] for r in rows] == ["shallow", "steep"] * 8
    lmax, ell = 3 * NSIDE - 1, np.arange(2, 2 * NSIDE + 1)
    for label, exponent in SPECTRA.items():
        measured = np.mean(
            [healpy.anafast(healpy.read_map(str(spectra / r["file"])), lmax=lmax) for r in rows if r["label"] == label],
            axis=0,
        )
        ratio = measured[ell] / spectrum(exponent, lmax)[ell]
        assert 0.85 < ratio.mean() < 1.15, (label, ratio)
        # Unit pixel variance on average, whatever the spectrum.
        variance = np.mean([healpy.read_map(str(spectra / r["file"])).var() for r in rows if r["label"] == label])
        assert 0.7 < variance < 1.3, (label, variance)


def test_the_classes_differ_in_texture_after_one_standardisation_for_all(spectra: Path) -> None:
    maps = {r["file"]: (r["label"], healpy.read_map(str(spectra / r["file"]))) for r in _rows(spectra)}
    values = np.concatenate([m for _, m in maps.values()])
    neighbours = healpy.get_all_neighbours(NSIDE, np.arange(12 * NSIDE**2))
    roughness: dict[str, list[float]] = {"shallow": [], "steep": []}
    for label, m in maps.values():
        z = (m - values.mean()) / values.std()
        differences = [(z - z[n])[n >= 0] ** 2 for n in neighbours]
        roughness[label].append(float(np.mean(np.concatenate(differences))))
    # A 3x3 difference filter, the first layer a CNN could learn, separates every map.
    assert min(roughness["shallow"]) > 2 * max(roughness["steep"])


def test_the_same_seed_writes_the_same_maps(tmp_path: Path) -> None:
    first = write_power_spectrum_folder(tmp_path / "a", n_maps=4, nside=2, fmt="npy", seed=5)
    second = write_power_spectrum_folder(tmp_path / "b", n_maps=4, nside=2, fmt="npy", seed=5)
    third = write_power_spectrum_folder(tmp_path / "c", n_maps=4, nside=2, fmt="npy", seed=6)
    for name in ("map_000.npy", "map_003.npy"):
        assert np.array_equal(np.load(first / name), np.load(second / name))
        assert not np.array_equal(np.load(first / name), np.load(third / name))
    assert np.load(first / "map_000.npy").shape == (1, 12, 2, 2)


def test_png_maps_are_the_fits_maps_on_equirect_on_one_fixed_scale(tmp_path: Path) -> None:
    fits = write_power_spectrum_folder(tmp_path / "fits", n_maps=2, nside=4, seed=1)
    png = write_power_spectrum_folder(tmp_path / "png", n_maps=2, nside=4, fmt="png", seed=1)
    assert [r["file"] for r in _rows(png)] == ["map_000.png", "map_001.png"]
    for i in range(2):
        ring = healpy.read_map(str(fits / f"map_00{i}.fits")).astype(np.float32)
        faces = torch.from_numpy(ring_to_faces(ring))[None, None]
        equirect = convert(faces, "healpix", "equirect", 8)[0, 0].numpy()
        expected = np.clip((equirect + PNG_RANGE) / (2 * PNG_RANGE), 0, 1) * 255
        image = np.asarray(Image.open(png / f"map_00{i}.png"))
        assert image.shape == (8, 16) and image.dtype == np.uint8
        assert np.abs(image - expected).max() <= 0.5 + 1e-3


def test_segmentation_masks_mark_where_the_smooth_field_is_positive(tmp_path: Path) -> None:
    folder = write_segmentation_folder(tmp_path / "seg", n_maps=4, nside=NSIDE, seed=2)
    agree = []
    for i in range(4):
        x = healpy.read_map(str(folder / f"map_00{i}.fits"))
        mask = healpy.read_map(str(folder / "masks" / f"map_00{i}.fits"))
        assert set(np.unique(mask)) == {0.0, 1.0}
        agree.append(np.mean((x > 0) == (mask > 0.5)))
    # Noise of std 0.5 on a unit-variance field flips the sign at about 15 % of the pixels.
    assert 0.75 < np.mean(agree) < 0.97


def test_a_non_empty_folder_is_refused_unless_overwrite_which_keeps_foreign_files(tmp_path: Path) -> None:
    folder = write_power_spectrum_folder(tmp_path / "f", n_maps=6, nside=2)
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(GeoconvError, match=r"f' is not empty; .* overwrite=True"):
        write_power_spectrum_folder(folder, n_maps=2, nside=2)
    write_power_spectrum_folder(folder, n_maps=2, nside=2, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["labels.csv", "map_000.fits", "map_001.fits", "mine.txt"]


def test_the_command_line_writes_a_folder_and_says_how_to_train_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "cli"), "--kind", "segmentation", "--format", "npy", "--n", "2", "--nside", "2"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 npy maps and their masks" in out and "experiment=segment" in out and "grid.size=2" in out
    assert sorted(p.name for p in (tmp_path / "cli" / "masks").iterdir()) == ["map_000.npy", "map_001.npy"]
    assert main([str(tmp_path / "cli")]) == 2
    assert "is not empty" in capsys.readouterr().err
