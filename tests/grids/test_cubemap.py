"""The cube map against independent references.

References: the face frames and edge adjacencies transcribed by hand from the documented
sketch (not from the code), pixel geometry computed here, torch.nn.functional.pad,
float64 adjoint identities, exact symmetries, and polynomials evaluated exactly at the
sample points.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import cubemap, get_grid, list_grids
from geoconv.grids._gather import gather, gather_adjoint
from geoconv.grids.cubemap import GRID
from geoconv.grids.sphere import angles_to_vectors, vectors_to_angles

# The documented face table: centre n, right e (columns), down d (rows).
FRAMES = {
    0: ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
    1: ((0, 1, 0), (-1, 0, 0), (0, 0, -1)),
    2: ((-1, 0, 0), (0, -1, 0), (0, 0, -1)),
    3: ((0, -1, 0), (1, 0, 0), (0, 0, -1)),
    4: ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    5: ((0, 0, -1), (0, 1, 0), (-1, 0, 0)),
}

# Which side of which face lies across each side of each face, read off the unfolded cube:
# face 4 above face 0, face 5 below it, faces 0 1 2 3 left to right around the equator.
ADJACENT = {
    (0, "top"): (4, "bottom"), (0, "bottom"): (5, "top"), (0, "left"): (3, "right"), (0, "right"): (1, "left"),
    (1, "top"): (4, "right"), (1, "bottom"): (5, "right"), (1, "left"): (0, "right"), (1, "right"): (2, "left"),
    (2, "top"): (4, "top"), (2, "bottom"): (5, "bottom"), (2, "left"): (1, "right"), (2, "right"): (3, "left"),
    (3, "top"): (4, "left"), (3, "bottom"): (5, "left"), (3, "left"): (2, "right"), (3, "right"): (0, "left"),
    (4, "top"): (2, "top"), (4, "bottom"): (0, "top"), (4, "left"): (3, "top"), (4, "right"): (1, "top"),
    (5, "top"): (0, "bottom"), (5, "bottom"): (2, "bottom"), (5, "left"): (3, "bottom"), (5, "right"): (1, "bottom"),
}  # fmt: skip
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}
# torch.rot90(k=1) turns an image counter-clockwise: top -> left -> bottom -> right -> top.
COUNTER_CLOCKWISE = ("top", "left", "bottom", "right")


def index_map(size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A cube map whose every pixel holds its own flat index: exact equalities name pixels."""
    return torch.arange(6 * size * size, dtype=dtype).view(1, 1, 6, size, size)


def gnomonic(size: int, width: int = 0) -> np.ndarray:
    """Unit vectors ``(6, F + 2w, F + 2w, 3)`` of the face grids extended by ``width`` in their planes."""
    offsets = (2 * np.arange(-width, size + width) + 1) / size - 1
    faces = []
    for face in range(6):
        n, e, d = (np.array(v, dtype=np.float64) for v in FRAMES[face])
        points = n + offsets[None, :, None] * e + offsets[:, None, None] * d
        faces.append(points / np.linalg.norm(points, axis=-1, keepdims=True))
    return np.stack(faces)


def angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), (u * v).sum(-1))


def pixel_size(size: int) -> float:
    return float(np.sqrt(4 * np.pi / (6 * size * size)))


# -- layout and geometry ----------------------------------------------------------------


def test_registered_and_shapes() -> None:
    assert "cubemap" in list_grids()
    assert get_grid("cubemap") is GRID
    assert GRID.shape(2, 3, 5) == (2, 3, 6, 5, 5)
    assert GRID.size_of(torch.zeros(GRID.shape(1, 1, 7))) == 7
    assert GRID.padding_modes[0] == GRID.default_padding_mode == "cube"
    assert set(GRID.padding_modes) >= {"cube", "zeros", "constant", "reflect", "replicate", "circular"}


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_centres_follow_the_documented_frames(size: int) -> None:
    vectors = GRID.vectors(size)
    np.testing.assert_allclose(vectors, gnomonic(size), atol=1e-15)
    np.testing.assert_allclose(angles_to_vectors(*GRID.centres(size)), vectors, atol=1e-15)


