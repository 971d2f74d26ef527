"""Single map files: read and written against healpy, xarray and Pillow as the references."""

from __future__ import annotations

import sys
from pathlib import Path

import healpy
import numpy as np
import pytest
import torch
from PIL import Image

from geoconv.data.files import FORMATS, MapFile, map_format, map_stem, read_map, to_grid, write_map
from geoconv.errors import GeoconvError, ShapeError
from geoconv.grids import convert
from geoconv.grids.healpix import nest_to_faces, ring_to_faces

xarray = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")


def _random_maps(nside: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, 12 * nside * nside)).astype(np.float32)


# -- FITS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("nest", "suffix"), [(False, ".fits"), (True, ".fits"), (False, ".fits.gz"), (True, ".fit")])
def test_fits_reads_as_the_faces_of_its_ordering_and_writes_back_in_it(tmp_path: Path, nest: bool, suffix: str) -> None:
    maps = _random_maps(4, 2)
    source = tmp_path / f"sky{suffix}"
    healpy.write_map(str(source), maps, nest=nest, dtype=np.float32, column_names=["I", "Q"], coord="G")
    read = read_map(source)
    expected = (nest_to_faces if nest else ring_to_faces)(torch.from_numpy(maps))
    assert torch.equal(read.values, expected)
    assert (read.format, read.grid, read.size) == ("fits", "healpix", 4)
    assert read.meta["ordering"] == ("NESTED" if nest else "RING") and read.meta["columns"] == ["I", "Q"]

    out = write_map(tmp_path / "out" / f"pred{suffix}", 3 * read.values, read)
    back, header = healpy.read_map(str(out), field=None, nest=None, h=True)
    header = dict(header)
    assert header["ORDERING"] == ("NESTED" if nest else "RING")
    assert (header["TTYPE1"], header["TTYPE2"], header["COORDSYS"]) == ("I", "Q", "G")
    np.testing.assert_array_equal(back, 3 * maps)


def test_fits_with_unseen_or_nan_pixels_is_refused_with_the_count(tmp_path: Path) -> None:
    maps = _random_maps(2, 1)
    maps[0, :3] = healpy.UNSEEN
    maps[0, 7] = np.nan
    healpy.write_map(str(tmp_path / "holes.fits"), maps, dtype=np.float32)
    with pytest.raises(GeoconvError, match=r"holes\.fits' has 4 missing pixels .* of 48"):
        read_map(tmp_path / "holes.fits")


def test_fits_that_is_not_a_healpix_map_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all")
    with pytest.raises(GeoconvError, match=r"junk\.fits' is not a HEALPix FITS map"):
        read_map(tmp_path / "junk.fits")


# -- NetCDF -------------------------------------------------------------------------------


