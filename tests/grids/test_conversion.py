"""Grid-to-grid conversion, checked against band-limited fields evaluated exactly at every pixel centre."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from geoconv.errors import ParameterError, ShapeError, UnknownNameError
from geoconv.grids import get_grid, list_grids
from geoconv.grids.conversion import convert
from geoconv.grids.fields import BandLimitedField

SPHERICAL = [name for name in list_grids() if name != "planar"]
# Comparable resolutions: about 2H pixels around the equator on each grid.
LEVELS = {"equirect": (16, 32, 64), "cubemap": (8, 16, 32), "healpix": (8, 16, 32), "icosahedral": (3, 4, 5)}


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


@pytest.fixture(scope="module")
def field() -> BandLimitedField:
    # A smooth field: white up to degree 6, rms value 2.1.
    return BandLimitedField.random(6, batch=2, channels=2, generator=torch.Generator().manual_seed(0))


# Measured rms at the target centres over the three levels (a same-grid target at twice
# the resolution), for the fixture's field:
#   equirect -> equirect 0.148, 0.038, 0.0095   cubemap -> equirect 0.219, 0.057, 0.014
#   equirect -> cubemap  0.143, 0.038, 0.0095   cubemap -> cubemap  0.175, 0.045, 0.011
#   equirect -> healpix  0.155, 0.039, 0.0099   cubemap -> healpix  0.192, 0.050, 0.013
#   healpix  -> equirect 0.090, 0.029, 0.0085   healpix -> cubemap  0.091, 0.023, 0.0057
#   healpix  -> healpix  0.086, 0.022, 0.0056
@pytest.mark.parametrize(("source", "target"), list(itertools.product(SPHERICAL, SPHERICAL)))
def test_values_at_target_centres_converge(field: BandLimitedField, source: str, target: str) -> None:
    errors = []
    for source_size, target_size in zip(LEVELS[source], LEVELS[target], strict=True):
        if source == target:
            # another resolution, not the identity (the icosahedral size is a level: one more)
            target_size = target_size + 1 if target == "icosahedral" else 2 * target_size
        converted = convert(field.sample(source, source_size), source, target, target_size)
        assert converted.shape == get_grid(target).shape(2, 2, target_size)
        errors.append(rms(converted - field.sample(target, target_size)))
    assert errors[-1] < 2e-2, errors
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert (ratios > 3.0).all(), errors  # bilinear: ~4 per doubling


# Measured rms of the round trip equirect H -> other (H/2) -> equirect H, H = 16, 32, 64:
#   via cubemap: 0.327, 0.089, 0.023 (ratios 3.7, 4.0)
#   via healpix: 0.176, 0.054, 0.014 (ratios 3.3, 3.9)
@pytest.mark.parametrize("middle", [name for name in SPHERICAL if name != "equirect"])
def test_round_trips_through_another_grid(field: BandLimitedField, middle: str) -> None:
    errors = []
    for height, size in zip(LEVELS["equirect"], LEVELS[middle], strict=True):
        x = field.sample("equirect", height)
        back = convert(convert(x, "equirect", middle, size), middle, "equirect", height)
        errors.append(rms(back - x))
    assert errors[-1] < 3e-2, errors
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert (ratios > 3.0).all(), errors


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SPHERICAL, SPHERICAL)))
def test_constants_are_preserved(source: str, target: str) -> None:
    # Interpolation weights sum to one: a constant map converts to the same constant.
    x = torch.full(get_grid(source).shape(1, 2, 4), 2.5, dtype=torch.float64)
    torch.testing.assert_close(
        convert(x, source, target, 8),
        torch.full(get_grid(target).shape(1, 2, 8), 2.5, dtype=torch.float64),
        rtol=0,
        atol=1e-13,
    )


def test_identity_and_non_square_equirect() -> None:
    x = torch.randn(1, 2, 8, 16, dtype=torch.float64)
    assert convert(x, "equirect", "equirect", 8) is x
    assert convert(x, "equirect", "equirect", (8, 16)) is x
    wide = torch.randn(1, 2, 4, 12, dtype=torch.float64)
    assert convert(wide, "equirect", "equirect", (4, 12)) is wide
    # Two-to-one refinement in longitude only: even columns are the original pixels, exactly.
    finer = convert(wide, "equirect", "equirect", (4, 24))
    assert torch.equal(finer[..., ::2], wide)
    torch.testing.assert_close(finer[..., 1::2], (wide + torch.roll(wide, -1, -1)) / 2, rtol=0, atol=1e-14)


def test_convert_is_differentiable() -> None:
    x = torch.randn(1, 1, 4, 8, dtype=torch.float64, requires_grad=True)
    for target in SPHERICAL:
        assert torch.autograd.gradcheck(lambda t, target=target: convert(t, "equirect", target, 2), (x,))


def test_bad_input() -> None:
    x = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ParameterError, match=r"convert needs a spherical grid.*'planar'"):
        convert(x, "planar", "equirect", 4)
    with pytest.raises(ParameterError, match=r"convert needs a spherical grid.*'planar'"):
        convert(x, "equirect", "planar", 4)
    with pytest.raises(UnknownNameError, match="cubemap"):
        convert(x, "equirect", "cube", 4)
    with pytest.raises(ShapeError, match="W=7"):
        convert(torch.zeros(1, 1, 4, 7), "equirect", "equirect", 4)
    with pytest.raises(ParameterError, match="size"):
        convert(x, "equirect", "equirect", 0)
    with pytest.raises(ParameterError, match="must be even"):
        convert(x, "equirect", "equirect", (4, 9))
