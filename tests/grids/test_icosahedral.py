"""The icosahedral grid against an independent icosphere, exact symmetries and band-limited fields.

The reference mesh is built here from scratch: the 12 vertices of the icosahedron from the
golden ratio (cyclic permutations of ``(0, +-1, +-phi)``), its 20 faces found as the
triples of mutually adjacent vertices, turned so that one vertex is the north pole and one
of its neighbours lies at longitude 0, then subdivided ``r`` times by normalised edge
midpoints. Pixels, neighbours, padding, areas and interpolation are checked against it.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import geoconv
import geoconv.grids.icosahedral as icosahedral
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids import convert, get_grid, rotation_about_z, spherical_grids
from geoconv.grids.fields import BandLimitedField
from geoconv.grids.sphere import reference_padding, vectors_to_angles
from geoconv.probes.sphere import symmetry_error
from geoconv.viz import plot_map

GRID = icosahedral.GRID
ROOT = Path(__file__).resolve().parents[2]

# -- the independent reference mesh ---------------------------------------------------------


class Mesh:
    """An icosphere: unit vertices ``(V, 3)``, faces ``(F, 3)``, the neighbours of every vertex."""

    def __init__(self, level: int) -> None:
        phi = (1 + math.sqrt(5)) / 2
        raw = []
        for a, b in itertools.product((-1.0, 1.0), repeat=2):
            raw += [(0.0, a, b * phi), (a, b * phi, 0.0), (b * phi, 0.0, a)]
        v = np.array(raw)

        def adjacent(i: int, j: int) -> bool:  # the edges are 2 long
            return abs(np.linalg.norm(v[i] - v[j]) - 2) < 1e-9

        faces = [
            f
            for f in itertools.combinations(range(12), 3)
            if all(adjacent(i, j) for i, j in itertools.combinations(f, 2))
        ]
        assert len(faces) == 20
        neighbour = next(j for j in range(1, 12) if adjacent(0, j))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        # Turn vertex 0 onto +z and one of its neighbours onto longitude 0.
        north = v[0]
        x = v[neighbour] - (v[neighbour] @ north) * north
        x /= np.linalg.norm(x)
        turn = np.stack([x, np.cross(north, x), north])
        vertices = list(v @ turn.T)
        middle: dict[tuple[int, int], int] = {}  # an edge's midpoint, by its ends (each edge is split once)

        def mid(i: int, j: int) -> int:
            key = (min(i, j), max(i, j))
            if key not in middle:
                m = vertices[i] + vertices[j]
                vertices.append(m / np.linalg.norm(m))
                middle[key] = len(vertices) - 1
            return middle[key]

        for _ in range(level):
            faces = [
                child
                for a, b, c in faces
                for child in (
                    (a, mid(a, b), mid(c, a)),
                    (mid(a, b), b, mid(b, c)),
                    (mid(c, a), mid(b, c), c),
                    (mid(a, b), mid(b, c), mid(c, a)),
                )
            ]
        self.vertices = np.array(vertices)
        self.faces = np.array(faces)
        self.neighbours: list[set[int]] = [set() for _ in vertices]
        for face in faces:
            for i, j in itertools.permutations(face, 2):
                self.neighbours[i].add(j)

    def match(self, vectors: np.ndarray) -> np.ndarray:
        """The mesh vertex of each of ``vectors`` ``(..., 3)``, asserting they coincide to 1e-12."""
        flat = vectors.reshape(-1, 3)
        ids = np.argmax(flat @ self.vertices.T, axis=1)
        np.testing.assert_allclose(self.vertices[ids], flat, rtol=0, atol=1e-12)
        return ids.reshape(vectors.shape[:-1])

    def pole(self, sign: int) -> int:
        return int(np.argmax(sign * self.vertices[:, 2]))


MESHES = {level: Mesh(level) for level in range(5)}


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.einsum("...k,...k->...", a, b))


def _field(lmax: int = 6, seed: int = 0) -> BandLimitedField:
    return BandLimitedField.random(lmax, batch=1, channels=2, generator=torch.Generator().manual_seed(seed))


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


# -- vertices, charts, neighbours -------------------------------------------------------------


@pytest.mark.parametrize("level", range(5))
def test_pixels_are_the_non_polar_vertices_of_the_icosphere_once_each(level: int) -> None:
    mesh = MESHES[level]
    vectors = GRID.vectors(level)
    n = 2**level
    assert vectors.shape == (5, n, 2 * n, 3) and vectors.dtype == np.float64
    ids = mesh.match(vectors).reshape(-1)
    assert len(set(ids.tolist())) == ids.size == 10 * 4**level
    missing = set(range(len(mesh.vertices))) - set(ids.tolist())
    assert missing == {mesh.pole(1), mesh.pole(-1)}
    np.testing.assert_allclose(mesh.vertices[sorted(missing)][:, 2] ** 2, 1.0, rtol=0, atol=1e-15)
    colat, lon = GRID.centres(level)
    np.testing.assert_allclose(GRID.vectors(level)[..., 2], np.cos(colat), rtol=0, atol=1e-15)
    assert colat.shape == lon.shape == (5, n, 2 * n) and (lon >= 0).all() and (lon < 2 * np.pi).all()


@pytest.mark.parametrize("level", range(4))
def test_chart_corners_are_the_icosahedron_as_documented(level: int) -> None:
    # U_k at pixel (n - 1, 0), L_k at (n - 1, n): colatitude arctan 2 and its supplement, longitudes 72 k and 72 k + 36.
    n = 2**level
    colat, lon = GRID.centres(level)
    k = np.arange(5)
    np.testing.assert_allclose(colat[:, n - 1, 0], math.atan(2), atol=1e-14)
    np.testing.assert_allclose(colat[:, n - 1, n], math.pi - math.atan(2), atol=1e-14)
    np.testing.assert_allclose(lon[:, n - 1, 0], np.radians(72 * k), atol=1e-14)
    np.testing.assert_allclose(lon[:, n - 1, n], np.radians(72 * k + 36), atol=1e-14)
    # Pixel (0, 0) is next to the north pole, (n - 1, 2n - 1) next to the south pole.
    edge = _angle(MESHES[level].vertices[0], MESHES[level].vertices[MESHES[level].faces[0][1]])
    np.testing.assert_allclose(colat[:, 0, 0], edge, rtol=1e-12)
    np.testing.assert_allclose(np.pi - colat[:, n - 1, 2 * n - 1], edge, rtol=1e-12)


@pytest.mark.parametrize("level", range(1, 5))
def test_hex_offsets_are_mesh_edges_and_the_masked_diagonal_is_not(level: int) -> None:
    mesh, vectors = MESHES[level], GRID.vectors(level)
    ids = mesh.match(vectors)
    n = 2**level
    edge_angles = [
        _angle(mesh.vertices[i], mesh.vertices[j]) for i in range(len(mesh.vertices)) for j in mesh.neighbours[i]
    ]
    shortest, longest = min(edge_angles), max(edge_angles)
    for di, dj in [*icosahedral.HEX_OFFSETS, (-1, -1), (1, 1)]:
        i, j = np.meshgrid(
            np.arange(max(0, -di), n - max(0, di)), np.arange(max(0, -dj), 2 * n - max(0, dj)), indexing="ij"
        )
        here, there = ids[:, i, j].reshape(-1), ids[:, i + di, j + dj].reshape(-1)
        adjacent = np.array([b in mesh.neighbours[a] for a, b in zip(here, there, strict=True)])
        angle = _angle(vectors[:, i, j], vectors[:, i + di, j + dj])
        if (di, dj) in icosahedral.HEX_OFFSETS:
            assert adjacent.all(), (di, dj)
            assert shortest - 1e-12 <= angle.min() and angle.max() <= longest + 1e-12
        else:  # two edges apart, about sqrt(3) edges away
            assert not adjacent.any(), (di, dj)
            assert angle.min() > 1.4 * shortest
    assert GRID.hex_mask.tolist() == [[False, True, True], [True, True, True], [True, True, False]]


@pytest.mark.parametrize("level", range(1, 4))
def test_charts_are_seen_from_outside_with_columns_running_south(level: int) -> None:
    # As on equirect (columns east, rows south): (right x down) . v < 0, nowhere mirrored.
    v = GRID.vectors(level)
    right, down = v[:, :-1, 1:] - v[:, :-1, :-1], v[:, 1:, :-1] - v[:, :-1, :-1]
    assert (np.einsum("...k,...k->...", np.cross(right, down), v[:, :-1, :-1]) < 0).all()
    colat, _ = GRID.centres(level)
    assert (np.diff(colat.mean(axis=(0, 1))) > 0).all()  # column means move south


# -- symmetry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", range(5))
def test_turning_the_pixels_by_72_degrees_is_the_chart_permutation(level: int) -> None:
    v = GRID.vectors(level)
    for steps in range(-2, 6):
        turn = rotation_about_z(2 * math.pi * steps / 5).numpy()
        np.testing.assert_allclose(v @ turn.T, np.roll(v, -steps, axis=0), rtol=0, atol=1e-12)  # R v_k = v_{k + steps}
    assert GRID.pole_turns(level) == 5


def test_turn_about_pole_is_the_exact_rotation_of_a_band_limited_field() -> None:
    field = _field(lmax=5)
    x = GRID.sample_field(field, 3)
    for steps in range(-1, 6):
        expected = GRID.sample_field(field.rotate(rotation_about_z(2 * math.pi * steps / 5)), 3)
        torch.testing.assert_close(GRID.turn_about_pole(x, steps), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("hexagonal", [False, True])
def test_a_conv_stack_with_ico_padding_commutes_with_the_turn(hexagonal: bool) -> None:
    torch.manual_seed(0)
    stack = torch.nn.Sequential(
        geoconv.build_op("conv", 2, 4, grid="icosahedral", hexagonal=hexagonal),
        torch.nn.Tanh(),
        geoconv.build_op("conv", 4, 4, grid="icosahedral", stride=2, hexagonal=hexagonal),
        geoconv.build_op("max_pool", 4, grid="icosahedral", kernel_size=3, stride=1, padding=1),
        geoconv.build_op("conv_transpose", 4, 3, grid="icosahedral"),
        geoconv.build_op("conv", 3, 2, grid="icosahedral", kernel_size=5, dilation=1),
    ).double()
    x = torch.randn(GRID.shape(2, 2, 3), dtype=torch.float64)
    y = stack(x)
    assert y.shape == x.shape
    for steps in (1, 2, -1):
        gap = stack(GRID.turn_about_pole(x, steps)) - GRID.turn_about_pole(y, steps)
        assert float(gap.abs().max()) <= 1e-12 * float(y.abs().max())


# -- padding ----------------------------------------------------------------------------------


def _padded_sources(level: int, widths: tuple[int, int, int, int]) -> list[list[list[list[tuple[int, float]]]]]:
    table = GRID.pad_table(level, widths, "ico")
    weight = np.ones(table.index.shape) if table.weight is None else table.weight
    return [
        [
            [
                [(int(p), float(w)) for p, w in zip(table.index[k, i, j], weight[k, i, j], strict=True) if w > 0]
                for j in range(table.target_shape[2])
            ]
            for i in range(table.target_shape[1])
        ]
        for k in range(5)
    ]


@pytest.mark.parametrize("level", range(4))
def test_every_padded_pixel_is_a_mesh_neighbour_of_the_pixels_it_borders(level: int) -> None:
    """Width 1: a plain padded pixel is a mesh neighbour of every chart pixel it touches along a hex offset."""
    mesh, n = MESHES[level], 2**level
    ids = mesh.match(GRID.vectors(level)).reshape(-1)
    north, south = mesh.pole(1), mesh.pole(-1)
    sources = _padded_sources(level, (1, 1, 1, 1))
    averaged = []
    for k, i, j in itertools.product(range(5), range(n + 2), range(2 * n + 2)):
        if 1 <= i <= n and 1 <= j <= 2 * n:
            continue
        taps = sources[k][i][j]
        touching = [
            ids[(k * n + i - 1 + di) * 2 * n + j - 1 + dj]
            for di, dj in icosahedral.HEX_OFFSETS
            if 0 <= i - 1 + di < n and 0 <= j - 1 + dj < 2 * n
        ]
        if len(taps) == 1:
            vertex = ids[taps[0][0]]
        elif sorted(ids[p] for p, _ in taps) == sorted(mesh.neighbours[north]):
            vertex = north  # the pole: the mean of its 5 neighbours, weight 1/5 each
            assert all(w == pytest.approx(0.2, abs=1e-15) for _, w in taps) and (i, j) == (0, 1)
        elif sorted(ids[p] for p, _ in taps) == sorted(mesh.neighbours[south]):
            vertex = south
            assert (i, j) == (n, 2 * n + 1)
        else:
            averaged.append((k, i, j, taps, touching))
            continue
        assert all(vertex in mesh.neighbours[q] for q in touching), (k, i, j)
    # The only other padded pixels: the bottom-left corners, beside U_k, each the mean of U_k's two neighbours
    # outside the chart (the two are mesh neighbours of each other and of U_k).
    assert [(k, i, j) for k, i, j, _, _ in averaged] == [(k, n + 1, 0) for k in range(5)]
    for k, _, _, taps, touching in averaged:
        u_k = ids[(k * n + n - 1) * 2 * n]
        pair = [ids[p] for p, _ in taps]
        assert touching == [u_k] and [w for _, w in taps] == [0.5, 0.5]
        assert all(p in mesh.neighbours[u_k] for p in pair) and pair[0] in mesh.neighbours[pair[1]]


@pytest.mark.parametrize(
    ("level", "widths"), [(0, (1, 1, 2, 2)), (1, (2, 2, 4, 4)), (2, (3, 1, 2, 4)), (3, (4, 4, 4, 4))]
)
def test_wide_padding_is_a_piece_of_the_mesh(level: int, widths: tuple[int, int, int, int]) -> None:
    """Lattice neighbours among the plain padded pixels are mesh neighbours (or, beside the 12 vertices, the same)."""
    mesh, n = MESHES[level], 2**level
    ids = mesh.match(GRID.vectors(level)).reshape(-1)
    sources = _padded_sources(level, widths)
    vertex = np.array([[[ids[t[0][0]] if len(t) == 1 else -1 for t in row] for row in chart] for chart in sources])
    top, _, left, _ = widths
    assert (vertex[:, top : top + n, left : left + 2 * n] == ids.reshape(5, n, 2 * n)).all()
    same = 0
    for di, dj in ((1, 0), (0, 1), (-1, 1)):
        rows = vertex.shape[1] - abs(di)
        a = vertex[:, max(0, -di) : max(0, -di) + rows, : vertex.shape[2] - dj]
        b = vertex[:, max(0, di) : max(0, di) + rows, dj:]
        for p, q in zip(a.reshape(-1), b.reshape(-1), strict=True):
            if p >= 0 and q >= 0:
                same += p == q
                assert p == q or q in mesh.neighbours[p]
    assert same <= 5 * 4 * max(1, max(widths))  # duplicates only beside the icosahedron's vertices


@pytest.mark.parametrize("level", [1, 2, 3])
def test_documented_band_maps_at_width_1(level: int) -> None:
    n = 2**level
    table = GRID.pad_table(level, (1, 1, 1, 1), "ico")
    first = table.index[..., 0]

    def pixel(k: int, i: int, j: int) -> int:
        return (k % 5 * n + i) * 2 * n + j

    for k in range(5):
        at = first[k]
        for j in range(n):  # below, t <= n: chart k - 1 shifted, (i - n, j + n)
            assert at[n + 1, j + 1] == pixel(k - 1, 0, j + n)
        for j in range(n + 1, 2 * n):  # below, j > n: chart k - 1 turned about S, (i + j - 2n, 3n - 1 - i)
            assert at[n + 1, j + 1] == pixel(k - 1, j - n, 2 * n - 1)
        for j in range(1, n + 1):  # above, j <= n: chart k + 1 turned about N, (i + j, -1 - i)
            assert at[0, j + 1] == pixel(k + 1, j - 1, 0)
        for j in range(n, 2 * n + 1):  # above, j >= n: chart k + 1 shifted, (i + n, j - n)
            assert at[0, j + 1] == pixel(k + 1, n - 1, j - n)
        for i in range(n):  # left: chart k - 1 turned about N, (-1 - j, i + j + 1)
            assert at[i + 1, 0] == pixel(k - 1, 0, i)
        for i in range(n - 1):  # right: chart k + 1 turned about S, (3n - 1 - j, i + j + 1 - n)
            assert at[i + 1, 2 * n + 1] == pixel(k + 1, n - 1, i + n + 1)
        assert at[0, 0] == pixel(k + 3, 0, 0) and at[n + 1, 2 * n + 1] == pixel(k + 3, n - 1, 2 * n - 1)


@settings(max_examples=25, deadline=None)
@given(level=st.integers(0, 3), data=st.data(), seed=st.integers(0, 2**16))
def test_fast_padding_is_the_reference_gather(level: int, data: st.DataObject, seed: int) -> None:
    n = 2**level
    widths = tuple(data.draw(st.integers(0, limit)) for limit in (n, n, 2 * n, 2 * n))
    x = torch.randn(GRID.shape(2, 3, level), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    with reference_padding():
        expected = GRID.pad(x, widths)
    padded = GRID.pad(x, widths)
    assert torch.equal(padded, expected)
    y = torch.randn(padded.shape, dtype=torch.float64)
    with reference_padding():
        expected_adjoint = GRID.pad_adjoint(y, widths, None, x)
    adjoint = GRID.pad_adjoint(y, widths, None, x)
    torch.testing.assert_close(adjoint, expected_adjoint, rtol=0, atol=1e-12)
    assert abs(float((padded * y).sum() - (x * adjoint).sum())) <= 1e-10
    assert torch.equal(GRID.pad_to_planes(x, widths), GRID.to_planes(padded))


def test_padding_commutes_with_the_turn_and_keeps_constants() -> None:
    x = torch.randn(GRID.shape(1, 2, 2), dtype=torch.float64)
    for widths in ((1, 1, 1, 1), (4, 2, 3, 8)):
        turned_first = GRID.pad(GRID.turn_about_pole(x, 2), widths)
        torch.testing.assert_close(turned_first, torch.roll(GRID.pad(x, widths), 2, dims=2), rtol=0, atol=1e-15)
        ones = GRID.pad(torch.ones_like(x), widths)
        torch.testing.assert_close(ones, torch.ones_like(ones), rtol=0, atol=1e-15)
    small = torch.randn(GRID.shape(1, 1, 1), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: GRID.pad(t, (1, 2, 2, 1)), (small,))


# -- areas and interpolation ------------------------------------------------------------------


def _lhuilier(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Spherical excess from the side lengths (L'Huilier's theorem)."""
    x, y, z = _angle(b, c), _angle(c, a), _angle(a, b)
    s = (x + y + z) / 2
    product = np.tan(s / 2) * np.tan((s - x) / 2) * np.tan((s - y) / 2) * np.tan((s - z) / 2)
    return 4 * np.arctan(np.sqrt(np.clip(product, 0, None)))


