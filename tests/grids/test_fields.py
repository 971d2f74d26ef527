"""Band-limited fields: closed forms, exact quadrature, e3nn's Wigner D and the rotation law f(R^T v)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids import get_grid, list_grids
from geoconv.grids.fields import MAX_DEGREE, BandLimitedField, harmonics, wigner_d
from geoconv.grids.rotation import random_rotation, rotation_about_z

SPHERICAL = [name for name in list_grids() if name != "planar"]


def unit_vectors(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=generator, dtype=torch.float64), dim=-1)


@settings(max_examples=20, deadline=None)
@given(lmax=st.integers(0, MAX_DEGREE), seed=st.integers(0, 2**31 - 1))
def test_rotated_field_is_the_field_at_rotated_points(lmax: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    field = BandLimitedField.random(lmax, batch=2, channels=3, generator=gen)
    rotation = random_rotation(gen)
    v = unit_vectors(100, gen)
    expected = field.evaluate(v @ rotation)  # rows of v @ R are R^T v
    # Measured: max error 4e-14 at lmax 12 (values up to ~14).
    torch.testing.assert_close(field.rotate(rotation).evaluate(v), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("lmax", [1, 4, 8])
def test_wigner_d_matches_e3nn_in_float64(lmax: int) -> None:
    from e3nn import o3

    rotation = random_rotation(torch.Generator().manual_seed(lmax))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
    try:
        expected = o3.Irreps([(1, (degree, 1)) for degree in range(lmax + 1)]).D_from_matrix(rotation)
    finally:
        torch.set_default_dtype(previous)
    d = wigner_d(lmax, rotation)
    torch.testing.assert_close(d, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(d @ d.T, torch.eye(d.shape[0], dtype=torch.float64), rtol=0, atol=1e-12)


def test_rotations_compose() -> None:
    gen = torch.Generator().manual_seed(3)
    field = BandLimitedField.random(6, channels=2, generator=gen)
    r1, r2 = random_rotation(gen), random_rotation(gen)
    twice = field.rotate(r1).rotate(r2)
    torch.testing.assert_close(twice.coefficients, field.rotate(r2 @ r1).coefficients, rtol=0, atol=1e-12)
    # The angular power spectrum is rotation invariant.
    torch.testing.assert_close(twice.power(), field.power(), rtol=1e-12, atol=1e-12)
    # A quarter turn about z moves a feature at +x to +y: (R f)(e_y) = f(R^T e_y) = f(e_x).
    quarter = field.rotate(rotation_about_z(math.pi / 2))
    torch.testing.assert_close(
        quarter.evaluate(torch.tensor([0.0, 1.0, 0.0])), field.evaluate(torch.tensor([1.0, 0.0, 0.0]))
    )


def test_closed_form_for_degrees_zero_and_one() -> None:
    # Y_0 = 1 / sqrt(4 pi), Y_1 = sqrt(3 / (4 pi)) (x, y, z) with integral normalisation.
    a = torch.tensor([[[0.7, -1.2, 0.4, 2.0]]], dtype=torch.float64)
    field = BandLimitedField(a, lmax=1)
    v = unit_vectors(50, torch.Generator().manual_seed(0))
    x, y, z = v.unbind(-1)
    expected = 0.7 / math.sqrt(4 * math.pi) + math.sqrt(3 / (4 * math.pi)) * (-1.2 * x + 0.4 * y + 2.0 * z)
    torch.testing.assert_close(field.evaluate(v)[0, 0], expected, rtol=0, atol=1e-14)
    # Vectors are normalised first.
    torch.testing.assert_close(field.evaluate(3 * v), field.evaluate(v), rtol=0, atol=1e-14)


def test_harmonics_are_orthonormal_under_exact_quadrature() -> None:
    # Gauss-Legendre in cos(colatitude) x uniform longitudes integrates degree <= 2 L exactly.
    lmax = 8
    cos_colat, weights = np.polynomial.legendre.leggauss(lmax + 1)
    lon = 2 * np.pi * np.arange(2 * lmax + 2) / (2 * lmax + 2)
    sin_colat = np.sqrt(1 - cos_colat**2)[:, None]
    points = np.stack(
        [sin_colat * np.cos(lon), sin_colat * np.sin(lon), np.broadcast_to(cos_colat[:, None], (lmax + 1, lon.size))],
        axis=-1,
    ).reshape(-1, 3)
    w = torch.from_numpy(np.repeat(weights * 2 * np.pi / lon.size, lon.size))
    y = harmonics(lmax, points)
    torch.testing.assert_close(
        y.T @ (w[:, None] * y), torch.eye((lmax + 1) ** 2, dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_power_spectrum_option() -> None:
    spectrum = [2.0, 0.5, 0.0, 1e-2]
    field = BandLimitedField.random(
        3, batch=4, channels=500, spectrum=spectrum, generator=torch.Generator().manual_seed(0)
    )
    measured = field.power().mean(dim=(0, 1)).numpy()
    # Each C_l estimate averages 2000 (2l + 1) squared normals: relative std sqrt(2 / (2000 (2l + 1))).
    sigma = np.sqrt(2 / (2000 * (2 * np.arange(4) + 1))) * np.array(spectrum)
    assert (np.abs(measured - spectrum) <= 5 * sigma + 1e-15).all(), measured
    assert field.power()[..., 2].abs().max() == 0
    callable_field = BandLimitedField.random(
        3, spectrum=lambda degree: float(degree == 1), generator=torch.Generator().manual_seed(1)
    )
    assert torch.count_nonzero(callable_field.coefficients).item() == 3


@pytest.mark.parametrize("grid", SPHERICAL)
def test_sampling_matches_evaluating_at_the_grid_vectors(grid: str) -> None:
    field = BandLimitedField.random(5, batch=2, channels=3, generator=torch.Generator().manual_seed(0))
    g = get_grid(grid)
    sampled = field.sample(grid, 4)
    assert sampled.shape == g.shape(2, 3, 4)
    g.check(sampled)
    vectors = torch.from_numpy(g.vectors(4).reshape(-1, 3))
    torch.testing.assert_close(sampled.reshape(2, 3, -1), field.evaluate(vectors), rtol=0, atol=0)


def test_sampling_on_equirect_against_the_closed_form() -> None:
    # f = sqrt(4 pi / 3) * z sampled at equirect centres is cos((i + 1/2) pi / H) down the rows.
    field = BandLimitedField(torch.tensor([[[0.0, 0.0, 0.0, math.sqrt(4 * math.pi / 3)]]], dtype=torch.float64), 1)
    sampled = field.sample("equirect", 6)[0, 0]
    expected = torch.cos((torch.arange(6, dtype=torch.float64) + 0.5) * math.pi / 6)[:, None].expand(6, 12)
    torch.testing.assert_close(sampled, expected, rtol=0, atol=1e-14)
    assert field.sample("equirect", (3, 4)).shape == (1, 1, 3, 4)


@pytest.mark.skipif("healpix" not in SPHERICAL, reason="the healpix grid is not implemented yet")
def test_sampling_on_healpix_matches_healpy_pixel_centres() -> None:
    import healpy as hp

    from geoconv.grids import healpix

    nside = 4
    field = BandLimitedField.random(6, channels=2, generator=torch.Generator().manual_seed(2))
    nest = healpix.faces_to_nest(field.sample("healpix", nside))
    vectors = np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=True), axis=-1)
    torch.testing.assert_close(nest, field.evaluate(vectors), rtol=0, atol=1e-12)


def test_float32_fields() -> None:
    field = BandLimitedField.random(6, channels=2, generator=torch.Generator().manual_seed(0))
    single = BandLimitedField(field.coefficients.float(), 6)
    v = unit_vectors(30, torch.Generator().manual_seed(1))
    assert single.evaluate(v).dtype == torch.float32
    torch.testing.assert_close(single.evaluate(v).double(), field.evaluate(v), rtol=0, atol=1e-5)
    rotation = random_rotation(torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        single.rotate(rotation).evaluate(v).double(), field.rotate(rotation).evaluate(v), rtol=0, atol=1e-5
    )


def test_bad_input() -> None:
    with pytest.raises(ParameterError, match=r"lmax must be an integer >= 0 and <= 12, got 13"):
        BandLimitedField.random(13)
    with pytest.raises(ShapeError, match=r"lmax=2 must have shape \(B, C, 9\), got shape \(1, 1, 4\)"):
        BandLimitedField(torch.zeros(1, 1, 4, dtype=torch.float64), 2)
    with pytest.raises(ShapeError, match=r"\(B, C, \(lmax \+ 1\)\*\*2\)"):
        BandLimitedField(torch.zeros(4, dtype=torch.float64), 1)
    with pytest.raises(ParameterError, match=r"one C_l per degree l = 0..2 \(3 values\), got 2"):
        BandLimitedField.random(2, spectrum=[1.0, 1.0])
    with pytest.raises(ParameterError, match=r">= 0"):
        BandLimitedField.random(1, spectrum=[1.0, -1.0])
    field = BandLimitedField.random(2)
    with pytest.raises(ParameterError, match=r"spherical grid.*'planar'"):
        field.sample("planar", 4)
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        field.evaluate(torch.zeros(5, 2))
    with pytest.raises(GeoconvError, match=r"det \+1"):
        field.rotate(-torch.eye(3))
