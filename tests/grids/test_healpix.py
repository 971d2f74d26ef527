"""The HEALPix grid against healpy: layout, converters, padding, quarter turns, interpolation.

The references are healpy's own functions (``xyf2pix``, ``nest2ring``, ``reorder``,
``get_all_neighbours``, ``ang2pix``, ``pix2ang``, ``get_interp_val``), the HEALPix
projection of Calabretta & Roukema (2007) written out here, closed-form polynomial fields,
and torch.nn.functional.pad.
"""

from __future__ import annotations

import subprocess
import sys

import healpy as hp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import get_grid, healpix
from geoconv.grids.sphere import angles_to_vectors

GRID = healpix.GRID
NSIDES = (1, 2, 4, 8, 16)

# healpy's get_all_neighbours order (SW, W, NW, N, NE, E, SE, S) as offsets (di, dj) in the
# face layout x[..., f, i, j] with healpy x = i, y = j; checked in test_neighbour_offsets.
OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
EDGE_SLOTS = (0, 2, 4, 6)  # SW, NW, NE, SE: the neighbours that share an edge


def _ids(nside: int) -> torch.Tensor:
    """``(1, 1, 12, n, n)`` float64 holding each pixel's NESTED index."""
    return healpix.nest_to_faces(torch.arange(12 * nside * nside, dtype=torch.float64)).view(1, 1, 12, nside, nside)


def _xyf(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(12), np.arange(nside), np.arange(nside), indexing="ij")


# -- layout and converters -------------------------------------------------------------------


@pytest.mark.parametrize("nside", NSIDES)
def test_nest_to_faces_is_xyf2pix(nside: int) -> None:
    f, i, j = _xyf(nside)
    expected = hp.xyf2pix(nside, i, j, f, nest=True)
    assert np.array_equal(healpix.nest_to_faces(torch.arange(12 * nside**2)).numpy(), expected)
    assert np.array_equal(healpix.nest_to_faces(np.arange(12 * nside**2)), expected)


@pytest.mark.parametrize("nside", (2, 4, 8))
def test_stride_two_is_the_nested_hierarchy(nside: int) -> None:
    # The 2x2 block at even (i, j) holds the four children 4p..4p+3 of the coarse pixel p
    # that sits at (i/2, j/2) of the same face at nside/2.
    faces = healpix.nest_to_faces(np.arange(12 * nside**2))
    coarse = healpix.nest_to_faces(np.arange(3 * nside**2))
    for di, dj, child in ((0, 0, 0), (1, 0, 1), (0, 1, 2), (1, 1, 3)):
        assert np.array_equal(faces[:, di::2, dj::2], 4 * coarse + child)


@pytest.mark.parametrize("nside", NSIDES)
def test_ring_converters_against_healpy(nside: int) -> None:
    f, i, j = _xyf(nside)
    ring_of_face_pixel = hp.nest2ring(nside, hp.xyf2pix(nside, i, j, f, nest=True))
    assert np.array_equal(healpix.ring_to_faces(torch.arange(12 * nside**2)).numpy(), ring_of_face_pixel)
    nested = np.random.default_rng(nside).standard_normal(12 * nside**2)
    ring = healpix.faces_to_ring(healpix.nest_to_faces(nested))
    assert np.array_equal(ring, hp.reorder(nested, n2r=True))


@settings(max_examples=25, deadline=None)
@given(
    power=st.integers(0, 4),
    lead=st.lists(st.integers(1, 3), max_size=2),
    use_numpy=st.booleans(),
    dtype=st.sampled_from(["float32", "float64", "int64"]),
)
def test_round_trips(power: int, lead: list[int], use_numpy: bool, dtype: str) -> None:
    nside = 2**power
    x = np.random.default_rng(power).standard_normal((*lead, 12 * nside**2)) * 100
    x = x.astype(dtype)
    if not use_numpy:
        x = torch.from_numpy(x)
    for to_faces, from_faces in (
        (healpix.nest_to_faces, healpix.faces_to_nest),
        (healpix.ring_to_faces, healpix.faces_to_ring),
    ):
        faces = to_faces(x)
        assert type(faces) is type(x) and tuple(faces.shape) == (*lead, 12, nside, nside)
        back = from_faces(faces)
        assert back.dtype == x.dtype
        assert (back == x).all()
    # The numpy and the torch paths agree.
    other = x.numpy() if isinstance(x, torch.Tensor) else torch.from_numpy(x)
    assert np.array_equal(np.asarray(healpix.ring_to_faces(other)), np.asarray(healpix.ring_to_faces(x)))


