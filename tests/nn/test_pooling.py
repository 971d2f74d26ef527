"""GlobalMeanPool: the quadrature mean against float64 loops, exact grid symmetries, and rotations."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from geoconv.errors import GeoconvError
from geoconv.grids import get_grid
from geoconv.grids.fields import BandLimitedField
from geoconv.nn.models import Classifier
from geoconv.nn.pooling import GlobalMeanPool


def test_equirect_pool_is_the_band_area_weighted_mean() -> None:
    x = torch.randn(2, 3, 6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros(2, 3, dtype=torch.float64)
    total = 0.0
    for i in range(6):  # row i spans colatitudes [i, i + 1] * pi / 6
        area = 2 * math.pi / 10 * (math.cos(i * math.pi / 6) - math.cos((i + 1) * math.pi / 6))
        for j in range(10):
            expected += area * x[:, :, i, j]
            total += area
    torch.testing.assert_close(GlobalMeanPool("equirect")(x), expected / total, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("grid", "size"), [("planar", 5), ("healpix", 2)])
def test_equal_area_grids_pool_to_the_plain_mean(grid: str, size: int) -> None:
    x = torch.randn(get_grid(grid).shape(2, 3, size), dtype=torch.float64)
    torch.testing.assert_close(GlobalMeanPool(grid)(x), x.flatten(2).mean(-1), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("grid", "size"), [("equirect", 8), ("cubemap", 4), ("healpix", 2)])
def test_pool_of_a_constant_is_the_constant(grid: str, size: int) -> None:
    x = torch.full(get_grid(grid).shape(2, 3, size), -1.25, dtype=torch.float64)
    torch.testing.assert_close(GlobalMeanPool(grid)(x), torch.full((2, 3), -1.25, dtype=torch.float64))


def test_uniform_weights_give_the_pixel_mean_and_the_weights_stay_out_of_the_state_dict() -> None:
    x = torch.randn(2, 3, 8, 16)
    torch.testing.assert_close(GlobalMeanPool("equirect", "uniform")(x), x.flatten(2).mean(-1))
    pool = GlobalMeanPool("equirect")
    pool(x)
    assert pool.weights.shape == (8, 16) and pool.state_dict() == {}
    pool(torch.randn(1, 3, 4, 8, dtype=torch.float64))  # a new resolution and dtype rebuild the buffer
    assert pool.weights.shape == (4, 8) and pool.weights.dtype == torch.float64


def test_bad_input_names_itself() -> None:
    with pytest.raises(GeoconvError, match="weights"):
        GlobalMeanPool("equirect", "area_weighted")
    with pytest.raises(GeoconvError, match=r"\(B, C, \*spatial\)"):
        GlobalMeanPool("equirect")(torch.randn(2, 3))


@pytest.mark.parametrize("grid", ["equirect", "healpix"])
def test_pooled_features_are_invariant_under_exact_grid_symmetries(grid: str) -> None:
    # Stride 1 and the grid's own padding: a longitude roll by whole pixels (equirect) or a
    # quarter turn (HEALPix) permutes the pixels within rows of equal area.
    torch.manual_seed(0)
    model = Classifier("conv", 2, 5, grid=grid, widths=(4, 6), stride=1).double()
    sphere = get_grid(grid)
    x = sphere.random_signal(2, 2, 8, generator=torch.Generator().manual_seed(1)).double()
    turned = sphere.turn_about_pole(x, 3 if grid == "equirect" else 1)
    torch.testing.assert_close(model.features(turned), model.features(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["none", "instance"])
def test_area_pooling_is_far_less_sensitive_to_rotations_than_the_pixel_mean(norm: str) -> None:
    # A pointwise body (1x1 convs, ReLU) commutes with any rotation of a field sampled at the
    # pixel centres, so every change of the pooled features under a rotation is the pooling's
    # (and the norm statistics') quadrature error. Measured on equirect 16x32, band limit 4,
    # the move over the between-sample spread, worst of 4 Haar-random rotations:
    #   norm none:     area 0.014, pixel mean 0.53
    #   norm instance: area 0.15,  pixel mean 2.9   (the norm's statistics are area-weighted too)
    torch.manual_seed(0)
    model = Classifier("conv", 1, 10, grid="equirect", widths=(8, 8), params={"kernel_size": 1}, stride=1, norm=norm)
    model = model.double().eval()
    field = BandLimitedField.random(4, batch=6, generator=torch.Generator().manual_seed(1))
    rotations = torch.as_tensor(Rotation.random(4, random_state=2).as_matrix())
    moves = {}
    for weights in ("area", "uniform"):
        model.pool = GlobalMeanPool("equirect", weights)
        with torch.no_grad():
            reference = model.features(field.sample("equirect", 16))
            spread = reference.std(0).norm()
            moves[weights] = max(
                float((model.features(field.rotate(r).sample("equirect", 16)) - reference).norm(dim=1).mean() / spread)
                for r in rotations
            )
    assert moves["area"] < (0.03 if norm == "none" else 0.25), moves
    assert moves["uniform"] > 10 * moves["area"], moves
