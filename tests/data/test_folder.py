"""A folder of one's own maps as a data set: labels, masks, split, statistics, cache and the errors."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import healpy
import numpy as np
import pytest
import torch
from PIL import Image

from geoconv.data import get_dataset
from geoconv.data.demo import write_power_spectrum_folder, write_segmentation_folder
from geoconv.data.files import read_map, to_grid
from geoconv.data.folder import FolderWarning, split_indices
from geoconv.errors import GeoconvError, ParameterError
from geoconv.grids import convert

build = get_dataset("folder")


def _labels(folder: Path) -> dict[str, str]:
    with open(folder / "labels.csv", newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}


def _which_file(sample: torch.Tensor, files: dict[str, torch.Tensor]) -> str:
    """The file whose regridded values are ``sample`` (each demo map is different)."""
    matches = [name for name, values in files.items() if torch.equal(values, sample)]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.fixture(scope="module")
def spectra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_power_spectrum_folder(tmp_path_factory.mktemp("data") / "spectra", n_maps=8, nside=4)


@pytest.mark.parametrize(("grid", "size"), [("healpix", 4), ("equirect", 8)])
def test_a_classification_folder_gives_each_file_its_label_and_the_training_statistics(
    spectra: Path, grid: str, size: int
) -> None:
    splits = build({"path": str(spectra)}, grid, size)
    labels = _labels(spectra)
    assert splits.class_names == ("shallow", "steep") and splits.classes == 2 and tuple(splits.tests) == ("",)
    train, test = splits.train, splits.tests[""]
    assert (len(train), len(test)) == (6, 2)  # a quarter of 8 held out
    # Every file once, with its regridded values (convert from HEALPix, independently computed).
    expected = {}
    for name in labels:
        faces = torch.from_numpy(ring_to_faces_of(spectra / name))
        expected[name] = faces if grid == "healpix" else convert(faces[None], "healpix", grid, size)[0]
        assert torch.equal(expected[name], to_grid(read_map(spectra / name), grid, size))
    seen = []
    for dataset in (train, test):
        for x, y in dataset:
            name = _which_file(x, expected)
            seen.append(name)
            assert splits.class_names[int(y)] == labels[name]
    assert sorted(seen) == sorted(labels)
    # Stratified: one test map per class.
    assert sorted(int(y) for _, y in test) == [0, 1]
    inputs = train.inputs.numpy().astype(np.float64)
    axes = (0, *range(2, inputs.ndim))
    mean, std = splits.standardize
    np.testing.assert_allclose(mean, inputs.mean(axis=axes), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std, inputs.std(axis=axes), rtol=1e-12)


def ring_to_faces_of(path: Path) -> np.ndarray:
    """healpy's reading of a RING file, in faces (the reference for read_map)."""
    from geoconv.grids.healpix import ring_to_faces

    return ring_to_faces(np.atleast_2d(healpy.read_map(str(path), field=None)).astype(np.float32))


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(spectra: Path, tmp_path: Path) -> None:
    data = {"path": str(spectra), "cache_dir": str(tmp_path / "cache")}
    first = build(data, "healpix", 4)
    second = build(data, "healpix", 4)
    assert not first.train.from_cache and second.train.from_cache
    assert torch.equal(first.train.inputs, second.train.inputs) and first.standardize == second.standardize
    target = spectra / "map_003.fits"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = build(data, "healpix", 4)
    assert not third.train.from_cache
    assert build(data, "healpix", 2).train.from_cache is False  # another size: another key


def test_the_split_column_fixes_samples_and_integer_labels_sort_numerically(tmp_path: Path) -> None:
    for i in range(6):
        np.save(tmp_path / f"m{i}.npy", np.full((1, 4, 8), float(i), dtype=np.float32))
    rows = [("m0.npy", "10", "test"), ("m1.npy", "9", ""), ("m2.npy", "10", ""), ("m3.npy", "9", "train")]
    rows += [("m4.npy", "10", "train"), ("m5.npy", "9", "")]
    text = "file,label,split,comment\n" + "".join(f"{f},{label},{s},x\n" for f, label, s in rows)
    (tmp_path / "labels.csv").write_text(text)
    splits = build({"path": str(tmp_path), "test_fraction": 0.25}, "equirect", 4)
    assert splits.class_names == ("9", "10")
    by_value = {
        int(x[0, 0, 0]): (tag, int(y))
        for tag, data in (("train", splits.train), ("test", splits.tests[""]))
        for x, y in data
    }
    assert by_value[0] == ("test", 1) and by_value[3] == ("train", 0) and by_value[4] == ("train", 1)
    assert {i: by_value[i][1] for i in range(6)} == {0: 1, 1: 0, 2: 1, 3: 0, 4: 1, 5: 0}