def test_centres_by_hand() -> None:
    # F = 2, face 0, pixel (0, 0): a = b = -1/2, so (1, -1/2, +1/2) normalised.
    np.testing.assert_allclose(GRID.vectors(2)[0, 0, 0], np.array([1.0, -0.5, 0.5]) / np.sqrt(1.5), atol=1e-15)
    colat, lon = GRID.centres(3)  # odd F: the middle pixel is the face centre
    np.testing.assert_allclose(colat[:4, 1, 1], np.pi / 2, atol=1e-15)
    np.testing.assert_allclose(lon[:4, 1, 1], np.arange(4) * np.pi / 2, atol=1e-15)
    np.testing.assert_allclose(colat[4:, 1, 1], [0.0, np.pi], atol=1e-15)


@pytest.mark.parametrize("size", [2, 3, 6])
def test_orientation_geometry(size: int) -> None:
    colat, lon = GRID.centres(size)
    vectors = GRID.vectors(size)
    for face in range(4):  # upright: colatitude grows down the rows, longitude along the columns
        assert (np.diff(colat[face], axis=0) > 0).all()
        east = np.unwrap(lon[face] - face * np.pi / 2, axis=1)
        assert (np.diff(east, axis=1) > 0).all()
    for face in range(6):  # same handedness everywhere: e x d = -n, seen from outside
        right = vectors[face, 0, 1] - vectors[face, 0, 0]
        down = vectors[face, 1, 0] - vectors[face, 0, 0]
        assert np.dot(np.cross(right, down), vectors[face].mean(axis=(0, 1))) < 0
    # The polar faces line up with face 0: face 4's bottom row touches face 0's top row,
    # face 5's top row its bottom row, column for column.
    for row_0, polar, row_polar in ((0, 4, size - 1), (size - 1, 5, 0)):
        for col in range(size):
            nearest = np.argmin(angle(vectors[polar].reshape(-1, 3), vectors[0, row_0, col]))
            assert nearest == row_polar * size + col
    # Every pixel lies on its own face: its largest coordinate is the face's axis.
    for face in range(6):
        normal = np.array(FRAMES[face][0])
        assert ((vectors[face] @ normal)[..., None] >= np.abs(vectors[face]) - 1e-15).all()


# -- quarter turns ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 5])
def test_quarter_turn_matches_geometry(size: int, k: int) -> None:
    turn = k * np.pi / 2
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    centres = GRID.vectors(size).reshape(-1, 3)
    # (R x)(v) = x(R^T v): output pixel p reads the pixel whose centre is R^T centre(p).
    pulled = centres @ rotation  # rows R^T v
    distance = np.linalg.norm(pulled[:, None, :] - centres[None, :, :], axis=-1)
    source = distance.argmin(axis=1)
    assert distance.min(axis=1).max() < 1e-12  # centres map exactly onto centres
    x = index_map(size)
    assert torch.equal(GRID.quarter_turn(x, k).flatten(), x.flatten()[torch.from_numpy(source)])