@pytest.mark.parametrize("level", range(4))
def test_pixel_areas_are_the_barycentric_dual_areas_with_the_poles_shared(level: int) -> None:
    mesh = MESHES[level]
    share = np.zeros(len(mesh.vertices))
    excess = _lhuilier(*(mesh.vertices[mesh.faces[:, c]] for c in range(3)))
    for c in range(3):
        np.add.at(share, mesh.faces[:, c], excess / 3)
    for pole in (mesh.pole(1), mesh.pole(-1)):
        share[list(mesh.neighbours[pole])] += share[pole] / 5
    areas = GRID.pixel_areas(level)
    np.testing.assert_allclose(areas, share[mesh.match(GRID.vectors(level))], rtol=1e-11)
    assert areas.sum() == pytest.approx(4 * math.pi, rel=1e-13)
    np.testing.assert_allclose(GRID.quadrature_weights(level), areas / (4 * math.pi), rtol=1e-13)


def test_interpolation_is_linear_on_the_mesh_triangle_of_each_point() -> None:
    level, mesh = 2, MESHES[2]
    ids = mesh.match(GRID.vectors(level))
    values = np.random.default_rng(0).normal(size=len(mesh.vertices))
    for pole in (mesh.pole(1), mesh.pole(-1)):  # the policy: a pole is the mean of its 5 neighbours
        values[pole] = values[list(mesh.neighbours[pole])].mean()
    points = np.random.default_rng(1).normal(size=(300, 3))
    points = np.concatenate([points / np.linalg.norm(points, axis=1, keepdims=True), mesh.vertices[:20]])
    expected = []
    for p in points:  # brute force over every face: p = a A + b B + c C with a, b, c >= 0
        for face in mesh.faces:
            coefficients = np.linalg.solve(mesh.vertices[face].T, p)
            if (coefficients >= -1e-12).all():
                expected.append(coefficients @ values[face] / coefficients.sum())
                break
    x = torch.from_numpy(values[ids])[None, None]
    colat, lon = vectors_to_angles(points)
    got = GRID.interpolate(x, colat, lon)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    at_centres = GRID.interpolate(x, *GRID.centres(level))
    torch.testing.assert_close(at_centres, x, rtol=0, atol=1e-12)


