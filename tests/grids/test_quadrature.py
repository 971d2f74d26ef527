"""Quadrature weights of every grid against closed forms: band areas, constants, the l >= 1 part of a field."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoconv.errors import GeoconvError
from geoconv.grids import get_grid, spherical_grids
from geoconv.grids.fields import BandLimitedField

SIZES = {"equirect": 16, "cubemap": 8, "healpix": 4}


@pytest.mark.parametrize("resolution", [(6, 12), (5, 8), (16, 32)])
def test_equirect_weights_are_the_exact_band_areas(resolution: tuple[int, int]) -> None:
    # Row i spans colatitudes [i, i + 1] * pi / H; its W pixels share the band's area equally:
    # 2 pi / W * (cos theta_top - cos theta_bottom), over the sphere's 4 pi.
    height, width = resolution
    expected = np.empty((height, width))
    for i in range(height):
        top, bottom = i * math.pi / height, (i + 1) * math.pi / height
        expected[i, :] = 2 * math.pi / width * (math.cos(top) - math.cos(bottom)) / (4 * math.pi)
    np.testing.assert_allclose(get_grid("equirect").quadrature_weights(resolution), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", ["equirect", "cubemap", "healpix"])
def test_spherical_weights_sum_to_one_and_are_positive(name: str) -> None:
    w = get_grid(name).quadrature_weights(SIZES[name])
    assert w.shape == get_grid(name).signal_shape(SIZES[name])
    assert abs(w.sum() - 1.0) < 1e-12 and (w > 0).all()


def test_healpix_weights_are_equal_areas() -> None:
    np.testing.assert_allclose(get_grid("healpix").quadrature_weights(4), np.full((12, 4, 4), 1 / 192), rtol=1e-14)


def test_flat_grid_weights_are_uniform() -> None:
    grid = get_grid("planar")
    np.testing.assert_array_equal(grid.quadrature_weights(3), np.full((3, 3), 1 / 9))
    w = grid.quadrature_weights_of(torch.zeros(2, 1, 4, 5, dtype=torch.float64))
    assert w.dtype == torch.float64 and w.shape == (4, 5)
    torch.testing.assert_close(w, torch.full((4, 5), 1 / 20, dtype=torch.float64))


@pytest.mark.parametrize("name", spherical_grids())
def test_weighted_mean_of_a_constant_is_the_constant(name: str) -> None:
    grid = get_grid(name)
    x = torch.full(grid.shape(1, 1, grid.default_size), 2.5, dtype=torch.float64)
    w = grid.quadrature_weights_of(x)
    assert w.dtype == torch.float64 and w.shape == x.shape[2:]
    assert abs(float((x[0, 0] * w).sum()) - 2.5) < 1e-12


@pytest.mark.parametrize("name", ["equirect", "cubemap", "healpix"])
def test_weighted_mean_of_a_fields_l_ge_1_part_vanishes(name: str) -> None:
    # Y_lm with l >= 1 integrates to zero over the sphere: the quadrature must see ~0, where the
    # plain pixel mean of equirect and the cube (which over-count the poles / the face corners)
    # is ~13 % of the field's spread (measured: equirect 0.128, cubemap 0.135; HEALPix is equal-area).
    field = BandLimitedField.random(4, batch=8, generator=torch.Generator().manual_seed(0))
    field.coefficients[..., 0] = 0.0
    grid, size = get_grid(name), SIZES[name]
    x = field.sample(name, size)
    spread = x.flatten(2).std(-1)
    weighted = (x * grid.quadrature_weights_of(x)).flatten(2).sum(-1)
    assert float((weighted.abs() / spread).max()) < 0.006
    if name != "healpix":
        assert float((x.flatten(2).mean(-1).abs() / spread).max()) > 0.1


def test_weights_of_a_tensor_in_another_layout_are_refused() -> None:
    with pytest.raises(GeoconvError, match=r"\(B, C, H, W\).*5-D"):
        get_grid("equirect").quadrature_weights_of(torch.zeros(1, 1, 12, 4, 4))