def test_centres_are_pix2ang() -> None:
    nside = 4
    colat, lon = GRID.centres(nside)
    f, i, j = _xyf(nside)
    expected = hp.pix2ang(nside, hp.xyf2pix(nside, i, j, f, nest=True), nest=True)
    assert colat.shape == lon.shape == (12, nside, nside)
    assert np.array_equal(colat, expected[0]) and np.array_equal(lon, expected[1])
    vectors = GRID.vectors(nside)
    assert np.allclose(vectors, np.stack(hp.pix2vec(nside, hp.xyf2pix(nside, i, j, f, nest=True), nest=True), -1))


def test_shape_and_size() -> None:
    assert GRID.shape(2, 3, 8) == (2, 3, 12, 8, 8)
    x = torch.zeros(GRID.shape(2, 3, 8))
    assert GRID.check(x) is x and GRID.size_of(x) == 8
    assert GRID.faces == 12 and GRID.padding_modes[0] == "healpix" and GRID.default_padding_mode == "healpix"
    assert get_grid("healpix") is GRID


# -- padding: healpy's neighbours --------------------------------------------------------------


@pytest.mark.parametrize("nside", (4, 8))
def test_neighbour_offsets(nside: int) -> None:
    # Away from the face borders, healpy's eight neighbours are xyf2pix at the OFFSETS.
    f, i, j = (a[:, 1:-1, 1:-1].ravel() for a in _xyf(nside))
    neighbours = hp.get_all_neighbours(nside, hp.xyf2pix(nside, i, j, f, nest=True), nest=True)
    for slot, (di, dj) in enumerate(OFFSETS):
        assert np.array_equal(neighbours[slot], hp.xyf2pix(nside, i + di, j + dj, f, nest=True))


def _ring_of_eight(padded: np.ndarray, nside: int) -> np.ndarray:
    """``(8, 12 n²)``: the padded values around every pixel, in healpy's neighbour order."""
    return np.stack([padded[:, 1 + di : 1 + di + nside, 1 + dj : 1 + dj + nside].ravel() for di, dj in OFFSETS])


@pytest.mark.parametrize("ordering", ["nest", "ring"])
@pytest.mark.parametrize("nside", NSIDES)
def test_pad_one_gives_healpy_neighbours(nside: int, ordering: str) -> None:
    npix = 12 * nside**2
    to_faces = healpix.nest_to_faces if ordering == "nest" else healpix.ring_to_faces
    faces = to_faces(torch.arange(npix, dtype=torch.float64))  # each pixel's index in `ordering`
    padded = healpix.pad(faces.view(1, 1, 12, nside, nside), 1)[0, 0].numpy()
    around = _ring_of_eight(padded, nside)
    expected = hp.get_all_neighbours(nside, faces.numpy().astype(np.int64).ravel(), nest=ordering == "nest")
    missing = expected < 0
    # 8 vertices where three faces meet, each seen from 3 faces: 24 missing neighbours.
    assert missing.sum() == 24
    assert np.array_equal(around[~missing], expected[~missing])
    # The policy: a missing (diagonal) neighbour is the mean of the two on either side of it.
    slots, pixels = np.nonzero(missing)
    beside = 0.5 * (expected[(slots - 1) % 8, pixels] + expected[(slots + 1) % 8, pixels])
    assert np.array_equal(around[slots, pixels], beside)