# Measured rms of the round trips at r = 2, 3, 4 for the field of _field() (degree <= 6, rms 2.1): via equirect
# (H = 2^(r+2), 3x the pixels) and via HEALPix (nside = 2^r, 1.2x the pixels); second order, ~4x per level.
# Each way (rms at the target's centres): ico -> equirect 0.49, 0.12, 0.028; equirect -> ico 0.18, 0.048, 0.012;
# ico -> HEALPix 0.39, 0.10, 0.026; HEALPix -> ico 0.42, 0.11, 0.029.
ROUND_TRIPS = {
    "equirect": (lambda r: 2 ** (r + 2), (0.43, 0.125, 0.033)),
    "healpix": (lambda r: 2**r, (0.64, 0.19, 0.050)),
}


@pytest.mark.parametrize(
    "middle", list(ROUND_TRIPS), ids=[f"{m}-rms-{'-'.join(map(str, ROUND_TRIPS[m][1]))}" for m in ROUND_TRIPS]
)
def test_round_trips_through_equirect_and_healpix_converge(middle: str) -> None:
    size_of, measured = ROUND_TRIPS[middle]
    field = _field()
    errors, direct = [], []
    for level in (2, 3, 4):
        x = field.sample("icosahedral", level)
        there = convert(x, "icosahedral", middle, size_of(level))
        back = convert(there, middle, "icosahedral", level)
        errors.append(_rms(back - x))
        direct.append(
            (
                _rms(there - field.sample(middle, size_of(level))),
                _rms(convert(field.sample(middle, size_of(level)), middle, "icosahedral", level) - x),
            )
        )
    print(f"round trip icosahedral -> {middle} -> icosahedral, r = 2, 3, 4: rms {errors}; each way {direct}")
    assert all(e <= 1.2 * m for e, m in zip(errors, measured, strict=True)), errors
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3.5, errors
    for coarse, fine in itertools.pairwise(direct):
        assert coarse[0] / fine[0] > 3 and coarse[1] / fine[1] > 3, direct


