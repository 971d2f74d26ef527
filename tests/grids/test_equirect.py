"""The equirect grid: padding against a literal float64 loop and the sphere's geometry; interpolation accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import equirect, get_grid
from geoconv.grids.sphere import angles_to_vectors, vectors_to_angles

GRID = equirect.GRID


def reference_pad(x: np.ndarray, widths: tuple[int, int, int, int], mode: str) -> np.ndarray:
    """The padding rule of the docs, one pixel at a time."""
    top, bottom, left, right = widths
    height, width = x.shape[-2:]
    out = np.zeros((*x.shape[:-2], height + top + bottom, width + left + right))
    for row in range(-top, height + bottom):
        for col in range(-left, width + right):
            if 0 <= row < height:
                value = x[..., row, col % width]
            elif mode == "lon_circular":
                value = 0.0
            elif row < 0:  # row -(k+1) is row k rolled by W/2
                k = -row - 1
                value = x[..., k, (col + width // 2) % width]
            else:  # row H+k is row H-1-k rolled by W/2
                k = row - height
                value = x[..., height - 1 - k, (col + width // 2) % width]
            out[..., row + top, col + left] = value
    return out


@st.composite
def padding_cases(draw: st.DrawFn) -> tuple[int, int, tuple[int, int, int, int], str]:
    height = draw(st.integers(1, 6))
    width = 2 * draw(st.integers(1, 6))
    rows = st.integers(0, height)
    cols = st.integers(0, width)
    widths = (draw(rows), draw(rows), draw(cols), draw(cols))
    return height, width, widths, draw(st.sampled_from(["sphere", "lon_circular"]))


@settings(max_examples=60, deadline=None)
@given(case=padding_cases())
def test_pad_matches_literal_loop(case: tuple) -> None:
    height, width, widths, mode = case
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    expected = reference_pad(x.numpy(), widths, mode)
    assert np.array_equal(equirect.pad(x, widths, mode).numpy(), expected)
    # The gather table itself (what pad_adjoint uses) is the same rule.
    from geoconv.grids._gather import gather

    table = GRID.pad_table((height, width), widths, mode)
    assert np.array_equal(gather(x, table, *table.on(x.device)).numpy(), expected)


def test_tables_are_cached_per_height_and_width() -> None:
    # Same H, different W: a cache keyed on H alone would hand back the wrong table.
    for width in (4, 8, 6, 4):
        x = torch.randn(1, 2, 3, width, dtype=torch.float64)
        assert np.array_equal(equirect.pad(x, 2).numpy(), reference_pad(x.numpy(), (2, 2, 2, 2), "sphere"))


@settings(max_examples=40, deadline=None)
@given(case=padding_cases(), steps=st.integers(-20, 20))
def test_pad_commutes_with_longitude_rolls(case: tuple, steps: int) -> None:
    height, width, (top, bottom, left, right), mode = case
    x = torch.randn(1, 2, height, width, dtype=torch.float64)
    rows_only = (top, bottom, 0, 0)
    rolled = equirect.roll_longitude(x, steps)
    assert torch.equal(equirect.pad(rolled, rows_only, mode), torch.roll(equirect.pad(x, rows_only, mode), steps, -1))
    # Columns beyond the seam are the longitude wrap of the row-padded map.
    full = equirect.pad(x, (top, bottom, left, right), mode)
    wrapped = F.pad(equirect.pad(x, rows_only, mode), (left, right, 0, 0), mode="circular")
    assert torch.equal(full, wrapped)


@pytest.mark.parametrize("mode", ["sphere", "lon_circular"])
@pytest.mark.parametrize(("height", "width"), [(1, 2), (3, 6), (4, 10), (5, 4)])
def test_pad_then_crop_equals_pad_by_one(mode: str, height: int, width: int) -> None:
    x = torch.randn(2, 1, height, width, dtype=torch.float64)
    one = equirect.pad(x, 1, mode)
    for w in range(1, min(height, width) + 1):
        crop = w - 1
        wide = equirect.pad(x, (w, w, w, w), mode)
        assert torch.equal(wide[..., crop : wide.shape[-2] - crop, crop : wide.shape[-1] - crop], one), w


@pytest.mark.parametrize(("height", "width"), [(4, 8), (5, 10), (3, 12), (6, 4)])
def test_padded_pixel_is_its_source_on_the_sphere(height: int, width: int) -> None:
    # A padded pixel's would-be centre (colatitude continued past the pole, longitude past
    # the seam) is the same point of the sphere as the centre of the pixel it copies.
    top = bottom = height
    left = right = width
    index = torch.arange(height * width, dtype=torch.float64).view(1, 1, height, width)
    source = equirect.pad(index, (top, bottom, left, right))[0, 0].numpy().astype(np.int64)
    rows = np.arange(-top, height + bottom)[:, None]
    cols = np.arange(-left, width + right)[None, :]
    would_be = angles_to_vectors(*np.broadcast_arrays((rows + 0.5) * np.pi / height, 2 * np.pi * cols / width))
    centres = GRID.vectors((height, width)).reshape(-1, 3)
    np.testing.assert_allclose(centres[source], would_be, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["sphere", "lon_circular", "zeros", "reflect"])
def test_pad_adjoint(mode: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 8, generator=gen, dtype=torch.float64)
    widths = (2, 1, 3, 2) if mode != "reflect" else (1, 1, 2, 2)
    padded = equirect.pad(x, widths, mode)
    y = torch.randn(padded.shape, generator=gen, dtype=torch.float64)
    back = GRID.pad_adjoint(y, widths, mode, x)
    assert back.shape == x.shape
    torch.testing.assert_close((padded * y).sum(), (x * back).sum(), rtol=1e-12, atol=1e-12)
    # And it is what autograd computes for pad.
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad((equirect.pad(x, widths, mode) * y).sum(), x)
    torch.testing.assert_close(grad, back, rtol=1e-12, atol=1e-12)


def test_lon_circular_is_exact_zeros_beyond_the_poles() -> None:
    x = torch.full((1, 1, 2, 4), float("inf"))
    padded = equirect.pad(x, (2, 2, 1, 1), "lon_circular")
    assert torch.equal(padded[..., :2, :], torch.zeros(1, 1, 2, 6))
    assert torch.equal(padded[..., -2:, :], torch.zeros(1, 1, 2, 6))
    assert torch.isinf(padded[..., 2:4, :]).all()


# -- layout and geometry ------------------------------------------------------------------


def test_layout_and_centres_are_e3nn_s2_grid() -> None:
    from e3nn import o3

    assert get_grid("equirect") is GRID
    assert GRID.shape(2, 3, 8) == (2, 3, 8, 16)
    assert GRID.size_of(torch.zeros(GRID.shape(1, 1, 8))) == 8
    assert GRID.padding_modes[:2] == ("sphere", "lon_circular") and GRID.default_padding_mode == "sphere"
    for height, width in ((8, 16), (5, 12)):
        colat, lon = GRID.centres((height, width))
        betas, alphas = o3.s2_grid(height, width, dtype=torch.float64)
        np.testing.assert_allclose(colat, np.broadcast_to(betas.numpy()[:, None], (height, width)), atol=1e-15)
        np.testing.assert_allclose(lon, np.broadcast_to(alphas.numpy(), (height, width)), atol=1e-15)
    vectors = GRID.vectors(4)
    assert vectors.shape == (4, 8, 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(vectors[0, 0], [np.sin(np.pi / 8), 0.0, np.cos(np.pi / 8)], atol=1e-15)


def test_bad_input() -> None:
    with pytest.raises(ShapeError, match=r"even width W.*W=5"):
        equirect.pad(torch.zeros(1, 1, 3, 5), 1)
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\)"):
        equirect.pad(torch.zeros(3, 6), 1)
    with pytest.raises(GeoconvError, match=r"at most the face size 3x6"):
        equirect.pad(torch.zeros(1, 1, 3, 6), (4, 0, 0, 0))
    with pytest.raises(GeoconvError, match=r"at most the face size 3x6"):
        equirect.pad(torch.zeros(1, 1, 3, 6), (0, 0, 0, 7))
    with pytest.raises(UnknownNameError, match="sphere"):
        equirect.pad(torch.zeros(1, 1, 3, 6), 1, "spherical")
    with pytest.raises(ParameterError, match=r"W\) for grid 'equirect' must be even"):
        GRID.centres((4, 7))
    with pytest.raises(ParameterError, match="finite"):
        GRID.interpolate(torch.zeros(1, 1, 2, 4), [0.1, np.nan], 0.0)
    with pytest.raises(ShapeError, match="floating-point"):
        GRID.interpolate(torch.zeros(1, 1, 2, 4, dtype=torch.int64), 0.1, 0.0)
    with pytest.raises(ParameterError, match="steps"):
        equirect.roll_longitude(torch.zeros(1, 1, 2, 4), 1.5)  # type: ignore[arg-type]


# -- interpolation ------------------------------------------------------------------------


def polynomial(v: np.ndarray) -> np.ndarray:
    """A cubic in x, y, z: smooth on the sphere, exact to evaluate."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return 1 + x - 2 * y + 0.5 * z + 3 * x * y - y * z + 2 * z * z + x * y * z - x**3


