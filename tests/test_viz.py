"""Maps on the sphere: projections, the sampler, the centre of mass, the view ``auto`` picks, the PNGs.

Values are checked against closed forms: a field whose value at a direction is known
(:math:`\\cos\\theta`, a component of the direction) is sampled through a view and compared with
the field at the directions the view's pixels stand for, computed independently.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import geoconv
from geoconv.grids import get_grid
from geoconv.grids.sphere import angles_to_vectors, vectors_to_angles
from geoconv.viz import (
    LOCAL_RADIUS,
    SphereView,
    centre_of_mass,
    choose_view,
    plot_map,
    plot_sphere_map,
    sample_view,
)

SPHERES = [("equirect", 32), ("cubemap", 16), ("healpix", 16)]
PROJECTIONS = ["orthographic", "gnomonic", "mollweide", "latlon"]
PNG = b"\x89PNG\r\n\x1a\n"


def _field(grid: str, size: int, component: int) -> np.ndarray:
    """Component ``component`` (0: x, 1: y, 2: z = cos colatitude) of every pixel centre's direction."""
    return get_grid(grid).vectors(get_grid(grid).resolution(size))[..., component]


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0))


def _blob(grid: str, size: int, colat: float, lon: float, width: float) -> np.ndarray:
    """A Gaussian bump of angular width ``width`` around ``(colat, lon)``."""
    vectors = get_grid(grid).vectors(get_grid(grid).resolution(size))
    return np.exp(-((_angle(vectors, angles_to_vectors(colat, lon)) / width) ** 2))


# -- the projections ----------------------------------------------------------------------------


@pytest.mark.parametrize("projection", ["orthographic", "gnomonic"])
def test_local_projections_put_the_centre_in_the_middle_and_known_distances_where_they_belong(projection) -> None:
    centre = (1.1, 2.3)
    view = SphereView(projection, centre, math.radians(60))
    c = angles_to_vectors(*centre)
    east = np.array([-math.sin(centre[1]), math.cos(centre[1]), 0.0])
    north = np.cross(c, east)
    # The middle of the plane is the centre.
    colat, lon, valid = view.to_sphere(0.0, 0.0)
    assert bool(valid) and np.allclose([colat, lon], centre, atol=1e-12)
    # A point alpha away due east / due north of the centre: a great-circle step, computed by hand.
    for alpha in (0.1, 0.4, 0.9):
        radial = math.sin(alpha) if projection == "orthographic" else math.tan(alpha)
        for direction, (x, y) in ((east, (radial, 0.0)), (north, (0.0, radial))):
            expected = math.cos(alpha) * c + math.sin(alpha) * direction
            got = angles_to_vectors(*view.to_sphere(x, y)[:2])
            np.testing.assert_allclose(got, expected, atol=1e-12)
    # Anywhere: the angular distance from the centre is arcsin (orthographic) or arctan (gnomonic) of the radius.
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.7, 0.7, (2, 200))
    got = _angle(angles_to_vectors(*view.to_sphere(x, y)[:2]), c)
    rho = np.hypot(x, y)
    np.testing.assert_allclose(got, np.arcsin(rho) if projection == "orthographic" else np.arctan(rho), atol=1e-12)


def test_views_have_north_up_and_east_to_the_right() -> None:
    view = SphereView("orthographic", (math.pi / 2, 0.0), math.pi / 2)  # looking at (1, 0, 0)
    right = angles_to_vectors(*view.to_sphere(0.5, 0.0)[:2])
    up = angles_to_vectors(*view.to_sphere(0.0, 0.5)[:2])
    np.testing.assert_allclose(right, [math.sqrt(0.75), 0.5, 0.0], atol=1e-12)  # towards longitude 90° E
    np.testing.assert_allclose(up, [math.sqrt(0.75), 0.0, 0.5], atol=1e-12)  # towards the north pole
    mollweide = SphereView("mollweide", (math.pi / 2, math.radians(100)))
    colat, lon, _ = mollweide.to_sphere(np.array([0.0, 0.5, 0.0]), np.array([0.0, 0.0, 0.5]))
    assert math.degrees(lon[0]) == pytest.approx(100) and math.degrees(lon[1]) > 100 and colat[2] < math.pi / 2
    latlon = SphereView("latlon", (math.pi / 2, math.radians(350)))
    colat, lon, _ = latlon.to_sphere(20.0, 30.0)
    assert math.degrees(lon) == pytest.approx(10.0) and math.degrees(colat) == pytest.approx(60.0)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_to_plane_inverts_to_sphere(projection: str) -> None:
    view = SphereView(projection, (0.7, 5.9), math.radians(70))
    x, y = view.plane(41)
    colat, lon, valid = view.to_sphere(x, y)
    back_x, back_y, visible = view.to_plane(colat[valid], lon[valid])
    assert valid.sum() > 0.5 * valid.size and visible.all()
    np.testing.assert_allclose(back_x, x[valid], atol=1e-9)
    np.testing.assert_allclose(back_y, y[valid], atol=1e-9)


