"""Earth land/sea segmentation: Blue Marble input and global-land-mask labels, registered."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from global_land_mask import globe

from geoconv.data import earth_segmentation
from geoconv.data.earth import land_mask, load_bluemarble, prefilter_factor, sample_bluemarble
from geoconv.errors import GeoconvError
from geoconv.grids import get_grid, register_grid, rotate, unregister_grid
from geoconv.grids.equirect import EquirectGrid
from geoconv.grids.sphere import angles_to_vectors

# Resolutions at which the point-sampled mask's land fraction is within 1 point of the
# source's: measured |difference| 0.0027 (equirect H=32), 0.0023 (HEALPix nside=16),
# 0.0004 (cube F=32); coarser grids miss by up to 3 points (equirect H=8: 0.032).
GRIDS = [("equirect", 32), ("healpix", 16), ("cubemap", 32)]


def cube_pixel_areas(face: int) -> np.ndarray:
    """Exact solid angles of the gnomonic cube's pixels, ``(6, F, F)``.

    The solid angle of the rectangle [0, a] x [0, b] on the plane at distance 1 is
    atan(ab / sqrt(1 + a^2 + b^2)); a pixel's is the inclusion-exclusion of its corners.
    """
    edges = np.linspace(-1.0, 1.0, face + 1)

    def corner(a, b):
        return np.arctan(a * b / np.sqrt(1 + a * a + b * b))

    a, b = edges[None, :], edges[:, None]
    cells = corner(a[:, 1:], b[1:]) - corner(a[:, :-1], b[1:]) - corner(a[:, 1:], b[:-1]) + corner(a[:, :-1], b[:-1])
    return np.broadcast_to(cells, (6, face, face))


def pixel_areas(grid: str, size: int) -> torch.Tensor:
    """Area weights of the grid's pixels, shaped like one signal."""
    if grid == "healpix":
        weights = np.ones((12, size, size))  # equal area
    elif grid == "equirect":
        colat, _ = get_grid(grid).centres(size)
        weights = np.sin(colat)  # cos-latitude
    else:
        weights = cube_pixel_areas(size)
    assert weights.sum() > 0
    return torch.from_numpy(np.ascontiguousarray(weights))


def land_fraction(mask: torch.Tensor, weights: torch.Tensor) -> float:
    return float((mask.double() * weights).sum() / weights.sum())


@pytest.fixture(scope="module")
def source_land_fraction() -> float:
    """The area-weighted land fraction of global-land-mask on a 0.1 degree cell-centred grid."""
    rows = 1800
    latitude = 90.0 - (np.arange(rows) + 0.5) * 180.0 / rows
    longitude = -180.0 + (np.arange(2 * rows) + 0.5) * 180.0 / rows
    land = globe.is_land(latitude[:, None] + 0 * longitude[None], longitude[None] + 0 * latitude[:, None])
    weights = np.cos(np.radians(latitude))[:, None] * np.ones((1, 2 * rows))
    return float((land * weights).sum() / weights.sum())


@pytest.fixture(scope="module")
def datasets() -> dict[tuple[str, int, bool], object]:
    built = {}
    for grid, size in GRIDS:
        built[grid, size, False] = earth_segmentation(grid, size)
        built[grid, size, True] = earth_segmentation(grid, size, rotated=True, samples=3, seed=1)
    return built


def test_source_land_fraction_is_about_29_percent(source_land_fraction):
    assert 0.28 < source_land_fraction < 0.30


@pytest.mark.parametrize(("grid", "size"), GRIDS)
@pytest.mark.parametrize("rotated", [False, True])
def test_shapes_dtypes_ranges(datasets, grid, size, rotated):
    data = datasets[grid, size, rotated]
    count = 3 if rotated else 1
    spatial = get_grid(grid).shape(count, 1, size)[2:]
    assert data.inputs.shape == (count, 3, *spatial) and data.inputs.dtype == torch.float32
    assert data.targets.shape == (count, 1, *spatial) and data.targets.dtype == torch.float32
    assert float(data.inputs.min()) >= 0.0 and float(data.inputs.max()) <= 1.0
    assert set(data.targets.unique().tolist()) == {0.0, 1.0}
    assert (data.grid, data.size, data.classes, data.name) == (grid, size, 0, "earth_segmentation")
    assert (data.rotations is not None) == rotated
    x, y = data[0]
    assert x.shape == (3, *spatial) and y.shape == (1, *spatial)