def test_interpolation_is_second_order() -> None:
    rng = np.random.default_rng(0)
    # Random points anywhere (colatitudes past either pole included), and a cap around each pole.
    colat = np.concatenate([rng.uniform(-1, 4, 3000), rng.uniform(0, 0.05, 500), rng.uniform(np.pi - 0.05, np.pi, 500)])
    lon = rng.uniform(-7, 7, colat.size)
    exact = polynomial(angles_to_vectors(colat, lon))
    errors = []
    for height in (8, 16, 32, 64):
        x = torch.from_numpy(polynomial(GRID.vectors(height)))[None, None]
        errors.append(np.sqrt(np.mean((GRID.interpolate(x, colat, lon)[0, 0].numpy() - exact) ** 2)))
    # Measured rms (H = 8, 16, 32, 64): 7.2e-2, 1.8e-2, 4.3e-3, 1.1e-3 (ratios 4.0, 4.2, 4.0).
    assert errors[-1] < 2e-3
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert ((ratios > 3.5) & (ratios < 4.5)).all(), ratios


@pytest.mark.parametrize(("height", "width"), [(1, 2), (4, 8), (7, 14), (6, 10), (32, 64)])
def test_interpolation_at_centres_is_exact(height: int, width: int) -> None:
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    assert torch.equal(GRID.interpolate(x, *GRID.centres((height, width))), x)
    # Centres recovered from unit vectors carry round-off; they still land on the pixels.
    colat, lon = vectors_to_angles(GRID.vectors((height, width)))
    assert torch.equal(GRID.interpolate(x, colat, lon), x)


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 6), half_width=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_interpolation_matches_grid_sample_on_the_padded_map(height: int, half_width: int, seed: int) -> None:
    # Independent reference: torch's bilinear grid_sample on the map padded by the literal
    # loop above, at the same points in pixel coordinates (row centre i at (i + 1/2) pi / H).
    width = 2 * half_width
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(1, 2, height, width)))
    padded = torch.from_numpy(reference_pad(x.numpy(), (1, 1, 1, 1), "sphere"))
    colat, lon = rng.uniform(0, np.pi, 50), rng.uniform(0, 2 * np.pi, 50)
    rows = colat * height / np.pi - 0.5 + 1  # + 1: the padding
    cols = lon * width / (2 * np.pi) + 1
    points = np.stack([2 * cols / (width + 1) - 1, 2 * rows / (height + 1) - 1], -1)  # align_corners=True
    expected = F.grid_sample(padded, torch.from_numpy(points)[None, None], align_corners=True)[:, :, 0]
    torch.testing.assert_close(GRID.interpolate(x, colat, lon), expected, rtol=1e-12, atol=1e-12)