def test_mollweide_is_equal_area() -> None:
    # Equal-area: the fraction of the ellipse's pixels north of latitude L is the cap's share of the sphere.
    view = SphereView("mollweide")
    x, y = view.plane(400)
    colat, _, valid = view.to_sphere(x, y)
    for lat in (0.0, 30.0, 60.0):
        share = np.mean(colat[valid] < math.radians(90 - lat))
        assert share == pytest.approx((1 - math.sin(math.radians(lat))) / 2, abs=3e-3)


def test_bad_views_are_refused() -> None:
    with pytest.raises(geoconv.GeoconvError, match="projection must be one of"):
        SphereView("stereographic")
    with pytest.raises(geoconv.GeoconvError, match="radius must lie in"):
        SphereView("gnomonic", radius=math.radians(85))
    with pytest.raises(geoconv.GeoconvError, match="view must be one of"):
        choose_view(np.ones((8, 16)), "equirect", 8, "native")


# -- the sampler --------------------------------------------------------------------------------


@pytest.mark.parametrize(("grid", "size"), SPHERES)
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_the_sampled_plane_holds_the_field_at_the_directions_it_stands_for(grid, size, projection) -> None:
    view = SphereView(projection, (1.2, 4.0), math.radians(50))
    # z = cos(colatitude) and the x component, which also depends on longitude.
    fields = np.stack([_field(grid, size, 2), _field(grid, size, 0)])
    image = sample_view(fields, grid, size, view, pixels=31)
    x, y = view.plane(31)
    colat, lon, valid = view.to_sphere(x, y)
    assert image.shape == (*x.shape, 2) and np.isnan(image[~valid]).all() and np.isfinite(image[valid]).all()
    expected = np.stack([np.cos(colat), np.sin(colat) * np.cos(lon)], -1)
    # Bilinear interpolation of a degree-1 field: errors of the order of the squared pixel pitch, except
    # within a pixel or so of a pole, beyond the last ring of centres, where grids hold the ring's values.
    pitch = get_grid(grid).pixel_pitch(size)
    inner = valid & (np.minimum(colat, np.pi - colat) > 1.5 * pitch)
    np.testing.assert_allclose(image[inner], expected[inner], atol=2 * pitch**2)
    np.testing.assert_allclose(image[valid], expected[valid], atol=pitch)
    # And one channel alone gives the same plane.
    np.testing.assert_array_equal(sample_view(fields[0], grid, size, view, pixels=31), image[..., 0])


@pytest.mark.parametrize(("grid", "size"), SPHERES)
def test_the_middle_of_a_local_view_is_the_maps_value_at_its_centre(grid, size) -> None:
    centre = (0.4, 3.0)
    view = SphereView("gnomonic", centre, math.radians(20))
    image = sample_view(torch.from_numpy(_field(grid, size, 2)), grid, size, view, pixels=21)  # a tensor works too
    assert image[10, 10] == pytest.approx(math.cos(centre[0]), abs=2 * get_grid(grid).pixel_pitch(size) ** 2)


# -- the centre of mass and the view auto picks ---------------------------------------------------


@pytest.mark.parametrize(("grid", "size"), SPHERES)
def test_the_centre_of_mass_of_a_peak_is_its_pixel(grid, size) -> None:
    sphere = get_grid(grid)
    vectors = sphere.vectors(sphere.resolution(size)).reshape(-1, 3)
    for pixel in np.random.default_rng(1).choice(len(vectors), 5, replace=False):
        peak = np.zeros(len(vectors))
        peak[pixel] = -3.0  # |x| counts, not x
        np.testing.assert_allclose(centre_of_mass(peak.reshape(sphere.signal_shape(size)), grid, size), vectors[pixel])


def test_a_map_split_across_longitude_zero_has_its_centre_at_longitude_zero() -> None:
    x = np.zeros((16, 32))
    x[5:8, [31, 0, 1]] = 1.0  # columns at longitudes 348.75°, 0°, 11.25°
    colat, lon = vectors_to_angles(centre_of_mass(x, "equirect", 16))
    # By hand: rows at colatitudes (i + 1/2) 180°/16, the side columns 11.25° either side of the meridian 0°.
    rows = np.radians((np.arange(5, 8) + 0.5) * 180 / 16)
    across = np.sum(np.sin(rows)) * (1 + 2 * math.cos(math.radians(11.25)))
    assert min(lon, 2 * math.pi - lon) < 1e-12
    assert colat == pytest.approx(math.atan2(across, 3 * np.sum(np.cos(rows))), abs=1e-12)
    view = choose_view(x, "equirect", 16)
    assert view.projection in ("gnomonic", "orthographic") and abs(math.sin(view.centre[1])) < 1e-12
    # The middle of its image is the middle of the blob, not a seam.
    image = sample_view(x, "equirect", 16, view, pixels=21)
    assert image[10, 10] == pytest.approx(1.0)