def test_quarter_turn_group_and_gradient() -> None:
    x = torch.randn(2, 3, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    one = GRID.quarter_turn(x, 1)
    assert torch.equal(GRID.quarter_turn(one, 1), GRID.quarter_turn(x, 2))
    assert torch.equal(GRID.quarter_turn(x, 4), x)
    assert torch.equal(GRID.quarter_turn(x, -1), GRID.quarter_turn(x, 3))
    y = torch.randn_like(x)
    (grad,) = torch.autograd.grad((one * y).sum(), x)
    assert torch.equal(grad, GRID.quarter_turn(y, -1))  # a permutation's adjoint is its inverse


# -- cube padding -----------------------------------------------------------------------


def band(padded: torch.Tensor, face: int, side: str, size: int, width: int) -> torch.Tensor:
    """The padded strip beyond ``side`` of ``face`` (uniform ``width``), shape F x w or w x F."""
    inner = slice(width, width + size)
    strips = {
        "top": (slice(0, width), inner),
        "bottom": (slice(width + size, None), inner),
        "left": (inner, slice(0, width)),
        "right": (inner, slice(width + size, None)),
    }
    return padded[0, 0, face][strips[side]]


def neighbour_strip(x: torch.Tensor, face: int, side: str, size: int, width: int) -> torch.Tensor:
    """The ``width`` rows of the neighbour nearest the shared edge, turned into ``face``'s frame."""
    other, other_side = ADJACENT[(face, side)]
    turns = (COUNTER_CLOCKWISE.index(OPPOSITE[side]) - COUNTER_CLOCKWISE.index(other_side)) % 4
    image = torch.rot90(x[0, 0, other], turns, dims=(0, 1))  # the shared edge now faces this face
    return {"top": image[size - width :], "bottom": image[:width], "left": image[:, size - width :]}.get(
        side, image[:, :width]
    )


def test_adjacency_table_is_consistent() -> None:
    for (face, side), (other, other_side) in ADJACENT.items():
        assert ADJACENT[(other, other_side)] == (face, side)
        _, e, d = (np.array(v) for v in FRAMES[face])
        toward = {"top": -d, "bottom": d, "left": -e, "right": e}[side]
        assert (np.array(FRAMES[other][0]) == toward).all()


@pytest.mark.parametrize("size", range(1, 9))
def test_edge_bands_are_the_rotated_neighbours(size: int) -> None:
    x = index_map(size)
    for width in range(1, size + 1):
        padded = cubemap.pad(x, width)
        assert torch.equal(padded[0, 0, :, width : width + size, width : width + size], x[0, 0])
        for face in range(6):
            for side in COUNTER_CLOCKWISE:
                expected = neighbour_strip(x, face, side, size, width)
                assert torch.equal(band(padded, face, side, size, width), expected), (size, width, face, side)


@pytest.mark.parametrize("size", range(1, 7))
def test_corner_blocks_average_the_two_continued_bands(size: int) -> None:
    # The corner pixel i rows above and j columns left of the face is the mean of the left
    # band's pixel (row j-1, column -i) and the top band's pixel (row -j, column i-1): its
    # position turned by +-90 degrees about the vertex. Turning the padded face brings each
    # corner to the top left.
    x = index_map(size)
    for width in range(1, size + 1):
        padded = cubemap.pad(x, width)[0, 0]
        for face in range(6):
            for turns in range(4):
                image = torch.rot90(padded[face], turns, dims=(0, 1))
                for i in range(1, width + 1):
                    for j in range(1, width + 1):
                        left = image[width + j - 1, width - i]
                        top = image[width - j, width + i - 1]
                        assert image[width - i, width - j] == (left + top) / 2, (size, width, face, turns, i, j)


def test_one_pixel_faces_by_hand() -> None:
    x = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], dtype=torch.float64).view(1, 1, 6, 1, 1)
    padded = cubemap.pad(x, 1)[0, 0]
    values = x.flatten()
    for face in range(6):
        top, bottom, left, right = (values[ADJACENT[(face, side)][0]] for side in ("top", "bottom", "left", "right"))
        expected = torch.stack(
            [
                torch.stack([(left + top) / 2, top, (top + right) / 2]),
                torch.stack([left, values[face], right]),
                torch.stack([(left + bottom) / 2, bottom, (bottom + right) / 2]),
            ]
        )
        assert torch.equal(padded[face], expected), face


@pytest.mark.parametrize("size", [1, 2, 4, 8, 16, 32])
def test_padded_centres_lie_next_to_their_sources(size: int) -> None:
    # An independent geometric check: extend each face's gnomonic grid in its own plane and
    # measure, on the sphere, how far each padded pixel lands from its source pixel(s).
    # Measured (in pixel sizes h): ring 0 bands 0.26-0.32 h, ring-0 corners 0.33-0.58 h;
    # the unfolding is intrinsic to the cube and the extended plane is not, so deeper
    # rings drift apart by about 0.65 h per ring (ring 1: <= 1.16 h, ring 2: <= 1.87 h).
    width = size
    table = GRID.pad_table(size, (width, width, width, width), "cube")
    centres = GRID.vectors(size).reshape(-1, 3)
    extended = gnomonic(size, width)
    offsets = np.arange(-width, size + width)
    ring = np.maximum(np.maximum(-offsets - 1, offsets - size), -1)  # -1 inside the face
    rings = np.maximum(ring[:, None], ring[None, :])
    corner = (ring[:, None] >= 0) & (ring[None, :] >= 0)
    for tap in range(table.index.shape[-1]):
        distance = angle(centres[table.index[..., tap]], extended) / pixel_size(size)
        assert distance[:, rings == -1].max() < 1e-7
        assert distance[:, (rings == 0) & corner].max() < 0.6
        for k in range(width):
            assert distance[:, (rings == k) & ~corner].max() < k + 0.5, k