def test_interpolation_across_the_pole() -> None:
    x = torch.randn(1, 1, 4, 8, dtype=torch.float64)
    # At the pole itself: halfway between row 0 and row 0 half a turn away.
    at_pole = GRID.interpolate(x, np.zeros(8), GRID.centres(4)[1][0])[0, 0]
    torch.testing.assert_close(at_pole, (x[0, 0, 0] + torch.roll(x[0, 0, 0], 4)) / 2, rtol=0, atol=1e-15)
    south = GRID.interpolate(x, np.full(8, np.pi), GRID.centres(4)[1][0])[0, 0]
    torch.testing.assert_close(south, (x[0, 0, -1] + torch.roll(x[0, 0, -1], 4)) / 2, rtol=0, atol=1e-15)


def test_interpolation_shapes_and_gradient() -> None:
    x = torch.randn(2, 3, 4, 8, dtype=torch.float64, requires_grad=True)
    colat = np.random.default_rng(1).uniform(0, np.pi, (5, 7))
    out = GRID.interpolate(x, colat, 1.0)  # longitude broadcasts
    assert out.shape == (2, 3, 5, 7)
    assert torch.autograd.gradcheck(lambda t: equirect.interpolate(t, colat, 1.0), (x,))
    assert equirect.interpolate(x, 0.5, 0.5).shape == (2, 3)
