"""Rotations: Haar statistics, validation, exact permutations checked against the geometry, resampling accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import get_grid, list_grids
from geoconv.grids.fields import BandLimitedField
from geoconv.grids.rotation import check_rotation, random_rotation, rotate, rotation_about_z
from geoconv.grids.sphere import vectors_to_angles

SPHERICAL = [name for name in list_grids() if name != "planar"]
TURNING = [name for name in SPHERICAL if hasattr(get_grid(name), "quarter_turn")]
SIZES = {"equirect": 8, "cubemap": 4, "healpix": 4, "icosahedral": 2}


def geometric_rotation(x: torch.Tensor, grid: str, size: int, rotation: torch.Tensor) -> torch.Tensor:
    """``(R x)(p) = x(q)`` with ``q`` the pixel whose centre is ``R^T c_p``; asserts that pixel exists."""
    centres = get_grid(grid).vectors(size).reshape(-1, 3)
    sources = centres @ rotation.numpy()  # rows: R^T c_p
    q = np.argmax(sources @ centres.T, axis=1)
    np.testing.assert_allclose(centres[q], sources, rtol=0, atol=1e-12)
    spatial = centres.shape[0]
    return x.reshape(*x.shape[:2], spatial)[..., torch.from_numpy(q)].reshape(x.shape)


# -- matrices -----------------------------------------------------------------------------


def test_random_rotation_is_a_rotation_and_reproducible() -> None:
    for seed in range(20):
        rotation = random_rotation(torch.Generator().manual_seed(seed))
        torch.testing.assert_close(rotation.T @ rotation, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-14)
        assert abs(float(torch.det(rotation)) - 1) < 1e-14
    first = random_rotation(torch.Generator().manual_seed(5))
    assert torch.equal(first, random_rotation(torch.Generator().manual_seed(5)))
    assert random_rotation(dtype=torch.float32).dtype == torch.float32


def test_random_rotation_has_haar_statistics() -> None:
    # Under the Haar measure on SO(3): E[R] = 0, E[R_ij^2] = 1/3, E[tr R] = 0, E[(tr R)^2] = 1,
    # and R e_z is uniform on the sphere (E[z] = 0, E[z^2] = 1/3).
    gen = torch.Generator().manual_seed(0)
    n = 4000
    rotations = torch.stack([random_rotation(gen) for _ in range(n)])
    five_sigma = 5 / math.sqrt(n)
    assert rotations.mean(0).abs().max() < five_sigma * math.sqrt(1 / 3)
    assert (rotations.pow(2).mean(0) - 1 / 3).abs().max() < five_sigma * 0.3
    trace = rotations.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert abs(float(trace.mean())) < five_sigma
    assert abs(float(trace.pow(2).mean()) - 1) < five_sigma * 1.5
    assert abs(float(rotations[:, 2, 2].mean())) < five_sigma * 0.6


def test_rotation_about_z_adds_to_longitude() -> None:
    v = get_grid("equirect").vectors(4).reshape(-1, 3)
    colat, lon = vectors_to_angles(v)
    moved_colat, moved_lon = vectors_to_angles(v @ rotation_about_z(0.3).numpy().T)  # rows: R v
    np.testing.assert_allclose(moved_colat, colat, atol=1e-12)
    np.testing.assert_allclose(np.mod(moved_lon - lon, 2 * np.pi), 0.3, atol=1e-12)


def test_check_rotation() -> None:
    rotation = random_rotation(torch.Generator().manual_seed(1))
    assert check_rotation(rotation) is rotation
    assert check_rotation(rotation.float()).dtype == torch.float32  # float32 round-off passes
    assert torch.equal(check_rotation(rotation.numpy()), rotation)
    assert check_rotation(torch.eye(3, dtype=torch.int64)).dtype == torch.float64
    with pytest.raises(ParameterError, match=r"orthonormal to 1e-06 \(max \|R\^T R - I\|\), got a deviation of 0\.21"):
        check_rotation(1.1 * torch.eye(3))
    with pytest.raises(ParameterError, match=r"det \+1\), got det -1"):
        check_rotation(-rotation)
    with pytest.raises(ShapeError, match=r"3x3 rotation matrix, got shape \(2, 2\)"):
        check_rotation(torch.eye(2))
    with pytest.raises(ShapeError, match=r"3x3 rotation matrix, got shape \(2, 3, 3\)"):
        check_rotation(torch.eye(3).expand(2, 3, 3))
    with pytest.raises(ParameterError, match="finite"):
        check_rotation(torch.full((3, 3), float("nan")))
    with pytest.raises(ShapeError, match="got str"):
        check_rotation("identity")


# -- exact rotations ----------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(steps=st.integers(-40, 40), height=st.integers(1, 6), half_width=st.integers(1, 8))
def test_equirect_whole_pixel_turns_are_exact_permutations(steps: int, height: int, half_width: int) -> None:
    width = 2 * half_width
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    rotation = rotation_about_z(2 * math.pi * steps / width)
    expected = geometric_rotation(x, "equirect", (height, width), rotation)
    assert torch.equal(rotate(x, "equirect", rotation), expected)
    assert torch.equal(rotate(x.float(), "equirect", rotation.float()), expected.float())


@pytest.mark.parametrize("grid", TURNING)
@pytest.mark.parametrize("k", [-1, 1, 2, 3, 4])
def test_quarter_turns_are_exact_permutations(grid: str, k: int) -> None:
    size = SIZES[grid]
    x = torch.randn(get_grid(grid).shape(2, 3, size), dtype=torch.float64)
    rotation = rotation_about_z(k * math.pi / 2)
    assert torch.equal(rotate(x, grid, rotation), geometric_rotation(x, grid, size, rotation))


@pytest.mark.parametrize("grid", SPHERICAL)
def test_identity_returns_the_input(grid: str) -> None:
    x = torch.randn(get_grid(grid).shape(1, 2, SIZES[grid]), dtype=torch.float64)
    assert rotate(x, grid, torch.eye(3)) is x
    if grid == "equirect":
        # Resampled at its own pixel centres the map comes back exactly: no interpolation floor.
        assert torch.equal(rotate(x, grid, torch.eye(3), method="resample"), x)


# -- resampled rotations ------------------------------------------------------------------

# rms error of the resampled rotation of a white lmax-4 field (rms value ~1.4), seed 0:
#   equirect H = 16, 32, 64: 5.6e-2, 1.6e-2, 3.6e-3
#   cubemap  F =  8, 16, 32: 5.6e-2, 1.5e-2, 3.8e-3
#   healpix  n =  8, 16, 32: 3.5e-2, 8.9e-3, 2.3e-3
RESOLUTIONS = {"equirect": (16, 32, 64), "cubemap": (8, 16, 32), "healpix": (8, 16, 32), "icosahedral": (3, 4, 5)}


@pytest.mark.parametrize("grid", SPHERICAL)
def test_resampled_rotation_of_a_band_limited_field_converges(grid: str) -> None:
    gen = torch.Generator().manual_seed(0)
    field = BandLimitedField.random(4, channels=2, generator=gen)
    rotation = random_rotation(gen)
    exact = field.rotate(rotation)
    errors = []
    for size in RESOLUTIONS[grid]:
        rotated = rotate(field.sample(grid, size), grid, rotation)
        errors.append(float((rotated - exact.sample(grid, size)).pow(2).mean().sqrt()))
    assert errors[-1] < 5e-3, errors
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert (ratios > 3.0).all(), errors  # second order: ~4 per doubling


def test_rotation_to_another_resolution() -> None:
    gen = torch.Generator().manual_seed(1)
    field = BandLimitedField.random(4, generator=gen)
    rotation = random_rotation(gen)
    rotated = rotate(field.sample("equirect", 32), "equirect", rotation, size=48)
    assert rotated.shape == (1, 1, 48, 96)
    assert float((rotated - field.rotate(rotation).sample("equirect", 48)).abs().max()) < 0.1
    # A whole-pixel turn onto another resolution cannot be a permutation: it resamples.
    turn = rotate(field.sample("equirect", 32), "equirect", rotation_about_z(2 * math.pi / 64), size=(32, 32))
    assert turn.shape == (1, 1, 32, 32)


def test_rotations_compose() -> None:
    gen = torch.Generator().manual_seed(2)
    field = BandLimitedField.random(4, generator=gen)
    r1, r2 = random_rotation(gen), random_rotation(gen)
    x = field.sample("equirect", 64)
    twice = rotate(rotate(x, "equirect", r1), "equirect", r2)
    once = rotate(x, "equirect", r2 @ r1)
    exact = field.rotate(r2 @ r1).sample("equirect", 64)
    # Two interpolations compound, about twice the error of one: measured rms 5.7e-3 vs 3.0e-3
    # (twice vs once: 3.3e-3), for a field of rms 1.2.
    assert float((twice - exact).pow(2).mean().sqrt()) < 1e-2
    assert float((once - exact).pow(2).mean().sqrt()) < 5e-3
    assert float((twice - once).pow(2).mean().sqrt()) < 1e-2


def test_rotation_is_differentiable() -> None:
    x = torch.randn(1, 1, 4, 8, dtype=torch.float64, requires_grad=True)
    rotation = random_rotation(torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(lambda t: rotate(t, "equirect", rotation), (x,))


def test_bad_input() -> None:
    x = torch.zeros(1, 1, 4, 8)
    with pytest.raises(GeoconvError, match="orthonormal"):
        rotate(x, "equirect", 2 * torch.eye(3))
    with pytest.raises(GeoconvError, match=r"det \+1"):
        rotate(x, "equirect", torch.diag(torch.tensor([1.0, -1.0, 1.0])))
    with pytest.raises(ParameterError, match=r"spherical grid.*'planar'"):
        rotate(x, "planar", torch.eye(3))
    with pytest.raises(UnknownNameError, match="equirect"):
        rotate(x, "equirectangular", torch.eye(3))
    with pytest.raises(ShapeError, match="W=7"):
        rotate(torch.zeros(1, 1, 4, 7), "equirect", torch.eye(3))
    with pytest.raises(UnknownNameError, match="resample"):
        rotate(x, "equirect", torch.eye(3), method="exact")  # type: ignore[arg-type]