@pytest.mark.parametrize(("grid", "size"), SPHERES)
@pytest.mark.parametrize(("colat", "lon"), [(math.pi / 2, 0.0), (math.radians(3), 1.0), (2.0, math.pi)])
def test_auto_centres_a_local_signal_and_shows_all_of_it(grid, size, colat, lon) -> None:
    x = _blob(grid, size, colat, lon, math.radians(12))
    view = choose_view(x, grid, size)
    assert view.projection in ("orthographic", "gnomonic")
    assert _angle(angles_to_vectors(*view.centre), angles_to_vectors(colat, lon)) < math.radians(2)
    assert math.radians(20) < view.radius < math.radians(60)  # the bump is ~0 beyond 30°
    # The whole bump is in the picture: its edge values are small next to the middle.
    image = sample_view(x, grid, size, view, pixels=41)
    edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    assert np.nanmax(edges) < 0.05 * image[20, 20]


@pytest.mark.parametrize(("grid", "size"), SPHERES)
def test_auto_draws_a_global_signal_whole_with_the_seam_where_it_is_quiet(grid, size) -> None:
    vectors = get_grid(grid).vectors(get_grid(grid).resolution(size))
    _, lon = vectors_to_angles(vectors)
    # "Land" between longitudes 150° and 210° (across the usual seam at 180°) and a polar cap: 0 elsewhere.
    land = ((np.abs(np.degrees(lon) - 180) < 30) | (vectors[..., 2] > 0.9)).astype(float)
    assert _mass_fraction_within(land, grid, size) > 0.1  # not local
    view = choose_view(land, grid, size)
    assert view.projection == "mollweide"
    seam = math.degrees(view.centre[1] + math.pi) % 360
    assert not 140 <= seam <= 220, f"the seam at {seam:.0f}° splits the land"
    # Uniform or empty maps keep the usual central meridian.
    assert choose_view(np.ones_like(land), grid, size).centre[1] == 0.0
    assert choose_view(np.zeros_like(land), grid, size).projection == "mollweide"
    assert choose_view(land, grid, size, "latlon").centre == view.centre


def _mass_fraction_within(x: np.ndarray, grid: str, size: int) -> float:
    vectors = get_grid(grid).vectors(get_grid(grid).resolution(size)).reshape(-1, 3)
    centre = centre_of_mass(x, grid, size)
    inside = _angle(vectors, centre) <= LOCAL_RADIUS
    return 1 - float(x.reshape(-1)[inside].sum() / x.sum())


def test_centre_of_mass_refuses_a_map_without_one() -> None:
    with pytest.raises(geoconv.GeoconvError, match="no centre of mass"):
        centre_of_mass(np.zeros((8, 16)), "equirect", 8)
    with pytest.raises(geoconv.GeoconvError, match="needs a spherical grid"):
        centre_of_mass(np.zeros((8, 8)), "planar", 8)


# -- the PNGs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("grid", "size"), [*SPHERES, ("planar", 8)])
def test_every_view_writes_a_png(grid: str, size: int, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    x = _blob(grid, size, 1.0, 0.5, 0.3) if grid != "planar" else np.random.default_rng(0).random((8, 8))
    views = ["auto", "native"] if grid == "planar" else [*PROJECTIONS, "auto", "native"]
    for view in views:
        path = plot_map(x, grid, size, tmp_path / f"{grid}-{view}.png", f"{grid} {view}", view=view, mark=(1.0, 0.5))
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    assert plt.get_fignums() == []
    assert not list(tmp_path.glob(".*"))  # nothing left beside the PNGs
    if grid == "planar":
        with pytest.raises(geoconv.GeoconvError, match="is flat .* view must be 'auto' or 'native'"):
            plot_map(x, grid, size, tmp_path / "x.png", view="mollweide")
    with pytest.raises(geoconv.GeoconvError, match="view must be one of"):
        plot_map(x, grid, size, tmp_path / "x.png", view="robinson")


def test_plot_sphere_map_takes_plot_maps_keywords_and_refuses_a_flat_grid(tmp_path: Path) -> None:
    x = _blob("healpix", 8, 0.1, 0.0, 0.3)
    path = plot_sphere_map(x, "healpix", 8, tmp_path / "erf.png", "ERF", view="auto", mark=(0.1, 0.0), label="|g|")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(geoconv.GeoconvError, match="plot_sphere_map needs a spherical grid"):
        plot_sphere_map(np.ones((8, 8)), "planar", 8, tmp_path / "flat.png")
    with pytest.raises(geoconv.errors.ShapeError, match=r"values must have the spatial shape \(12, 8, 8\)"):
        plot_sphere_map(np.ones((12, 4, 4)), "healpix", 8, tmp_path / "bad.png")