@pytest.mark.parametrize("nside", (2, 4))
def test_missing_neighbours_sit_at_three_face_vertices(nside: int) -> None:
    # As the module says: the N and S corners of the equatorial faces, the E and W corners
    # of the polar faces.
    n = nside
    faces = healpix.nest_to_faces(np.arange(12 * n * n))
    lonely = set(np.nonzero((hp.get_all_neighbours(n, np.arange(12 * n * n), nest=True) < 0).any(0))[0].tolist())
    corners = {"E": (n - 1, 0), "W": (0, n - 1), "N": (n - 1, n - 1), "S": (0, 0)}
    expected = set()
    for f in range(12):
        for name in ("N", "S") if 4 <= f < 8 else ("E", "W"):
            expected.add(int(faces[f][corners[name]]))
    assert lonely == expected


def _straight(nside: int, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """The pixel after ``cur`` on the lattice line ``prev -> cur``, from healpy's neighbours alone.

    On a square lattice it is the one edge-neighbour of ``cur`` that is neither ``prev`` nor
    any neighbour of ``prev``.
    """
    around_cur = hp.get_all_neighbours(nside, cur, nest=True)[list(EDGE_SLOTS)]
    around_prev = hp.get_all_neighbours(nside, prev, nest=True)
    ok = (around_cur >= 0) & (around_cur != prev) & ~(around_cur[:, None, :] == around_prev[None]).any(1)
    assert (ok.sum(0) == 1).all(), "the straight continuation is not unique"
    return around_cur[ok.argmax(0), np.arange(cur.size)]


def _walked_padding(nside: int) -> np.ndarray:
    """``(2, 12, 3n, 3n)`` NESTED indices of a width-``n`` padding, walked on healpy's graph.

    Every band continues the face's rows or columns straight across the edge. A corner
    block continues the rows of the top/bottom band sideways (slot 0) and the columns of
    the left/right band (slot 1): the two agree where four faces meet.
    """
    n = w = nside
    ref = np.full((2, 12, 3 * n, 3 * n), -1, dtype=np.int64)
    ref[:, :, w : w + n, w : w + n] = healpix.nest_to_faces(np.arange(12 * n * n))

    def extend(slot: int, rows: object, cols: object, step: tuple[int, int]) -> None:
        rows, cols = np.broadcast_arrays(rows, cols)
        prev, cur = ref[0][:, rows - step[0], cols - step[1]], ref[0][:, rows, cols]
        shape = cur.shape
        prev, cur = prev.ravel(), cur.ravel()
        for s in range(1, w + 1):
            prev, cur = cur, _straight(nside, prev, cur)
            ref[slot][:, rows + s * step[0], cols + s * step[1]] = cur.reshape(shape)

    inner, first, last = np.arange(w, w + n), w, w + n - 1
    for slot in (0, 1):
        extend(slot, last, inner, (1, 0))
        extend(slot, first, inner, (-1, 0))
        extend(slot, inner, last, (0, 1))
        extend(slot, inner, first, (0, -1))
    before, after = np.arange(0, w), np.arange(w + n, 3 * n)
    for rows, edge_row, di in ((before, first, -1), (after, last, 1)):
        for cols, edge_col, dj in ((before, first, -1), (after, last, 1)):
            extend(0, rows[:, None], edge_col, (0, dj))
            extend(1, edge_row, cols[None, :], (di, 0))
    return ref


@pytest.mark.parametrize("nside", (2, 4, 8, 16))
def test_full_width_padding_walks_healpy_lattice(nside: int) -> None:
    ref = _walked_padding(nside)
    assert (ref >= 0).all()
    # The two corner continuations differ exactly in the corner blocks at the 24
    # (face, three-face vertex) pairs, everywhere in those n x n blocks.
    assert (ref[0] != ref[1]).sum() == 24 * nside**2
    values = np.random.default_rng(0).standard_normal(12 * nside**2)
    padded = healpix.pad(torch.from_numpy(healpix.nest_to_faces(values)).view(1, 1, 12, nside, nside), nside)
    expected = 0.5 * (values[ref[0]] + values[ref[1]])
    assert np.array_equal(padded[0, 0].numpy(), expected)


def _healpix_projection(colat: np.ndarray, lon: np.ndarray, nside: int) -> np.ndarray:
    """The HEALPix projection (Calabretta & Roukema 2007), in units of pi / (4 nside).

    Pixel centres land on a square lattice (rotated 45°) of spacing 1 in each face; the
    image is continuous except across the edges between two polar faces.
    """
    z = np.cos(colat)
    x, y = lon.copy(), 3 * np.pi / 8 * z
    polar = np.abs(z) > 2 / 3
    sigma = np.sqrt(3 * (1 - np.abs(z[polar])))
    centre = np.pi / 4 + np.pi / 2 * np.floor(lon[polar] / (np.pi / 2))
    x[polar] = centre + (lon[polar] - centre) * sigma
    y[polar] = np.sign(z[polar]) * np.pi / 4 * (2 - sigma)
    return np.stack([x, y], -1) * (4 * nside / np.pi)


def _in_projection_image(p: np.ndarray, nside: int) -> np.ndarray:
    """Inside the projection's image: the belt |y| <= n or one of the 8 polar triangles."""
    u, v = np.mod(p[..., 0], 8 * nside), np.abs(p[..., 1])
    to_polar_column = nside - np.abs(np.mod(u - nside, 2 * nside) - nside)
    return (v <= nside) | (to_polar_column + (v - nside) <= nside)


def _polar_chart(colat: np.ndarray, lon: np.ndarray, nside: int, sign: int) -> np.ndarray:
    """A flat chart of a polar cap: ring r (r = n sqrt(3 (1 - |z|))) on the square |X| + |Y| = r.

    Longitude is linear along each quarter of the square; polar pixel centres land on a
    square lattice, continuous across the edges between polar faces.
    """
    r = nside * np.sqrt(np.clip(3 * (1 - sign * np.cos(colat)), 0, None))
    quarter = np.floor(lon / (np.pi / 2))
    t = lon / (np.pi / 2) - quarter
    a, b = quarter * np.pi / 2, (quarter + 1) * np.pi / 2
    corner_a, corner_b = np.stack([np.cos(a), np.sin(a)], -1), np.stack([np.cos(b), np.sin(b)], -1)
    return r[..., None] * ((1 - t)[..., None] * corner_a + t[..., None] * corner_b)


@pytest.mark.parametrize("nside", (2, 4, 8))
def test_padded_centres_extend_the_face_lattice(nside: int) -> None:
    """Where a chart is continuous, every padded pixel's centre is the face lattice extended.

    Per face and chart, an affine map (i, j) -> chart is fitted to the face's own pixel
    centres (exact: residual < 1e-9); every padded position whose extrapolated point lies
    where the chart is continuous must hold the pixel whose centre (healpy pix2ang) is
    exactly there. Checked: 264 of 288 (nside 2), 1008 of 1152 (4), 3936 of 4608 (8)
    single-source padded pixels; the rest lie beyond polar-polar edges near a
    three-face vertex, where no chart is flat (the walk test covers them).
    """
    n = w = nside
    colat, lon = hp.pix2ang(n, np.arange(12 * n * n), nest=True)
    table = GRID.pad_table(n, (w, w, w, w), "healpix")
    single = table.index[..., 0] == table.index[..., -1]
    pixel = healpix.nest_to_faces(np.arange(12 * n * n)).reshape(-1)[table.index[..., 0]]
    i, j = np.meshgrid(np.arange(-w, n + w), np.arange(-w, n + w), indexing="ij")
    extended = np.stack([i.ravel(), j.ravel(), np.ones(i.size)], -1)
    own_ij = extended.reshape(n + 2 * w, n + 2 * w, 3)[w : w + n, w : w + n].reshape(-1, 3)
    checked = np.zeros(table.target_shape, dtype=bool)
    for f in range(12):
        own = healpix.nest_to_faces(np.arange(12 * n * n))[f].ravel()
        there = pixel[f].ravel()
        for chart in ("projection", "north", "south"):
            if chart == "projection":
                mine, theirs = (
                    _healpix_projection(colat[own], lon[own], n),
                    _healpix_projection(colat[there], lon[there], n),
                )
                domain = np.ones(n * n, dtype=bool)
            else:
                sign = 1 if chart == "north" else -1
                mine, theirs = (
                    _polar_chart(colat[own], lon[own], n, sign),
                    _polar_chart(colat[there], lon[there], n, sign),
                )
                domain = sign * np.cos(colat[own]) >= 2 / 3 - 1e-12
            if np.linalg.matrix_rank(own_ij[domain]) < 3:
                continue
            if chart == "projection":  # unwrap longitude around the face (face 4 straddles 0°)
                mine[:, 0] = mine[0, 0] + np.mod(mine[:, 0] - mine[0, 0] + 4 * n, 8 * n) - 4 * n
            coef = np.linalg.lstsq(own_ij[domain], mine[domain], rcond=None)[0]
            assert np.abs(own_ij[domain] @ coef - mine[domain]).max() < 1e-9
            predicted = extended @ coef
            diff = predicted - theirs
            if chart == "projection":
                trusted = _in_projection_image(predicted, n)
                diff[:, 0] = np.mod(diff[:, 0] + 4 * n, 8 * n) - 4 * n
            else:
                trusted = np.abs(predicted).sum(-1) <= n + 1e-9
            trusted &= single[f].ravel()
            assert np.abs(diff[trusted]).max() < 1e-9, (f, chart)
            checked[f].reshape(-1)[trusted] = True
    border = np.ones(table.target_shape, dtype=bool)
    border[:, w : w + n, w : w + n] = False
    assert (checked & border).sum() >= 0.8 * (single & border).sum()


@settings(max_examples=30, deadline=None)
@given(power=st.integers(0, 3), data=st.data())
def test_narrower_padding_is_a_crop(power: int, data: st.DataObject) -> None:
    nside = 2**power
    wide = data.draw(st.tuples(*[st.integers(0, nside)] * 4), label="wide")
    narrow = tuple(data.draw(st.integers(0, w), label="narrow") for w in wide)
    x = torch.randn(1, 2, 12, nside, nside, dtype=torch.float64)
    big = healpix.pad(x, wide)
    (top, bottom, left, right), (n_top, n_bottom, n_left, n_right) = wide, narrow
    crop = big[..., top - n_top : top + nside + n_bottom, left - n_left : left + nside + n_right]
    assert torch.equal(crop, healpix.pad(x, narrow))
    assert big.shape[-2:] == (nside + top + bottom, nside + left + right)


def test_padding_by_w_cropped_to_one_is_padding_by_one() -> None:
    x = torch.randn(2, 1, 12, 8, 8, dtype=torch.float64)
    one = healpix.pad(x, 1)
    for w in range(2, 9):
        assert torch.equal(healpix.pad(x, w)[..., w - 1 : w + 9, w - 1 : w + 9], one)


def test_table_has_one_tap_without_corner_blocks() -> None:
    assert GRID.pad_table(4, (2, 1, 0, 0), "healpix").weight is None
    assert GRID.pad_table(4, (0, 0, 3, 4), "healpix").weight is None
    table = GRID.pad_table(4, (1, 0, 0, 1), "healpix")
    assert table.index.shape == (12, 5, 5, 2) and np.all(table.weight == 0.5)
    x = torch.arange(12 * 16).view(1, 1, 12, 4, 4)  # integers are fine without corner blocks
    assert torch.equal(healpix.pad(x, (1, 1, 0, 0)), healpix.pad(x.double(), (1, 1, 0, 0)).long())
    assert healpix.pad(x, 0) is x


@settings(max_examples=20, deadline=None)
@given(power=st.integers(0, 3), data=st.data())
def test_autograd_is_the_adjoint(power: int, data: st.DataObject) -> None:
    nside = 2**power
    widths = data.draw(st.tuples(*[st.integers(0, nside)] * 4), label="widths")
    x = torch.randn(2, 3, 12, nside, nside, dtype=torch.float64, requires_grad=True)
    y = healpix.pad(x, widths)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    adjoint = GRID.pad_adjoint(g, widths, "healpix", x)
    assert torch.allclose(x.grad, adjoint, rtol=1e-12, atol=1e-12)
    lhs, rhs = (y * g).sum().item(), (x.detach() * adjoint).sum().item()
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("mode", ["zeros", "constant", "reflect", "replicate", "circular"])
def test_planar_modes_pad_each_face(mode: str) -> None:
    x = torch.randn(2, 3, 12, 4, 4, dtype=torch.float64)
    widths = (1, 2, 3, 0)
    out = healpix.pad(x, widths, mode, value=0.25)
    top, bottom, left, right = widths
    for f in range(12):
        face = x[:, :, f]
        if mode in ("zeros", "constant"):
            expected = F.pad(face, (left, right, top, bottom), value=0.25 if mode == "constant" else 0.0)
        else:
            expected = F.pad(face, (left, right, top, bottom), mode=mode)
        assert torch.equal(out[:, :, f], expected)


# -- the quarter turn ------------------------------------------------------------------------


@pytest.mark.parametrize("nside", (1, 2, 4, 8))
@pytest.mark.parametrize("k", [-1, 1, 2, 3, 4])
def test_quarter_turn_matches_healpy(nside: int, k: int) -> None:
    # (R x)(v) = x(R^T v): the pixel at (colat, lon + k 90°) takes the value of the pixel at (colat, lon).
    npix = 12 * nside**2
    turned = healpix.faces_to_nest(GRID.quarter_turn(_ids(nside), k))[0, 0].numpy()
    colat, lon = hp.pix2ang(nside, np.arange(npix), nest=True)
    target = hp.ang2pix(nside, colat, lon + k * np.pi / 2, nest=True)
    assert np.array_equal(turned[target], np.arange(npix))


@settings(max_examples=15, deadline=None)
@given(power=st.integers(0, 3), k=st.integers(-3, 3), data=st.data())
def test_padding_commutes_with_quarter_turn(power: int, k: int, data: st.DataObject) -> None:
    nside = 2**power
    widths = data.draw(st.tuples(*[st.integers(0, nside)] * 4), label="widths")
    x = torch.randn(1, 2, 12, nside, nside, dtype=torch.float64)

    def turn_faces(t: torch.Tensor) -> torch.Tensor:  # the same face permutation, any face size
        return torch.roll(t.unflatten(2, (3, 4)), k, dims=3).flatten(2, 3)

    assert torch.equal(healpix.pad(GRID.quarter_turn(x, k), widths), turn_faces(healpix.pad(x, widths)))


# -- interpolation and equirect --------------------------------------------------------------


def test_interpolate_matches_healpy() -> None:
    nside = 8
    values = np.random.default_rng(1).standard_normal(12 * nside**2)
    x = torch.from_numpy(healpix.nest_to_faces(values)).view(1, 1, 12, nside, nside)
    rng = np.random.default_rng(2)
    colat, lon = np.arccos(rng.uniform(-1, 1, (20, 25))), rng.uniform(-np.pi, 3 * np.pi, (20, 25))
    out = GRID.interpolate(x, colat, lon)
    assert out.shape == (1, 1, 20, 25)
    assert np.allclose(out[0, 0].numpy(), hp.get_interp_val(values, colat, lon, nest=True), rtol=0, atol=1e-13)
    # At the pixel centres the pixel values come back (up to round-off).
    centres = GRID.interpolate(x, *GRID.centres(nside))
    assert torch.allclose(centres, x.view(1, 1, 12, nside, nside), rtol=0, atol=1e-12)


def _field(colat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(2, *shape)``: two polynomials of degree <= 3 in (x, y, z), band-limited at l = 3."""
    x, y, z = np.moveaxis(angles_to_vectors(*np.broadcast_arrays(colat, lon)), -1, 0)
    return np.stack([0.3 + x - 0.5 * y * z + 0.8 * z * z, x * y - 0.4 * z + 0.6 * x * y * z + z**3])


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_to_equirect_converges() -> None:
    colat = (np.arange(24) + 0.5)[:, None] * np.pi / 24
    lon = np.arange(48)[None, :] * 2 * np.pi / 48
    exact = _field(colat, lon)
    errors = []
    for nside in (16, 32, 64):
        x = torch.from_numpy(_field(*GRID.centres(nside)))[None]
        y = healpix.to_equirect(x, 24, 48)
        assert y.shape == (1, 2, 24, 48)
        errors.append(_rms(y[0].numpy(), exact))
    # Measured rms: 1.79e-3, 4.36e-4, 1.09e-4: second order, ratio ~4 per doubling.
    assert errors[0] < 2.5e-3 and errors[-1] < 1.5e-4
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5


def test_from_equirect_converges() -> None:
    nside = 16
    exact = _field(*GRID.centres(nside))
    equirect = get_grid("equirect")
    errors = []
    for height in (32, 64, 128):
        x = torch.from_numpy(_field(*equirect.centres(height)))[None]
        y = healpix.from_equirect(x, nside)
        assert y.shape == (1, 2, 12, nside, nside)
        errors.append(_rms(y[0].numpy(), exact))
    # Measured rms: 1.60e-3, 3.45e-4, 7.39e-5.
    assert errors[0] < 2.5e-3 and errors[-1] < 1e-4
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5


def test_equirect_round_trip_converges() -> None:
    equirect = get_grid("equirect")
    errors = []
    for height in (16, 32, 64):
        start = _field(*equirect.centres(height))
        back = healpix.to_equirect(healpix.from_equirect(torch.from_numpy(start)[None], height // 2), height)
        errors.append(_rms(back[0].numpy(), start))
    # Measured rms (equirect H -> HEALPix nside H/2 -> equirect H): 8.43e-3, 2.55e-3, 7.62e-4.
    assert errors[-1] < 1e-3
    assert errors[0] / errors[1] > 2.8 and errors[1] / errors[2] > 2.8


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 12, 4), (2, 3, 11, 4, 4), (2, 3, 12, 3, 3), (2, 3, 12, 4, 2), (2, 0, 12, 4, 4), (1, 1, 12, 6, 6)],
)
def test_check_refuses_wrong_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\(B, C, 12, n, n\)") as info:
        GRID.check(torch.zeros(shape))
    assert str(shape) in str(info.value)
    with pytest.raises(ShapeError):
        healpix.pad(torch.zeros(shape), 1)


@pytest.mark.parametrize("length", [0, 11, 50, 108, 12 * 36])
def test_flat_maps_need_twelve_nside_squared(length: int) -> None:
    for convert in (healpix.nest_to_faces, healpix.ring_to_faces):
        with pytest.raises(ShapeError, match=r"12 \* nside\*\*2") as info:
            convert(torch.zeros(2, length))
        assert f"(2, {length})" in str(info.value)


def test_faces_converters_refuse_wrong_shapes() -> None:
    for convert in (healpix.faces_to_nest, healpix.faces_to_ring):
        with pytest.raises(ShapeError, match=r"\(\.\.\., 12, n, n\).*\(12, 3, 3\)"):
            convert(torch.zeros(12, 3, 3))
        with pytest.raises(ShapeError, match="numpy.ndarray"):
            convert([[0.0] * 12])


def test_bad_parameters() -> None:
    x = torch.zeros(GRID.shape(1, 1, 4))
    with pytest.raises(ParameterError, match="at most the face size"):
        healpix.pad(x, (0, 5, 0, 0))
    with pytest.raises(ParameterError, match="at most the face size nside=4"):
        GRID.pad_table(4, (5, 0, 0, 0), "healpix")
    with pytest.raises(UnknownNameError, match="healpix"):
        healpix.pad(x, 1, "healpx")
    with pytest.raises(ParameterError, match="power of two.*got 3"):
        GRID.shape(1, 1, 3)
    with pytest.raises(ParameterError, match="power of two.*got 6"):
        healpix.from_equirect(torch.zeros(1, 1, 8, 16), 6)
    with pytest.raises(ParameterError, match="even"):
        healpix.to_equirect(x, 8, 15)
    with pytest.raises(ParameterError, match=r"colat must lie in \[0, pi\]"):
        GRID.interpolate(x, 4.0, 0.0)
    with pytest.raises(ShapeError, match="floating-point"):
        GRID.interpolate(x.long(), 1.0, 0.0)
    with pytest.raises(ShapeError, match="floating-point x, got dtype torch.int64"):
        healpix.pad(x.long(), 1)
    for error in (ParameterError, ShapeError, UnknownNameError):
        assert issubclass(error, GeoconvError)


def test_healpy_is_not_imported_with_the_grid() -> None:
    code = "import sys, geoconv, geoconv.grids.healpix; print('healpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