@pytest.mark.parametrize(("grid", "size"), GRIDS)
def test_land_fraction_matches_the_source(datasets, source_land_fraction, grid, size):
    weights = pixel_areas(grid, size)
    canonical = land_fraction(datasets[grid, size, False].targets[0, 0], weights)
    assert abs(canonical - source_land_fraction) < 0.01
    # Rotated samples: the mask rotates with the Earth, the land fraction stays.
    for mask in datasets[grid, size, True].targets[:, 0]:
        assert abs(land_fraction(mask, weights) - source_land_fraction) < 0.01


@pytest.mark.parametrize(("grid", "size"), GRIDS)
@pytest.mark.parametrize("rotated", [False, True])
def test_image_and_mask_are_registered(datasets, grid, size, rotated):
    data = datasets[grid, size, rotated]
    for image, mask in zip(data.inputs, data.targets[:, 0] > 0.5, strict=True):
        red, green, blue = image
        # Oceans are blue, land green, brown or white: blue - red is clearly higher at sea.
        sea_minus_land = (blue - red)[~mask].mean() - (blue - red)[mask].mean()
        assert float(sea_minus_land) > 0.1
        assert float(((red + green) / 2 - blue)[mask].mean()) > float(((red + green) / 2 - blue)[~mask].mean())


@pytest.mark.parametrize(
    ("place", "lat", "lon", "land"),
    [("Sahara", 23.0, 10.0, True), ("Pacific", 0.0, -140.0, False), ("Indian Ocean", -30.0, 80.0, False)],
)
def test_known_places(place, lat, lon, land):
    data = earth_segmentation("equirect", 32)
    # The pixel whose centre is nearest the place (great-circle distance).
    here = angles_to_vectors(np.radians(90.0 - lat), np.radians(lon))
    index = int(np.argmax(get_grid("equirect").vectors(32).reshape(-1, 3) @ here))
    row, col = divmod(index, 64)
    assert bool(data.targets[0, 0, row, col]) == land, place
    red, _, blue = data.inputs[0, :, row, col]
    assert (float(red) > float(blue)) == land, place  # desert red-brown, ocean blue


def test_antarctica_is_white_land():
    data = earth_segmentation("equirect", 16)
    south = data.targets[0, 0, -1]  # latitude -84.4: one pixel is on the Ross Ice Shelf, sea to the mask
    assert float(south.mean()) > 0.9
    assert float(data.inputs[0, :, -1].mean()) > 0.7


def test_rotated_mask_and_image_follow_the_rotation(datasets):
    grid, size = "healpix", 16
    plain, turned = datasets[grid, size, False], datasets[grid, size, True]
    for i in range(3):
        R = turned.rotations[i]
        mask = rotate(plain.targets[:1].double(), grid, R, method="resample")[0, 0] > 0.5
        agree = float((mask == (turned.targets[i, 0] > 0.5)).double().mean())
        assert agree > 0.92  # measured 0.945-0.954: the rest is coastline, resampled twice
        image = rotate(plain.inputs[:1].double(), grid, R, method="resample")[0].flatten()
        correlation = torch.corrcoef(torch.stack([image, turned.inputs[i].double().flatten()]))[0, 1]
        assert float(correlation) > 0.95  # measured 0.976-0.981
        # A rotation that is not this one does not line up.
        other = turned.rotations[(i + 1) % 3]
        wrong = rotate(plain.targets[:1].double(), grid, other, method="resample")[0, 0] > 0.5
        assert float((wrong == (turned.targets[i, 0] > 0.5)).double().mean()) < agree - 0.1  # measured 0.57-0.63


def test_reproducible_and_seeded():
    a = earth_segmentation("healpix", 4, rotated=True, samples=2, seed=3)
    b = earth_segmentation("healpix", 4, rotated=True, samples=2, seed=3)
    c = earth_segmentation("healpix", 4, rotated=True, samples=2, seed=4)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.rotations, b.rotations)
    assert not torch.allclose(a.rotations, c.rotations)
    copies = earth_segmentation("healpix", 4, samples=3)
    assert len(copies) == 3 and torch.equal(copies.inputs[0], copies.inputs[2]) and copies.rotations is None