def test_split_indices_is_seeded_stratified_and_keeps_both_splits() -> None:
    groups = [0] * 6 + [1] * 2
    train, test = split_indices(8, test_fraction=0.25, seed=3, groups=groups)
    assert len(test) == 2 and sorted(groups[i] for i in test) == [0, 1]
    assert split_indices(8, test_fraction=0.25, seed=3, groups=groups) == (train, test)
    assert any(split_indices(8, test_fraction=0.25, seed=s, groups=groups)[1] != test for s in range(4, 10))
    assert split_indices(2, test_fraction=0.9) in (([0], [1]), ([1], [0]))
    with pytest.raises(GeoconvError, match="left the training set empty"):
        split_indices(2, fixed=["test", "test"])


def test_a_segmentation_folder_pairs_each_input_with_its_binary_mask(tmp_path: Path) -> None:
    folder = write_segmentation_folder(tmp_path / "fields", n_maps=4, nside=4)
    splits = build({"path": str(folder)}, "healpix", 4)
    assert splits.classes == 0 and splits.class_names == () and (len(splits.train), len(splits.tests[""])) == (3, 1)
    inputs = {p.name: read_map(p).values for p in sorted(folder.glob("*.fits"))}
    for data in (splits.train, splits.tests[""]):
        for x, y in data:
            name = _which_file(x, inputs)
            mask = ring_to_faces_of(folder / "masks" / name)
            assert y.dtype == torch.float32 and torch.equal(y, torch.from_numpy((mask > 0.5).astype(np.float32)))


def test_an_image_mask_coded_0_and_1_is_read_as_0_and_1(tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (4, 8), dtype=np.uint8)).save(tmp_path / f"x{i}.png")
        Image.fromarray(np.tile(np.array([0, 1], dtype=np.uint8), (4, 4))).save(tmp_path / "masks" / f"x{i}.png")
    splits = build({"path": str(tmp_path)}, "equirect", 4)
    assert torch.equal(splits.train.targets[0, 0], torch.tensor([[0.0, 1.0] * 4] * 4))


def test_unsupported_files_are_listed_in_a_warning_and_left_out(spectra: Path, tmp_path: Path) -> None:
    folder = write_power_spectrum_folder(tmp_path / "f", n_maps=4, nside=2)
    (folder / "notes.txt").write_text("mine")
    (folder / ".hidden").write_text("")
    with pytest.warns(FolderWarning, match=r"ignoring 1 file\(s\) that are not maps \('notes\.txt'\)"):
        splits = build({"path": str(folder)}, "healpix", 2)
    assert len(splits.train) + len(splits.tests[""]) == 4


# -- errors -------------------------------------------------------------------------------


def _npy_folder(tmp_path: Path, count: int = 3, labels: str | None = None) -> Path:
    for i in range(count):
        np.save(tmp_path / f"m{i}.npy", np.full((4, 8), float(i), dtype=np.float32))
    if labels is not None:
        (tmp_path / "labels.csv").write_text(labels)
    return tmp_path