widths_for = st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), st.tuples(*[st.integers(0, n)] * 4)))


@settings(max_examples=60, deadline=None)
@given(case=widths_for)
def test_pad_then_crop_equals_narrower_pad(case: tuple[int, tuple[int, int, int, int]]) -> None:
    # Every padded pixel depends only on its own position: pad by F on every side, crop to
    # any widths, and get the padding by those widths (per side, independently).
    size, (top, bottom, left, right) = case
    x = torch.randn(1, 2, 6, size, size, dtype=torch.float64)
    full = cubemap.pad(x, size)
    crop = full[..., size - top : 2 * size + bottom, size - left : 2 * size + right]
    assert torch.equal(cubemap.pad(x, (top, bottom, left, right)), crop)


def test_pad_then_crop_to_one() -> None:
    x = torch.randn(2, 3, 6, 5, 5, dtype=torch.float64)
    for width in range(1, 6):
        crop = cubemap.pad(x, width)[..., width - 1 : width + 6, width - 1 : width + 6]
        assert torch.equal(crop, cubemap.pad(x, 1))


@pytest.mark.parametrize("mode", ["cube", "zeros"])
@pytest.mark.parametrize("size", range(1, 7))
def test_pad_commutes_with_quarter_turn(size: int, mode: str) -> None:
    x = torch.randn(2, 2, 6, size, size, dtype=torch.float64)
    for width in range(1, size + 1):
        padded = cubemap.pad(x, width, mode)
        for k in (1, 2, 3):
            assert torch.equal(cubemap.pad(GRID.quarter_turn(x, k), width, mode), GRID.quarter_turn(padded, k))