def test_source_convention_is_rows_from_north_columns_from_west():
    image = load_bluemarble(20)  # (3, 135, 270), 4/3 degree cells
    height, width = image.shape[1:]
    # Cell-centred: pixel (r, c) is centred at latitude 90 - (r + 1/2) * 180 / H and
    # longitude -180 + (c + 1/2) * 360 / W, and sampling there returns it exactly.
    rows = np.array([0, 40, 67, height - 1])
    cols = np.array([0, 1, width // 2, width - 1])
    colat = (rows + 0.5) * math.pi / height
    lon = -math.pi + (cols + 0.5) * 2 * math.pi / width
    sampled = sample_bluemarble(image, colat[:, None], lon[None, :])
    assert torch.allclose(sampled, image[:, rows][:, :, cols], atol=1e-12)
    # That registration puts the blue where the mask has sea; a column's shift or a flip does worse.
    latitude = 90.0 - (np.arange(height) + 0.5) * 180.0 / height
    longitude = -180.0 + (np.arange(width) + 0.5) * 360.0 / width
    land = torch.from_numpy(globe.is_land(*np.meshgrid(latitude, longitude, indexing="ij")))

    def contrast(picture):
        blueness = picture[2] - picture[0]
        return float(blueness[~land].mean() - blueness[land].mean())

    best = contrast(image)
    assert best > 0.2
    for shifted in (torch.roll(image, 1, -1), torch.roll(image, -1, -1), torch.flip(image, [-2])):
        assert contrast(shifted) < best - 0.01


def test_land_mask_wraps_longitude():
    colat = np.radians(90.0 - np.array([48.85, 48.85, 0.0]))
    lon = np.radians(np.array([2.35, 2.35 + 360.0, 200.0]))  # Paris twice, the Pacific at 160 W
    assert land_mask(colat, lon).tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": "planar", "size": 8}, r"earth_segmentation needs a spherical grid"),
        ({"grid": "healpix", "size": 12}, r"nside.*power of two"),
        ({"grid": "equirect", "size": 0}, r"size for grid 'equirect' must be an integer >= 1"),
        ({"grid": "healpix", "size": 2, "samples": 0}, r"samples must be an integer >= 1"),
        ({"grid": "healpix", "size": 2, "rotated": 1}, r"rotated must be True or False"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(GeoconvError, match=message):
        earth_segmentation(**kwargs)


def _largest_block(pitch_degrees: float) -> int:
    """The largest divisor k of 2700 whose k source pixels (180°/2700 each) fit in half a grid pixel."""
    return max(k for k in range(1, 2701) if 2700 % k == 0 and k * 180.0 / 2700 <= max(pitch_degrees / 2, 180.0 / 2700))


@pytest.mark.parametrize(
    ("grid", "size", "pitch_degrees"),
    [
        ("equirect", 32, 180.0 / 32),  # the latitude step
        ("equirect", 4, 180.0 / 4),
        ("cubemap", 8, 90.0 / 8),  # a face spans 90°
        ("healpix", 4, math.degrees(math.sqrt(4 * math.pi / (12 * 4 * 4)))),  # side of one pixel's area
        ("healpix", 1024, math.degrees(math.sqrt(4 * math.pi / (12 * 1024 * 1024)))),
    ],
)
def test_prefilter_factor_is_set_by_the_grids_pixel_pitch(grid: str, size: int, pitch_degrees: float) -> None:
    assert prefilter_factor(get_grid(grid), size) == _largest_block(pitch_degrees)


def test_prefilter_factor_asks_the_grid_not_its_name() -> None:
    # Before issue 11 any grid not named equirect or cubemap got HEALPix's pitch: 12 here, not 36.
    class LatLon(EquirectGrid):
        name = "latlon_earth_demo"

    register_grid("latlon_earth_demo", LatLon)
    try:
        assert prefilter_factor(get_grid("latlon_earth_demo"), 32) == prefilter_factor(get_grid("equirect"), 32) == 36
    finally:
        unregister_grid("latlon_earth_demo")
