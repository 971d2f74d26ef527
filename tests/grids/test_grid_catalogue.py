"""What jobs, probes, data sets and figures ask of a grid are the grid's methods, checked against references.

Band limits, pixel areas and pitches, the exact turns about the pole, points of interest,
conversions to and from equirect, random signals and maps: each against a closed formula,
healpy, exact Wigner-D rotations of band-limited fields or a brute-force search. And since
nothing outside ``geoconv.grids`` may switch on a grid's name, an equirect grid registered
under another name is probed, converted, rotated and drawn exactly like ``equirect``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import geoconv
from geoconv.grids import (
    get_grid,
    list_grids,
    register_grid,
    rotate,
    rotation_about_z,
    spherical_grids,
    unregister_grid,
)
from geoconv.grids.equirect import EquirectGrid
from geoconv.grids.fields import BandLimitedField
from geoconv.grids.sphere import POINTS_OF_INTEREST, angles_to_vectors
from geoconv.probes.sphere import erf_radii, rotation_error, symmetry_error
from geoconv.viz import plot_map, plot_sphere_map

SPHERES = ("equirect", "cubemap", "healpix")


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _field(lmax: int = 4, channels: int = 2, seed: int = 0) -> BandLimitedField:
    return BandLimitedField.random(lmax, batch=1, channels=channels, generator=_seed(seed))


# -- band limits, areas, pitches --------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "size", "equator", "lmax"),
    [
        ("equirect", 8, 16, 2),
        ("equirect", (8, 12), 12, 1),  # narrower than 2:1: the width sets the detail
        ("equirect", (8, 64), 16, 2),  # wider than 2:1: the rows do
        ("cubemap", 8, 32, 4),
        ("cubemap", 64, 256, 12),  # capped at e3nn's largest degree
        ("healpix", 2, 8, 1),
        ("healpix", 16, 64, 8),
    ],
)
def test_equator_pixels_and_default_lmax(grid: str, size, equator: int, lmax: int) -> None:
    sphere = get_grid(grid)
    assert sphere.equator_pixels(size) == equator
    assert sphere.default_lmax(size) == lmax == min(12, max(1, equator // 8))


def test_healpix_equator_pixels_are_healpys_equatorial_ring() -> None:
    healpy = pytest.importorskip("healpy")
    for nside in (1, 4, 8):
        theta, _ = healpy.pix2ang(nside, np.arange(12 * nside * nside))
        assert get_grid("healpix").equator_pixels(nside) == int(np.isclose(theta, np.pi / 2).sum())


def test_pixel_pitch_per_grid() -> None:
    healpy = pytest.importorskip("healpy")
    assert get_grid("equirect").pixel_pitch(16) == pytest.approx(math.radians(180 / 16), rel=1e-15)
    assert get_grid("cubemap").pixel_pitch(8) == pytest.approx(math.radians(90 / 8), rel=1e-15)
    for nside in (1, 8, 1024):
        assert get_grid("healpix").pixel_pitch(nside) == pytest.approx(healpy.nside2resol(nside), rel=1e-12)


@pytest.mark.parametrize("grid", SPHERES)
def test_pixel_areas_sum_to_the_sphere_and_healpix_ones_are_healpys(grid: str) -> None:
    areas = get_grid(grid).pixel_areas(4)
    assert areas.shape == get_grid(grid).signal_shape(4)
    assert areas.sum() == pytest.approx(4 * math.pi, rel=1e-12)
    if grid == "healpix":
        healpy = pytest.importorskip("healpy")
        np.testing.assert_allclose(areas, healpy.nside2pixarea(4), rtol=1e-14)


# -- exact symmetries and points --------------------------------------------------------------


@pytest.mark.parametrize(("grid", "size", "turns"), [("equirect", (6, 12), 12), ("cubemap", 5, 4), ("healpix", 4, 4)])
def test_turn_about_pole_is_the_exact_rotation_of_a_band_limited_field(grid: str, size, turns: int) -> None:
    """Sampling R_z f (Wigner D, exact) equals turning the samples of f, for every declared turn."""
    sphere = get_grid(grid)
    assert sphere.pole_turns(size) == turns
    field = _field()
    x = sphere.sample_field(field, size)
    for steps in range(-1, turns + 1):
        rotated = field.rotate(rotation_about_z(2 * math.pi * steps / turns))
        expected = sphere.sample_field(rotated, size)
        torch.testing.assert_close(sphere.turn_about_pole(x, steps), expected, atol=1e-12, rtol=0)


def test_a_grid_without_exact_turns_is_rotated_by_resampling_and_refused_by_symmetry_error() -> None:
    class Unturnable(EquirectGrid):
        name = "unturnable_demo"

        def pole_turns(self, size) -> int:
            return 0

    register_grid("unturnable_demo", Unturnable)
    try:
        x = get_grid("unturnable_demo").sample_field(_field(), 8)
        quarter = rotation_about_z(math.pi / 2)
        exact = rotate(x, "equirect", quarter)
        assert torch.equal(exact, torch.roll(x, 4, dims=-1))
        resampled = rotate(x, "unturnable_demo", quarter)  # the same rotation, interpolated
        torch.testing.assert_close(resampled, exact, atol=1e-12, rtol=0)
        with pytest.raises(geoconv.GeoconvError, match="grid 'unturnable_demo' declares none"):
            symmetry_error(torch.nn.Identity(), "unturnable_demo", 8, channels=1)
    finally:
        unregister_grid("unturnable_demo")


@pytest.mark.parametrize("grid", SPHERES)
def test_points_of_interest_and_nearest_pixel(grid: str) -> None:
    sphere = get_grid(grid)
    points = sphere.points_of_interest()
    assert points == POINTS_OF_INTEREST and list(points) == ["equator", "pole", "seam"]
    colat, lon = sphere.centres(4)
    vectors = angles_to_vectors(colat, lon).reshape(-1, 3)
    for point in points.values():
        target = angles_to_vectors(*point)
        distances = np.linalg.norm(vectors - target, axis=-1)  # brute force, by chord length
        index, centre = sphere.nearest_pixel(4, target)
        assert distances[index] == pytest.approx(distances.min(), abs=1e-12)
        np.testing.assert_allclose(centre, vectors[index], rtol=0, atol=1e-15)


# -- conversions, signals, maps ---------------------------------------------------------------


@pytest.mark.parametrize("grid", ["cubemap", "healpix"])
def test_to_and_from_equirect_resample_a_smooth_field_and_converge(grid: str) -> None:
    sphere, equirect = get_grid(grid), get_grid("equirect")
    field = _field(lmax=3)
    errors = []
    for size in (16, 32):
        on_grid, on_equirect = sphere.sample_field(field, size), equirect.sample_field(field, 2 * size)
        scale = float(on_equirect.abs().max())
        errors.append(
            (
                float((sphere.to_equirect(on_grid, 2 * size) - on_equirect).abs().max()) / scale,
                float((sphere.from_equirect(on_equirect, size) - on_grid).abs().max()) / scale,
            )
        )
        assert torch.equal(equirect.to_equirect(on_equirect, 2 * size), on_equirect)  # its own centres: exact
    # Measured (seed 0): cube 1.7 % / 1.1 % at F = 16, HEALPix 1.5 % / 1.2 % at nside 16; each at
    # least halves when the resolution doubles (cube and from_equirect about 4x: second order).
    for coarse, fine in zip(*errors, strict=True):
        assert coarse < 0.03 and fine < coarse / 1.8


def test_random_signals_white_on_a_flat_grid_band_limited_on_the_sphere() -> None:
    flat = get_grid("planar").random_signal(2, 3, 8, generator=_seed(5))
    assert torch.equal(flat, torch.randn(2, 3, 8, 8, generator=_seed(5)))
    height = 16
    x = get_grid("equirect").random_signal(2, 3, height, generator=_seed(5))
    lmax = get_grid("equirect").default_lmax(height)
    assert x.shape == (2, 3, height, 2 * height) and x.dtype == torch.get_default_dtype()
    # A field of degree <= L holds no longitude frequency |m| > L along any row.
    spectrum = torch.fft.rfft(x.double(), dim=-1).abs()
    assert float(spectrum[..., lmax + 1 :].max()) < 1e-4 * float(spectrum.max())
    assert float(spectrum[..., lmax].max()) > 1e-2 * float(spectrum.max())
    with pytest.raises(geoconv.GeoconvError, match=r"'planar' is flat .* one of \['cubemap', 'equirect', 'healpix'"):
        get_grid("planar").sample_field(_field(), 8)


@pytest.mark.parametrize("grid", ["planar", *SPHERES])
def test_every_grid_draws_its_map(grid: str, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    values = torch.rand(get_grid(grid).signal_shape(4), generator=_seed())
    path = plot_map(values, grid, 4, tmp_path / "maps" / f"{grid}.png", title=grid)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plt.get_fignums() == []
    assert not list((tmp_path / "maps").glob("*.tmp*"))  # written atomically, nothing left beside it
    with pytest.raises(geoconv.errors.ShapeError, match=rf"values must have the spatial shape .* of grid '{grid}'"):
        plot_map(values[..., :2], grid, 4, tmp_path / "bad.png")
    if grid == "planar":
        with pytest.raises(geoconv.GeoconvError, match="plot_sphere_map needs a spherical grid"):
            plot_sphere_map(values, grid, 4, tmp_path / "flat.png")


# -- no code switches on a grid's name --------------------------------------------------------


def test_equirect_under_another_name_is_probed_converted_and_drawn_like_equirect(tmp_path: Path) -> None:
    class LatLon(EquirectGrid):
        name = "latlon_demo"

    register_grid("latlon_demo", LatLon)
    try:
        assert "latlon_demo" in spherical_grids() and "latlon_demo" in list_grids()
        results = {}
        for grid in ("equirect", "latlon_demo"):
            torch.manual_seed(0)
            net = geoconv.build_op("conv", 1, 2, grid=grid, kernel_size=3).double()
            results[grid] = (
                symmetry_error(net, grid, 8, generator=_seed()),
                rotation_error(net, grid, 8, rotations=2, generator=_seed()).per_rotation,
                erf_radii(net, grid, 8, inputs=2, generator=_seed()),
                geoconv.grids.convert(torch.rand(1, 1, 6, 6, 6, generator=_seed()), "cubemap", grid, 8),
                get_grid(grid).default_lmax(8),
            )
            plot_sphere_map(np.ones((8, 16)), grid, 8, tmp_path / f"{grid}.png")
        here, there = results["equirect"], results["latlon_demo"]
        assert list(here[0]) == ["roll_1", "roll_quarter", "roll_half", "max"] and here[0] == there[0]
        assert torch.equal(here[1], there[1]) and here[2] == there[2] and here[4] == there[4]
        torch.testing.assert_close(here[3], there[3], rtol=0, atol=0)
    finally:
        unregister_grid("latlon_demo")