def _field(colat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A band-limited closed form: Y_1^0, Re Y_1^1 and Re Y_2^2 up to constants."""
    return np.cos(colat) + 0.5 * np.sin(colat) * np.sin(lon) + 0.25 * np.sin(colat) ** 2 * np.cos(2 * lon)


def _centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.arange(height) + 0.5)[:, None] * np.pi / height, np.arange(width)[None, :] * 2 * np.pi / width


def test_netcdf_south_to_north_and_minus_180_is_flipped_and_rolled_onto_equirect(tmp_path: Path) -> None:
    height, width = 6, 12
    lat = -90 + (np.arange(height) + 0.5) * 180 / height  # south to north, cell centres
    lon = -180 + np.arange(width) * 360 / width  # -180 .. 150
    colat, longitude = np.radians(90 - lat)[:, None], np.radians(lon)[None, :]
    values = _field(colat, longitude)[None]  # a size-1 time dim in front
    dataset = xarray.Dataset({"t2m": (("time", "lat", "lon"), values)}, coords={"time": [3.0], "lat": lat, "lon": lon})
    dataset.to_netcdf(tmp_path / "field.nc")

    read = read_map(tmp_path / "field.nc")
    assert (read.format, read.grid, read.size, read.meta["exact"]) == ("netcdf", "equirect", 6, True)
    expected = _field(*_centres(height, 2 * height))
    np.testing.assert_allclose(read.values[0].numpy(), expected, rtol=0, atol=1e-6)

    out = write_map(tmp_path / "pred.nc", 2 * read.values, read)
    with xarray.open_dataset(out) as back:
        assert back["t2m"].dims == ("time", "lat", "lon")
        np.testing.assert_array_equal(back["lat"].values, lat)
        np.testing.assert_array_equal(back["lon"].values, lon)
        np.testing.assert_allclose(back["t2m"].values, 2 * values, rtol=0, atol=1e-6)


def test_netcdf_nodes_with_both_poles_and_a_wrap_column_are_interpolated_to_the_centres(tmp_path: Path) -> None:
    rows, width = 6, 8
    lat = np.linspace(90, -90, rows + 1)  # nodes, poles included
    lon = np.linspace(0, 360, width + 1)  # 0 and 360: the same meridian twice
    colat = np.radians(90 - lat)[:, None]
    dataset = xarray.Dataset(
        {"z": (("latitude", "longitude"), np.cos(colat) * np.ones((1, width + 1)))},
        coords={"latitude": lat, "longitude": lon},
    )
    dataset.to_netcdf(tmp_path / "nodes.nc")
    read = read_map(tmp_path / "nodes.nc")
    assert read.size == (rows, width) and not read.meta["exact"]
    # The mean of cos at two nodes half a step either side of a centre is cos(centre) cos(step / 2).
    centre = (np.arange(rows) + 0.5) * np.pi / rows
    expected = np.cos(centre) * np.cos(np.pi / rows / 2)
    np.testing.assert_allclose(read.values[0].numpy(), np.repeat(expected[:, None], width, 1), rtol=0, atol=1e-6)


def test_netcdf_with_two_variables_needs_one_named(tmp_path: Path) -> None:
    lat, lon = np.array([45.0, -45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    dataset = xarray.Dataset(
        {"a": (("lat", "lon"), np.zeros((2, 4))), "b": (("lat", "lon"), np.ones((2, 4)))},
        coords={"lat": lat, "lon": lon},
    )
    dataset.to_netcdf(tmp_path / "two.nc")
    with pytest.raises(GeoconvError, match=r"two\.nc' holds 2 data variables \['a', 'b'\]; name one"):
        read_map(tmp_path / "two.nc")
    with pytest.raises(GeoconvError, match=r"no data variable 'c'; its variables: \['a', 'b'\]"):
        read_map(tmp_path / "two.nc", variable="c")
    assert float(read_map(tmp_path / "two.nc", variable="b").values.min()) == 1.0


def test_netcdf_extra_dims_regional_grids_and_missing_values_are_refused(tmp_path: Path) -> None:
    lat, lon = np.array([45.0, -45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    xarray.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((2, 2, 4)))}, coords={"time": [0, 1], "lat": lat, "lon": lon}
    ).to_netcdf(tmp_path / "times.nc")
    with pytest.raises(GeoconvError, match=r"times\.nc': variable 'v' has dims \{'time': 2, 'lat': 2, 'lon': 4\}"):
        read_map(tmp_path / "times.nc")
    xarray.Dataset({"v": (("lat", "lon"), np.zeros((2, 4)))}, coords={"lat": [10.0, 20.0], "lon": lon}).to_netcdf(
        tmp_path / "regional.nc"
    )
    with pytest.raises(GeoconvError, match=r"regional\.nc': its latitudes .* are not a regular global grid"):
        read_map(tmp_path / "regional.nc")
    holes = np.zeros((2, 4))
    holes[1, 2] = np.nan
    xarray.Dataset({"v": (("lat", "lon"), holes)}, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "nan.nc")
    with pytest.raises(GeoconvError, match=r"nan\.nc' has 1 missing pixels"):
        read_map(tmp_path / "nan.nc")


def test_netcdf_without_xarray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.nc").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray raises ImportError
    with pytest.raises(GeoconvError, match=r'x\.nc.* needs xarray and netCDF4: pip install "geoconv\[netcdf\]"'):
        read_map(tmp_path / "x.nc")


# -- images -------------------------------------------------------------------------------


def test_an_rgb_image_is_three_channels_in_unit_range_and_writes_back_exactly(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (4, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    read = read_map(tmp_path / "rgb.png")
    assert (read.grid, read.size) == ("equirect", 4)
    np.testing.assert_array_equal(read.values.numpy(), (pixels.transpose(2, 0, 1) / 255.0).astype(np.float32))
    out = write_map(tmp_path / "copy.png", read.values, read)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), pixels)
    # One channel out: 8-bit grey, values scaled and clipped.
    grey = write_map(tmp_path / "grey.png", torch.tensor([[[-1.0, 0.0, 0.5, 2.0] * 2] * 4]), read)
    assert Image.open(grey).mode == "L"
    np.testing.assert_array_equal(np.asarray(Image.open(grey))[0, :4], [0, 0, 128, 255])


def test_alpha_is_dropped_and_an_image_that_is_not_2_to_1_is_flat_only(tmp_path: Path) -> None:
    rgba = np.random.default_rng(2).integers(0, 256, (4, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    read = read_map(tmp_path / "alpha.png")
    np.testing.assert_array_equal(read.values.numpy(), (rgba[..., :3].transpose(2, 0, 1) / 255.0).astype(np.float32))
    Image.fromarray(rgba[:, :6, 0]).save(tmp_path / "photo.png")
    with pytest.raises(GeoconvError, match=r"photo\.png' is 6x4 \(W x H\); .* 2:1"):
        read_map(tmp_path / "photo.png")
    flat = read_map(tmp_path / "photo.png", npy_grid="planar")
    assert (flat.grid, flat.size, tuple(flat.values.shape)) == ("planar", (4, 6), (1, 4, 6))


# -- .npy and regridding ------------------------------------------------------------------


def test_npy_is_read_in_the_layout_of_its_grid(tmp_path: Path) -> None:
    faces = ring_to_faces(_random_maps(2, 1))
    np.save(tmp_path / "faces.npy", faces)
    read = read_map(tmp_path / "faces.npy", npy_grid="healpix")
    assert (read.grid, read.size) == ("healpix", 2) and torch.equal(read.values, torch.from_numpy(faces))
    np.save(tmp_path / "flat.npy", _random_maps(2, 1))  # a healpy map, not faces
    with pytest.raises(ShapeError, match=r"flat\.npy' is not a map on grid 'healpix'.*ring_to_faces"):
        read_map(tmp_path / "flat.npy", npy_grid="healpix")
    with pytest.raises(GeoconvError, match=r"faces\.npy': a \.npy array needs the grid"):
        read_map(tmp_path / "faces.npy")
    out = write_map(tmp_path / "again.npy", read.values, read)
    np.testing.assert_array_equal(np.load(out), faces)


def test_to_grid_is_the_identity_on_its_own_grid_and_convert_elsewhere(tmp_path: Path) -> None:
    values = torch.randn(2, 8, 16)
    mapfile = MapFile(tmp_path / "m.npy", "npy", values, "equirect", 8, {})
    assert to_grid(mapfile, "equirect", 8) is values
    for grid, size in (("healpix", 4), ("cubemap", 4), ("equirect", 4)):
        assert torch.equal(to_grid(mapfile, grid, size), convert(values[None], "equirect", grid, size)[0])
    flat = MapFile(tmp_path / "small.npy", "npy", torch.zeros(1, 4, 4), "planar", 4, {})
    with pytest.raises(
        GeoconvError, match=r"small\.npy' is a map on grid 'planar' at size 4 .* grid 'planar' at size 8"
    ):
        to_grid(flat, "planar", 8)
    with pytest.raises(GeoconvError, match=r"small\.npy' is a map on grid 'planar' .* to grid 'healpix' at size 2"):
        to_grid(flat, "healpix", 2)


def test_suffixes_stems_and_bad_writes(tmp_path: Path) -> None:
    assert {map_format(f"x{suffix.upper()}") for suffix in FORMATS} == {"fits", "netcdf", "image", "npy"}
    assert map_stem("dir/x.fits.gz") == "x"
    with pytest.raises(GeoconvError, match=r"notes\.txt' has an unsupported suffix; supported: \.fits, \.fit"):
        read_map(tmp_path / "notes.txt")
    with pytest.raises(GeoconvError, match=r"gone\.fits' does not exist"):
        read_map(tmp_path / "gone.fits")
    like = MapFile(tmp_path / "m.npy", "npy", torch.zeros(1, 12, 2, 2), "healpix", 2, {})
    with pytest.raises(ShapeError, match=r"out\.npy' must have shape \(C, 12, 2, 2\) .* got \(1, 12, 4, 4\)"):
        write_map(tmp_path / "out.npy", torch.zeros(1, 12, 4, 4), like)
    with pytest.raises(GeoconvError, match=r"out\.png' has the suffix of another format \(image\)"):
        write_map(tmp_path / "out.png", torch.zeros(1, 12, 2, 2), like)