def conv_stack(x: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
    for i, kernel in enumerate(kernels):
        planes = GRID.to_planes(cubemap.pad(x, kernel.shape[-1] // 2))
        x = GRID.from_planes(F.conv2d(planes, kernel), batch=x.shape[0])
        x = torch.tanh(x) if i < len(kernels) - 1 else x
    return x


def test_conv_stack_commutes_with_quarter_turns_for_c4_kernels() -> None:
    # Padding commutes with the turn exactly, so a stack of convolutions does whenever each
    # kernel is invariant under rot90 (the polar faces turn in their plane). A generic
    # kernel does not: the error is O(1), which is why this is the property to rely on.
    torch.manual_seed(0)
    shapes = [(4, 2, 3, 3), (4, 4, 5, 5), (1, 4, 3, 3)]
    generic = [torch.randn(s, dtype=torch.float64) for s in shapes]
    symmetric = [sum(torch.rot90(k, t, dims=(-2, -1)) for t in range(4)) for k in generic]
    x = torch.randn(2, 2, 6, 8, 8, dtype=torch.float64)
    y = conv_stack(x, symmetric)
    for k in (1, 2, 3):
        error = (conv_stack(GRID.quarter_turn(x, k), symmetric) - GRID.quarter_turn(y, k)).abs().max()
        assert error < 1e-12 * y.abs().max()
    error = (conv_stack(GRID.quarter_turn(x, 1), generic) - GRID.quarter_turn(conv_stack(x, generic), 1)).norm()
    assert error > 0.1 * conv_stack(x, generic).norm()


@settings(max_examples=30, deadline=None)
@given(case=widths_for)
def test_pad_adjoint_and_gradient(case: tuple[int, tuple[int, int, int, int]]) -> None:
    size, widths = case
    x = torch.randn(2, 3, 6, size, size, dtype=torch.float64, requires_grad=True)
    padded = cubemap.pad(x, widths)
    y = torch.randn_like(padded)
    adjoint = GRID.pad_adjoint(y, widths, "cube", x)
    (grad,) = torch.autograd.grad((padded * y).sum(), x)
    torch.testing.assert_close(grad, adjoint, rtol=0, atol=1e-12)
    table = GRID.pad_table(size, widths, "cube")
    # The fast adjoint adds the same terms in another order: equal to rounding, not bit for bit.
    torch.testing.assert_close(adjoint, gather_adjoint(y, table, *table.on(x.device)), rtol=0, atol=1e-12)
    # pad applies the table (as a 1-tap gather plus the corner pixels): the same values, bit for bit.
    assert torch.equal(padded, gather(x, table, *table.on(x.device)))
    left, right = (padded * y).sum(), (x * adjoint).sum()
    assert abs(left - right) <= 1e-12 * max(1.0, abs(left))


def test_adjoint_counts_every_use_of_a_pixel() -> None:
    # pad_adjoint(ones) counts how often each pixel is read. F = 1, width 1: each face is
    # read once by itself, once by each of its 4 neighbours' edge bands, and four corner
    # blocks on each of those 4 neighbours read it with weight 1/2 (two per neighbour).
    x = torch.zeros(1, 1, 6, 1, 1, dtype=torch.float64)
    counts = GRID.pad_adjoint(torch.ones(1, 1, 6, 3, 3, dtype=torch.float64), 1, "cube", x)
    assert torch.equal(counts.flatten(), torch.full((6,), 1 + 4 + 4 * 2 * 0.5, dtype=torch.float64))


def test_tables_use_two_taps_only_with_corners() -> None:
    assert GRID.pad_table(4, (2, 1, 0, 0), "cube").weight is None
    assert GRID.pad_table(4, (0, 0, 3, 4), "cube").weight is None
    table = GRID.pad_table(4, (1, 0, 0, 1), "cube")
    assert table.index.shape == (6, 5, 5, 2)
    assert table.weight is not None and (table.weight == 0.5).all()
    inside_corner = np.zeros((5, 5), dtype=bool)
    inside_corner[0, 4] = True
    same = table.index[..., 0] == table.index[..., 1]
    assert same[:, ~inside_corner].all() and not same[:, inside_corner].any()


@pytest.mark.parametrize("mode", ["zeros", "constant", "reflect", "replicate", "circular"])
def test_planar_modes_pad_each_face_alone(mode: str) -> None:
    x = torch.randn(2, 3, 6, 5, 5, dtype=torch.float64)
    widths = (1, 2, 3, 4)
    out = cubemap.pad(x, widths, mode, value=0.5 if mode == "constant" else 0.0)
    for face in range(6):
        if mode in ("zeros", "constant"):
            fill = 0.5 if mode == "constant" else 0.0
            expected = F.pad(x[:, :, face], (3, 4, 1, 2), mode="constant", value=fill)
        else:
            expected = F.pad(x[:, :, face], (3, 4, 1, 2), mode=mode)
        assert torch.equal(out[:, :, face], expected), face


def test_padding_keeps_dtype_device_and_non_finite_values() -> None:
    x = index_map(3, torch.float32)
    x[0, 0, 4, 0, 0] = float("inf")
    out = cubemap.pad(x, 1)
    assert out.dtype == torch.float32
    assert torch.isinf(out).sum() > 1 and not torch.isnan(out).any()


# -- interpolation and conversions ------------------------------------------------------


def poly(v: np.ndarray) -> np.ndarray:
    """A smooth test field: a cubic polynomial in (x, y, z), evaluated exactly."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return 1 + x - 2 * y + 0.5 * z + x * y - z * z + 3 * x * y * z


def sample_points(count: int, seed: int) -> np.ndarray:
    """Uniform points plus a cloud around each of the 8 cube vertices, where 3 faces meet."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(count, 3))
    vertices = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    near = (vertices[:, None, :] + 0.05 * rng.normal(size=(8, count // 8, 3))).reshape(-1, 3)
    points = np.concatenate([points, near])
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_interpolation_is_exact_at_pixel_centres() -> None:
    x = torch.randn(2, 3, 6, 5, 5, dtype=torch.float64)
    colat, lon = GRID.centres(5)
    assert torch.equal(GRID.interpolate(x, colat, lon), x)
    ones = torch.ones(1, 1, 6, 4, 4, dtype=torch.float64)
    values = GRID.interpolate(ones, *vectors_to_angles(sample_points(400, 1)))
    torch.testing.assert_close(values, torch.ones_like(values), rtol=0, atol=1e-14)


def test_interpolation_convergence() -> None:
    # Second order everywhere, edges and vertices included. Measured (F: rms, max):
    # 8: 1.46e-2, 5.48e-2; 16: 3.71e-3, 1.38e-2; 32: 9.31e-4, 3.58e-3; 64: 2.33e-4, 8.74e-4.
    points = sample_points(4000, 0)
    colat, lon = vectors_to_angles(points)
    exact = poly(points)
    errors = []
    for size in (8, 16, 32, 64):
        x = torch.from_numpy(poly(GRID.vectors(size)))[None, None]
        error = GRID.interpolate(x, colat, lon)[0, 0].numpy() - exact
        errors.append((np.sqrt(np.mean(error**2)), np.abs(error).max()))
    rms, worst = np.array(errors).T
    assert rms[0] < 2e-2 and worst[0] < 6e-2
    assert (rms[:-1] / rms[1:] > 3.5).all(), rms
    assert (worst[:-1] / worst[1:] > 3.3).all(), worst


@pytest.mark.parametrize("size", [1, 2, 5])
def test_interpolation_is_continuous_across_edges_and_vertices(size: int) -> None:
    # Points on every edge and at every vertex, nudged onto each face that touches them:
    # any map interpolates to the same value from every side (up to the nudge).
    rng = np.random.default_rng(size)
    x = torch.randn(1, 2, 6, size, size, dtype=torch.float64)
    t = rng.uniform(-1, 1, 50)
    for axis_a, axis_b in ((0, 1), (0, 2), (1, 2)):
        for sign_a in (-1, 1):
            for sign_b in (-1, 1):
                edge = np.zeros((t.size + 2, 3))
                edge[:, axis_a], edge[:, axis_b] = sign_a, sign_b
                edge[:, 3 - axis_a - axis_b] = np.concatenate([t, [-1.0, 1.0]])  # and both vertices
                nudge_a, nudge_b = np.zeros(3), np.zeros(3)
                nudge_a[axis_b], nudge_b[axis_a] = -1e-10 * sign_b, -1e-10 * sign_a
                one = GRID.interpolate(x, *vectors_to_angles(edge + nudge_a))
                two = GRID.interpolate(x, *vectors_to_angles(edge + nudge_b))
                assert (one - two).abs().max() < 1e-7


def test_interpolate_shapes_and_gradient() -> None:
    x = torch.randn(2, 3, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    colat = np.full((4, 5), 1.0)
    lon = np.linspace(0, 6, 5)
    assert GRID.interpolate(x, colat, lon).shape == (2, 3, 4, 5)
    assert GRID.interpolate(x, 0.3, 2.0).shape == (2, 3)
    points = vectors_to_angles(sample_points(16, 3))
    assert torch.autograd.gradcheck(lambda t: GRID.interpolate(t, *points), (x,))


def equirect_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    colat = (np.arange(height) + 0.5) * np.pi / height
    lon = np.arange(width) * 2 * np.pi / width
    return np.meshgrid(colat, lon, indexing="ij")


def test_to_equirect_samples_the_equirect_centres() -> None:
    x = torch.randn(1, 2, 6, 4, 4, dtype=torch.float64)
    colat, lon = equirect_centres(6, 10)
    torch.testing.assert_close(cubemap.to_equirect(x, 6, 10), GRID.interpolate(x, colat, lon), rtol=0, atol=1e-14)
    assert cubemap.to_equirect(x, 5).shape == (1, 2, 5, 10)
    # Field values: accurate to interpolation order. Measured max error at F = 32: 3.3e-3.
    smooth = torch.from_numpy(poly(GRID.vectors(32)))[None, None]
    exact = poly(angles_to_vectors(*equirect_centres(24, 48)))
    assert np.abs(cubemap.to_equirect(smooth, 24, 48)[0, 0].numpy() - exact).max() < 5e-3


def test_from_equirect_samples_the_cube_centres() -> None:
    equirect = get_grid("equirect")
    x = torch.randn(2, 1, 8, 16, dtype=torch.float64)
    colat, lon = GRID.centres(3)
    assert torch.equal(cubemap.from_equirect(x, 3), equirect.interpolate(x, colat, lon))
    field = torch.from_numpy(poly(angles_to_vectors(*equirect_centres(64, 128))))[None, None]
    error = cubemap.from_equirect(field, 16)[0, 0].numpy() - poly(GRID.vectors(16))
    assert np.abs(error).max() < 5e-3  # measured 3.0e-3


def test_round_trip_equirect_cube_equirect_converges() -> None:
    # H x 2H -> F = H/2 -> H x 2H on a smooth field (cube pixels about as large as equirect
    # pixels at the equator), against the field's exact values. Measured (H: rms, max):
    # 16: 2.71e-2, 7.38e-2; 32: 7.03e-3, 2.05e-2; 64: 1.78e-3, 5.69e-3; 128: 4.64e-4, 1.49e-3,
    # i.e. rms ratios 3.86, 3.95, 3.84 and max ratios 3.60, 3.60, 3.83.
    errors = []
    for height in (16, 32, 64, 128):
        exact = poly(angles_to_vectors(*equirect_centres(height, 2 * height)))
        field = torch.from_numpy(exact)[None, None]
        back = cubemap.to_equirect(cubemap.from_equirect(field, height // 2), height)[0, 0].numpy()
        errors.append((np.sqrt(np.mean((back - exact) ** 2)), np.abs(back - exact).max()))
    rms, worst = np.array(errors).T
    assert rms[0] < 3e-2 and worst[0] < 8e-2
    assert (rms[:-1] / rms[1:] > 3.5).all(), rms
    assert (worst[:-1] / worst[1:] > 3.3).all(), worst


# -- bad input --------------------------------------------------------------------------


def test_layout_errors_name_the_shape() -> None:
    with pytest.raises(ShapeError, match=r"\(B, C, 6, F, F\).*4-D tensor of shape \(1, 6, 4, 4\)"):
        cubemap.pad(torch.zeros(1, 6, 4, 4), 1)
    with pytest.raises(ShapeError, match=r"6 cube faces in dim -3, got shape \(1, 1, 5, 4, 4\) with 5"):
        cubemap.pad(torch.zeros(1, 1, 5, 4, 4), 1)
    with pytest.raises(ShapeError, match=r"square faces.*\(1, 2, 6, 4, 4\), got shape \(1, 2, 6, 4, 5\)"):
        GRID.quarter_turn(torch.zeros(1, 2, 6, 4, 5))
    with pytest.raises(ShapeError, match="C >= 1 and F >= 1"):
        cubemap.to_equirect(torch.zeros(1, 1, 6, 0, 0), 4)
    with pytest.raises(ShapeError, match="must be a torch.Tensor"):
        GRID.interpolate(np.zeros((1, 1, 6, 2, 2)), 0.0, 0.0)


def test_parameter_errors() -> None:
    x = torch.zeros(1, 1, 6, 3, 3)
    with pytest.raises(ParameterError, match=r"at most the face size 3x3 on grid 'cubemap'"):
        cubemap.pad(x, (0, 4, 0, 0))
    with pytest.raises(UnknownNameError, match="did you mean 'cube'"):
        cubemap.pad(x, 1, "cub")
    with pytest.raises(ParameterError, match="face_size must be an integer >= 1, got 0"):
        cubemap.from_equirect(torch.zeros(1, 1, 4, 8), 0)
    with pytest.raises(ParameterError, match="height must be an integer >= 1, got 0"):
        cubemap.to_equirect(x, 0)
    with pytest.raises(ParameterError, match="width of an equirect map must be even.*got 7"):
        cubemap.to_equirect(x, 4, 7)
    with pytest.raises(ParameterError, match="k must be an integer"):
        GRID.quarter_turn(x, 1.5)
    with pytest.raises(ParameterError, match="finite"):
        GRID.interpolate(x, np.nan, 0.0)
    with pytest.raises(ShapeError, match="floating-point"):
        GRID.interpolate(torch.zeros(1, 1, 6, 3, 3, dtype=torch.int64), 0.0, 0.0)
    with pytest.raises(ParameterError, match="at most the face size 3"):
        GRID.pad_table(3, (4, 0, 0, 0), "cube")
    with pytest.raises(ShapeError):
        cubemap.from_equirect(torch.zeros(1, 1, 4, 7), 2)  # the equirect grid refuses odd W
    assert all(issubclass(e, GeoconvError) for e in (ShapeError, ParameterError, UnknownNameError))