def test_the_path_must_be_given_and_exist(tmp_path: Path) -> None:
    for data in ({}, {"path": None}, {"path": "???"}):
        with pytest.raises(ParameterError, match=r"data\.path is not set: .* set data\.path=DIR"):
            build(data, "healpix", 4)
    with pytest.raises(GeoconvError, match=r"data\.path '.*nowhere' does not exist"):
        build({"path": str(tmp_path / "nowhere")}, "healpix", 4)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            "file,class\nm0.npy,a\n",
            r"labels\.csv' needs .* columns 'file' and 'label', found \['file', 'class'\]",
        ),
        (
            "file,label\nm0.npy,a\nm1.npy,b\nm9.npy,a\nm2.npy,b\n",
            r"row 4 \(file 'm9\.npy'\): the listed file is not",
        ),
        ("file,label\nm0.npy,a\nm1.npy,b\n", r"labels\.csv' has no row for 1 input\(s\): 'm2\.npy'"),
        ("file,label\nm0.npy,a\nm1.npy,b\nm2.npy,a\nm1.npy,b\n", r"row 5 \(file 'm1\.npy'\): a duplicate row .* row 3"),
        ("file,label\nm0.npy,a\nm1.npy,a\nm2.npy,a\n", r"names 1 class\(es\) \('a',\); need 2"),
        ("file,label\nm0.npy,a\nm1.npy,\nm2.npy,b\n", r"row 3 \(file 'm1\.npy'\): the label is empty"),
        ("file,label,split\nm0.npy,a,val\nm1.npy,b,\nm2.npy,a,\n", r"row 2 .* split must be 'train', 'test' or empty"),
    ],
)
def test_bad_labels_are_named_by_file_and_row(tmp_path: Path, labels: str, message: str) -> None:
    _npy_folder(tmp_path, labels=labels)
    with pytest.raises(GeoconvError, match=message):
        build({"path": str(tmp_path)}, "equirect", 4)


def test_the_task_must_be_clear(tmp_path: Path) -> None:
    _npy_folder(tmp_path)
    neither = r"neither a labels file 'labels\.csv' \(classification\) nor a masks folder 'masks'"
    with pytest.raises(GeoconvError, match=neither):
        build({"path": str(tmp_path)}, "equirect", 4)
    (tmp_path / "labels.csv").write_text("file,label\nm0.npy,a\nm1.npy,b\nm2.npy,a\n")
    (tmp_path / "masks").mkdir()
    with pytest.raises(GeoconvError, match=r"has both a labels file 'labels\.csv' .* masks folder 'masks'"):
        build({"path": str(tmp_path)}, "equirect", 4)
    assert build({"path": str(tmp_path), "task": "classification"}, "equirect", 4).classes == 2
    with pytest.raises(GeoconvError, match=r"input '.*m0\.npy' has no mask in '.*masks'"):
        build({"path": str(tmp_path), "task": "segmentation"}, "equirect", 4)


def test_files_that_cannot_be_stacked_are_named(tmp_path: Path) -> None:
    labels = "file,label\nm0.npy,a\nm1.npy,b\nm2.npy,a\n"
    folder = _npy_folder(tmp_path, labels=labels)
    np.save(folder / "m2.npy", np.zeros((3, 4, 8), dtype=np.float32))
    with pytest.raises(GeoconvError, match=r"differ in channels: '.*m\d\.npy' has 1, '.*m2\.npy' has 3"):
        build({"path": str(folder)}, "equirect", 4)
    np.save(folder / "m2.npy", np.zeros((6, 6), dtype=np.float32))
    np.save(folder / "m0.npy", np.zeros((4, 4), dtype=np.float32))
    np.save(folder / "m1.npy", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(GeoconvError, match=r"m2\.npy' is a map on grid 'planar' at size 6 .* grid 'planar' at size 4"):
        build({"path": str(folder)}, "planar", 4)


def test_too_few_maps_and_a_netcdf_without_its_variable_are_refused(tmp_path: Path) -> None:
    xarray = pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    _npy_folder(tmp_path, count=1, labels="file,label\nm0.npy,a\n")
    with pytest.raises(GeoconvError, match=r"holds 1 map file\(s\); a train and a test split need 2"):
        build({"path": str(tmp_path)}, "equirect", 4)
    lat, lon = np.array([45.0, -45.0]), np.arange(4) * 90.0
    two = {"a": (("lat", "lon"), np.zeros((2, 4))), "b": (("lat", "lon"), np.ones((2, 4)))}
    xarray.Dataset(two, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "n.nc")
    (tmp_path / "labels.csv").write_text("file,label\nm0.npy,a\nn.nc,b\n")
    with pytest.raises(GeoconvError, match=r"n\.nc' holds 2 data variables \['a', 'b'\]; name one with data\.variable"):
        build({"path": str(tmp_path)}, "equirect", 2)
    splits = build({"path": str(tmp_path), "variable": "b"}, "equirect", 2)
    assert sorted(float(x.max()) for data in (splits.train, splits.tests[""]) for x, _ in data) == [0.0, 1.0]