def test_constants_convert_exactly_and_maps_draw() -> None:
    x = torch.full(GRID.shape(1, 1, 2), 2.5, dtype=torch.float64)
    for target, size in (("equirect", 8), ("healpix", 4), ("cubemap", 4)):
        out = convert(x, "icosahedral", target, size)
        torch.testing.assert_close(out, torch.full_like(out, 2.5), rtol=0, atol=1e-13)
        back = convert(out, target, "icosahedral", 2)
        torch.testing.assert_close(back, x, rtol=0, atol=1e-13)
    assert icosahedral.to_equirect(x, 4).shape == (1, 1, 4, 8)
    assert icosahedral.from_equirect(torch.ones(1, 1, 4, 8), 1).shape == (1, 1, 5, 2, 4)


def test_probes_and_maps_use_the_grids_methods(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = geoconv.build_op("conv", 1, 2, grid="icosahedral").double()
    errors = symmetry_error(net, "icosahedral", 3, generator=torch.Generator().manual_seed(0))
    assert set(errors) == {"roll_1", "roll_quarter", "roll_half", "max"} and errors["max"] < 1e-12
    values = GRID.random_signal(1, 1, 2, generator=torch.Generator().manual_seed(0))[0, 0]
    assert values.shape == (5, 4, 8) and GRID.default_lmax(2) == 2
    path = plot_map(values, "icosahedral", 2, tmp_path / "ico.png", title="icosahedral")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- sizes, layouts, registration -------------------------------------------------------------


def test_sizes_and_faces() -> None:
    assert GRID.shape(2, 3, 0) == (2, 3, 5, 1, 2) and GRID.shape(1, 1, 4) == (1, 1, 5, 16, 32)
    assert GRID.size_of(torch.zeros(GRID.shape(1, 1, 3))) == 3 and GRID.size_label(3) == "r 3"
    assert GRID.signal_shape(2) == (5, 4, 8) and GRID.shape_at(1, 2, [4, 8]) == (1, 2, 5, 4, 8)
    assert GRID.face_problem(8, 16) is None and GRID.face_problem(1, 2) is None
    for face in ((8, 8), (6, 12), (0, 0), (4, 6)):
        assert GRID.face_problem(*face) == "charts n x 2n with n = 2^r a power of two"
    assert GRID.size_for_pixels(640) == 3 and GRID.default_size == 3
    conv = geoconv.build_op("conv", 1, 1, grid="icosahedral", stride=2)
    assert conv(torch.zeros(GRID.shape(1, 1, 3))).shape == GRID.shape(1, 1, 2)
    assert conv(torch.zeros(GRID.shape(1, 1, 1))).shape == GRID.shape(1, 1, 0)  # r = 0: the icosahedron
    with pytest.raises(ShapeError, match=r"output faces 1x1, but an output of shape \(B, C, 5, n, 2n\) needs charts"):
        conv(torch.zeros(GRID.shape(1, 1, 0)))


@pytest.mark.parametrize("size", [-1, 1.5, True, "3"])
def test_a_level_that_is_not_an_integer_r_at_least_0_is_refused(size: object) -> None:
    with pytest.raises(
        ParameterError, match=r"size \(the subdivision level r\) for grid 'icosahedral' must be an integer >= 0, got"
    ):
        GRID.shape(1, 1, size)


@pytest.mark.parametrize("shape", [(2, 3, 6, 4, 8), (2, 3, 5, 4, 4), (2, 3, 5, 3, 6), (2, 3, 5, 4, 9), (2, 0, 5, 4, 8)])
def test_a_tensor_that_is_not_five_charts_n_by_2n_is_refused(shape: tuple[int, ...]) -> None:
    layout = r"\(B, C, 5, n, 2n\) = \(B, C, 5, 2\^r, 2\^\(r\+1\)\)"
    message = rf"x on grid 'icosahedral' must have shape {layout}.*got shape {re_shape(shape)}"
    for check in (GRID.check, geoconv.build_op("conv", 3, 4, grid="icosahedral")):
        with pytest.raises(ShapeError, match=message):
            check(torch.zeros(shape))
    with pytest.raises(
        ShapeError, match=r"must have shape \(B, C, 5, n, 2n\) on grid 'icosahedral' \(5 dims\), got a 4-D"
    ):
        GRID.check(torch.zeros(2, 3, 4, 8))


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


def test_bad_padding_and_interpolation_inputs() -> None:
    x = torch.zeros(GRID.shape(1, 1, 1))
    with pytest.raises(ParameterError, match=r"pad widths .* must be at most the face size 2x4"):
        GRID.pad(x, (3, 0, 0, 0))
    with pytest.raises(ParameterError, match=r"at most the chart size 2x4"):
        GRID.pad_table(1, (0, 0, 5, 0), "ico")
    with pytest.raises(ParameterError, match=r"builds the modes \('ico',\), got 'cube'"):
        GRID.pad_table(1, 1, "cube")
    with pytest.raises(ShapeError, match=r"averages pixels .* needs a floating-point x, got dtype torch.int64"):
        GRID.pad(torch.zeros(GRID.shape(1, 1, 1), dtype=torch.int64), 1)
    with pytest.raises(ShapeError, match="floating-point dtype to be interpolated, got torch.int64"):
        GRID.interpolate(torch.zeros(GRID.shape(1, 1, 1), dtype=torch.int64), 0.5, 0.5)
    with pytest.raises(ParameterError, match="colat and lon must be finite"):
        GRID.interpolate(x, math.nan, 0.0)
    assert GRID.pad(torch.zeros(GRID.shape(1, 1, 1), dtype=torch.int64), (0, 1, 0, 0)).dtype == torch.int64


def test_registered_like_a_plugin_with_a_hydra_node() -> None:
    assert get_grid("icosahedral") is GRID and "icosahedral" in spherical_grids()
    assert GRID.padding_modes == ("ico", "zeros", "constant", "reflect", "replicate", "circular")
    import yaml

    node = yaml.safe_load((ROOT / "conf" / "grid" / "icosahedral.yaml").read_text(encoding="utf-8"))
    assert node == {"name": "icosahedral", "size": GRID.default_size}


def test_the_entry_point_and_an_import_both_register_it(tmp_path: Path) -> None:
    """In fresh interpreters: the entry point geoconv declares (simulated by a dist-info), a plain import, both."""
    dist = tmp_path / "geoconv_ico_entry-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: geoconv-ico-entry\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[geoconv.grids]\nicosahedral = geoconv.grids.icosahedral\n")
    script = textwrap.dedent(
        """
        import importlib, sys
        from geoconv.grids import get_grid, list_grids
        if sys.argv[1] == "import":
            import geoconv.grids.icosahedral
        grid = get_grid("icosahedral")
        assert type(grid).__name__ == "IcosahedralGrid" and "icosahedral" in list_grids()
        module = importlib.reload(importlib.import_module("geoconv.grids.icosahedral"))  # a second import
        assert get_grid("icosahedral") is module.GRID
        print("ok")
        """
    )
    for how, site in (("entry point", True), ("import", False), ("import", True)):
        env = dict(os.environ)
        if site:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-c", script, how.split()[0]], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.stdout.strip() == "ok", (how, site, done.stderr[-2000:])
