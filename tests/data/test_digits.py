"""Spherical and translated digits, the projection onto the sphere, and the IDX reader."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.datasets import load_digits

from geoconv.data import CAP_DEGREES, project_to_sphere, read_idx, spherical_digits, translated_digits
from geoconv.data.digits import _sklearn_splits
from geoconv.errors import GeoconvError
from geoconv.grids import get_grid, rotate
from geoconv.grids.sphere import angles_to_vectors, vectors_to_angles

SPHERICAL = [("equirect", 8), ("cubemap", 4), ("healpix", 4)]


# -- independent references ----------------------------------------------------------------


def predicted_direction(row: float, col: float, height: int, width: int, cap: float = CAP_DEGREES) -> np.ndarray:
    """Where pixel (row, col) of an image lands, from the documented geometry.

    The support square (the image and a ring of zeros whose centres lie on the square's
    edges) has half-width a = 2 tan(cap / 2) on the plane tangent at the north
    pole; the stereographic projection from the south pole has rho = 2 tan(colat / 2).
    """
    a = 2 * math.tan(math.radians(cap) / 2)
    pitch = 2 * a / (max(height, width) + 1)
    u = (col - (width - 1) / 2) * pitch
    w = -(row - (height - 1) / 2) * pitch
    colat = 2 * math.atan(math.hypot(u, w) / 2)
    lon = math.atan2(w, u)
    return angles_to_vectors(np.array(colat), np.array(lon))


def write_idx(path, array: np.ndarray, magic: int | None = None) -> None:
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x800 + array.ndim
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def great_circle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0))


# -- shapes, dtypes, ranges --------------------------------------------------------------


@pytest.mark.parametrize(("grid", "size"), SPHERICAL)
@pytest.mark.parametrize("rotated", [False, True])
def test_spherical_digits_shapes_dtypes_ranges(grid, size, rotated):
    data = spherical_digits(grid, size, split="test", rotated=rotated, limit=5)
    assert data.inputs.shape == get_grid(grid).shape(5, 1, size)
    assert data.inputs.dtype == torch.float32 and data.targets.dtype == torch.int64
    assert data.targets.shape == (5,)
    assert float(data.inputs.min()) >= 0.0 and float(data.inputs.max()) <= 1.0
    assert float(data.inputs.amax(dim=tuple(range(1, data.inputs.dim()))).min()) > 0.0  # every digit has ink
    assert set(data.targets.tolist()) <= set(range(10))
    assert (data.grid, data.size, data.classes, data.name, len(data)) == (grid, size, 10, "spherical_digits", 5)
    x, y = data[2]
    assert torch.equal(x, data.inputs[2]) and int(y) == int(data.targets[2])
    if rotated:
        R = data.rotations
        assert R.shape == (5, 3, 3) and R.dtype == torch.float64
        assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3, dtype=R.dtype).expand(5, 3, 3), atol=1e-12)
        assert torch.allclose(torch.linalg.det(R), torch.ones(5, dtype=R.dtype))
    else:
        assert data.rotations is None


def test_split_is_fixed_stratified_and_covers_the_digits_once():
    splits = _sklearn_splits()
    train_images, train_labels = splits["train"]
    test_images, test_labels = splits["test"]
    assert (len(train_labels), len(test_labels)) == (1438, 359)
    digits = load_digits()
    # Every image of load_digits is in exactly one split (as a multiset of images).
    seen = sorted(map(bytes, np.concatenate([train_images, test_images]).reshape(-1, 64).round(6)))
    expected = sorted(map(bytes, (digits.images / 16.0).astype(np.float32).reshape(-1, 64).round(6)))
    assert seen == expected
    per_class = np.bincount(digits.target, minlength=10)
    assert np.array_equal(np.bincount(test_labels, minlength=10), np.round(0.2 * per_class).astype(int))
    # The seed drives the rotations only, never the split.
    a = spherical_digits("healpix", 2, split="test", seed=0, limit=50)
    b = spherical_digits("healpix", 2, split="test", seed=7, limit=50)
    assert torch.equal(a.targets, b.targets) and torch.equal(a.inputs, b.inputs)
    assert torch.equal(a.targets, torch.tensor(test_labels[:50]))


def test_reproducible_seeded_rotations_and_limit_keeps_a_prefix():
    a = spherical_digits("healpix", 4, split="train", rotated=True, seed=3, limit=6)
    b = spherical_digits("healpix", 4, split="train", rotated=True, seed=3, limit=6)
    c = spherical_digits("healpix", 4, split="train", rotated=True, seed=4, limit=6)
    d = spherical_digits("healpix", 4, split="test", rotated=True, seed=3, limit=6)
    longer = spherical_digits("healpix", 4, split="train", rotated=True, seed=3, limit=9)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.rotations, b.rotations)
    assert not torch.allclose(a.rotations, c.rotations)
    assert not torch.allclose(a.rotations, d.rotations)  # train and test draw independent rotations
    assert torch.equal(longer.inputs[:6], a.inputs) and torch.equal(longer.rotations[:6], a.rotations)


# -- the projection -------------------------------------------------------------------------


def test_image_centre_lands_on_the_pole():
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    pole = np.array([0.0, 0.0, 1.0])
    # Bilinear at the centre of an even image: the mean of the four central pixels.
    expected = image[:, 3:5, 3:5].mean(dim=(1, 2))
    assert torch.allclose(project_to_sphere(image, pole), expected, atol=1e-6)
    odd = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(project_to_sphere(odd, pole), odd[:, 3, 3], atol=1e-6)


@pytest.mark.parametrize(("row", "col"), [(0, 0), (0, 7), (2, 5), (7, 3), (4, 4)])
def test_a_bright_pixel_lands_where_predicted(row, col):
    image = torch.zeros(1, 8, 8)
    image[0, row, col] = 1.0
    here = predicted_direction(row, col, 8, 8)
    assert float(project_to_sphere(image, here)[0]) == pytest.approx(1.0, abs=1e-6)
    # The neighbouring pixel centres (one pitch away) hold zero: the pixel does not smear.
    for dr, dc in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        there = predicted_direction(row + dr, col + dc, 8, 8)
        assert float(project_to_sphere(image, there)[0]) == pytest.approx(0.0, abs=1e-6)


def test_orientation_is_not_mirrored():
    # Seen from above the north pole, columns run along +x and rows down along -y: the
    # top-right pixel lies in the first quadrant of longitude, the bottom-left in the third.
    for (row, col), quadrant in [((0, 7), 0), ((0, 0), 1), ((7, 0), 2), ((7, 7), 3)]:
        colat, lon = vectors_to_angles(predicted_direction(row, col, 8, 8))
        assert math.degrees(float(lon)) == pytest.approx(45 + 90 * quadrant)
        image = torch.zeros(1, 8, 8)
        image[0, row, col] = 1.0
        points = angles_to_vectors(np.full(4, float(colat)), np.radians(np.array([45.0, 135.0, 225.0, 315.0])))
        assert int(project_to_sphere(image, points)[0].argmax()) == quadrant


def test_support_is_the_documented_cap():
    ones = torch.ones(1, 8, 8)
    cap = CAP_DEGREES
    corner = math.degrees(2 * math.atan(math.sqrt(2) * math.tan(math.radians(cap) / 2)))
    assert corner == pytest.approx(78.46, abs=0.01)
    for lon, edge in [(0.0, cap), (90.0, cap), (180.0, cap), (270.0, cap), (45.0, corner), (225.0, corner)]:
        inside = angles_to_vectors(np.radians(edge - 0.5), np.radians(lon))
        outside = angles_to_vectors(np.radians(edge + 0.5), np.radians(lon))
        assert float(project_to_sphere(ones, inside)[0]) > 0.0
        assert float(project_to_sphere(ones, outside)[0]) == 0.0
    south = np.array([[0.0, 0.0, -1.0], [1e-9, 0.0, -1.0]])
    assert project_to_sphere(ones, south).abs().max() == 0.0


@pytest.mark.parametrize(("grid", "size"), [("healpix", 16), ("equirect", 32), ("cubemap", 16)])
def test_ink_of_the_digits_is_inside_the_cap(grid, size):
    data = spherical_digits(grid, size, split="train", limit=40)
    colat, _ = get_grid(grid).centres(size)
    colat = torch.from_numpy(np.degrees(colat)).expand_as(data.inputs[:, 0])
    ink = data.inputs[:, 0]
    corner = math.degrees(2 * math.atan(math.sqrt(2) * math.tan(math.radians(CAP_DEGREES) / 2)))
    assert float(colat[ink > 0].max()) <= corner
    # The digits are big: some ink lies past 40 degrees, and none reaches the equator.
    assert float(colat[ink > 0.2].max()) > 40.0
    assert float(ink[colat > 80.0].abs().max()) == 0.0


def test_rotation_is_evaluated_exactly_at_rotated_centres():
    image = torch.zeros(1, 8, 8)
    image[0, 1, 6] = 1.0
    R = torch.tensor(np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0])
    R = R * torch.sign(torch.linalg.det(R))
    p = predicted_direction(1, 6, 8, 8)
    # The rotated sample at R p holds what the unrotated one holds at p.
    moved = (R.numpy() @ p)[None]
    assert float(project_to_sphere(image, moved, R[None])[0, 0]) == pytest.approx(1.0, abs=1e-6)
    vectors = get_grid("healpix").vectors(4)
    direct = project_to_sphere(image, vectors, R[None])
    assert torch.equal(direct, project_to_sphere(image, vectors @ R.numpy()))


# Measured (mean relative L2 error over 8 test digits): equirect 0.044 / 0.014 at H = 32 / 64,
# cubemap 0.055 / 0.017 at F = 16 / 32, HEALPix 0.022 / 0.009 at nside = 16 / 32.
@pytest.mark.parametrize(
    ("grid", "coarse", "fine", "bound_coarse", "bound_fine"),
    [("equirect", 32, 64, 0.1, 0.03), ("cubemap", 16, 32, 0.08, 0.03), ("healpix", 16, 32, 0.04, 0.015)],
)
def test_rotating_a_sample_is_the_sample_of_the_rotated_source(grid, coarse, fine, bound_coarse, bound_fine):
    errors = {}
    for size in (coarse, fine):
        plain = spherical_digits(grid, size, split="test", limit=8)
        turned = spherical_digits(grid, size, split="test", rotated=True, seed=5, limit=8)
        assert torch.equal(plain.targets, turned.targets)
        relative = []
        for i in range(8):
            resampled = rotate(plain.inputs[i : i + 1].double(), grid, turned.rotations[i], method="resample")
            exact = turned.inputs[i : i + 1].double()
            relative.append(float((resampled - exact).norm() / exact.norm()))
        errors[size] = float(np.mean(relative))
    assert errors[coarse] < bound_coarse
    assert errors[fine] < bound_fine
    assert errors[fine] < errors[coarse] / 2  # interpolation error shrinks with resolution


def test_rotation_changes_the_sample_but_not_its_mass():
    # On HEALPix every pixel has the same area: the ink mass is nearly rotation invariant.
    plain = spherical_digits("healpix", 32, split="test", limit=4)
    turned = spherical_digits("healpix", 32, split="test", rotated=True, limit=4)
    mass, turned_mass = plain.inputs.sum(dim=(1, 2, 3, 4)), turned.inputs.sum(dim=(1, 2, 3, 4))
    assert torch.allclose(mass, turned_mass, rtol=0.02)
    assert float((plain.inputs - turned.inputs).abs().max()) > 0.5


# -- IDX files and MNIST -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 7
    labels = np.array([3, 1], dtype=np.uint8)
    write_idx(tmp_path / f"images{suffix}", images)
    write_idx(tmp_path / f"labels{suffix}", labels)
    read_images, read_labels = read_idx(tmp_path / f"images{suffix}"), read_idx(tmp_path / f"labels{suffix}")
    assert read_images.dtype == np.uint8 and np.array_equal(read_images, images)
    assert np.array_equal(read_labels, labels)


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint8, st.sampled_from([(0,), (5,), (1, 1, 1), (3, 2, 5), (2, 0, 4)])))
def test_read_idx_reads_what_was_written(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "file-ubyte"
    write_idx(path, array)
    assert np.array_equal(read_idx(path), array) and read_idx(path).shape == array.shape


def test_read_idx_refuses_a_wrong_magic_number(tmp_path):
    path = tmp_path / "wrong-idx3-ubyte"
    write_idx(path, np.zeros((2, 2, 2)), magic=0x00000804)
    with pytest.raises(GeoconvError, match=r"wrong-idx3-ubyte.*magic number 0x00000804.*0x00000801"):
        read_idx(path)
    gz = tmp_path / "float-idx3-ubyte.gz"
    write_idx(gz, np.zeros((2, 2, 2)), magic=0x00000D03)  # an IDX of floats: not MNIST's bytes
    with pytest.raises(GeoconvError, match=r"float-idx3-ubyte.gz.*magic number 0x00000d03"):
        read_idx(gz)


def test_read_idx_refuses_truncated_and_overlong_files(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    write_idx(path, np.ones((4, 5, 5)))
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])
    with pytest.raises(GeoconvError, match=r"images-idx3-ubyte.*body of 97 bytes, expected 100.*truncated"):
        read_idx(path)
    path.write_bytes(whole + b"\x00")
    with pytest.raises(GeoconvError, match=r"images-idx3-ubyte.*longer than its header says"):
        read_idx(path)
    path.write_bytes(whole[:9])
    with pytest.raises(GeoconvError, match=r"images-idx3-ubyte.*truncated: its header needs 16 bytes"):
        read_idx(path)
    path.write_bytes(whole[:2])
    with pytest.raises(GeoconvError, match=r"images-idx3-ubyte.*truncated"):
        read_idx(path)
    gz = tmp_path / "images-idx3-ubyte.gz"
    write_idx(gz, np.ones((4, 5, 5)))
    gz.write_bytes(gz.read_bytes()[:-6])  # a cut gzip stream
    with pytest.raises(GeoconvError, match=r"images-idx3-ubyte.gz.*cannot be read"):
        read_idx(gz)
    with pytest.raises(GeoconvError, match=r"nothing-here.*does not exist"):
        read_idx(tmp_path / "nothing-here")


def tiny_mnist(directory, gz: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Six 6x6 images per split, each with one bright pixel at a known place."""
    suffix = ".gz" if gz else ""
    data = {}
    for split, prefix in [("train", "train"), ("test", "t10k")]:
        images = np.zeros((6, 6, 6), dtype=np.uint8)
        for i in range(6):
            images[i, i, (2 * i + 1) % 6] = 255
        labels = np.arange(6, dtype=np.uint8) + (3 if split == "test" else 0)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        data[split] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_spherical_digits_reads_tiny_mnist_files(tmp_path, gz):
    source = tiny_mnist(tmp_path, gz)
    grid, size = "equirect", 64
    for split in ("train", "test"):
        data = spherical_digits(grid, size, split=split, mnist_dir=tmp_path)
        images, labels = source[split]
        assert data.name == "spherical_mnist" and data.inputs.shape == (6, 1, 64, 128)
        assert torch.equal(data.targets, torch.from_numpy(labels).long())
        vectors = get_grid(grid).vectors(size)
        for i in range(6):
            # The brightest grid pixel is the one nearest the predicted place of the bright pixel.
            row, col = np.argwhere(images[i])[0]
            expected = predicted_direction(row, col, 6, 6)
            brightest = vectors.reshape(-1, 3)[int(data.inputs[i, 0].argmax())]
            nearest = vectors.reshape(-1, 3)[int(great_circle(vectors.reshape(-1, 3), expected).argmin())]
            assert great_circle(brightest, nearest) < math.radians(180 / size) * 1.5
    limited = spherical_digits(grid, 8, split="test", mnist_dir=tmp_path, limit=2, rotated=True)
    assert len(limited) == 2 and limited.rotations.shape == (2, 3, 3)


def test_mnist_dir_errors_name_the_path(tmp_path):
    with pytest.raises(GeoconvError, match=r"mnist_dir .*missing.*does not exist"):
        spherical_digits("healpix", 2, mnist_dir=tmp_path / "missing")
    tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    spherical_digits("healpix", 2, split="train", mnist_dir=tmp_path)  # the train files are all there
    with pytest.raises(GeoconvError, match=r"no MNIST test labels file.*tried t10k-labels-idx1-ubyte, "):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(5))  # 5 labels for 6 images
    with pytest.raises(GeoconvError, match=r"6 images but 5 labels"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((6, 2, 2)))  # images where labels belong
    with pytest.raises(GeoconvError, match=r"t10k-labels-idx1-ubyte.*shape \(6, 2, 2\), expected labels"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(6), magic=0x00000802)
    with pytest.raises(GeoconvError, match=r"t10k-labels-idx1-ubyte.*magic number 0x00000802"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 4, 10]))
    with pytest.raises(GeoconvError, match=r"t10k-labels-idx1-ubyte.*label 10, expected digits 0..9"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": "planar", "size": 8}, r"needs a spherical grid .* got grid 'planar'"),
        ({"grid": "healpix", "size": 3}, r"nside.*power of two"),
        ({"grid": "healpix", "size": 0}, r"nside"),
        ({"grid": "equirect", "size": 2.5}, r"size for grid 'equirect' must be an integer"),
        ({"grid": "sphere", "size": 4}, r"unknown grid: 'sphere'"),
        ({"grid": "healpix", "size": 2, "split": "valid"}, r"unknown split: 'valid'.*'test', 'train'"),
        ({"grid": "healpix", "size": 2, "limit": 0}, r"limit must be an integer >= 1"),
        ({"grid": "healpix", "size": 2, "seed": -1}, r"seed must be an integer >= 0"),
        ({"grid": "healpix", "size": 2, "rotated": "yes"}, r"rotated must be True or False"),
    ],
)
def test_spherical_digits_bad_input(kwargs, message):
    with pytest.raises(GeoconvError, match=message):
        spherical_digits(**kwargs)


def test_translated_digits_bad_input():
    with pytest.raises(GeoconvError, match=r"size must be an integer >= 8, got 7"):
        translated_digits(7)
    with pytest.raises(GeoconvError, match=r"unknown split"):
        translated_digits(16, split="validation")


# -- translated digits -------------------------------------------------------------------


def test_translated_digits_place_each_digit_at_its_position():
    data = translated_digits(20, split="train", seed=1, limit=30)
    assert data.inputs.shape == (30, 1, 20, 20) and data.inputs.dtype == torch.float32
    assert (data.grid, data.size, data.classes, data.name) == ("planar", 20, 10, "translated_digits")
    assert data.positions.shape == (30, 2) and data.positions.dtype == torch.int64
    assert int(data.positions.min()) >= 0 and int(data.positions.max()) <= 12
    assert float(data.inputs.min()) >= 0.0 and float(data.inputs.max()) <= 1.0
    digits = load_digits()
    by_image = {
        bytes((image / 16.0).astype(np.float32)): int(label)
        for image, label in zip(digits.images, digits.target, strict=True)
    }
    for i in range(30):
        row, col = data.positions[i].tolist()
        canvas = data.inputs[i, 0]
        window = canvas[row : row + 8, col : col + 8]
        assert float(canvas.sum()) == pytest.approx(float(window.sum()))  # zero outside the digit
        assert by_image[bytes(window.numpy())] == int(data.targets[i])  # the digit itself, not upsampled
    assert len(set(map(tuple, data.positions.tolist()))) > 20  # positions vary


def test_translated_digits_are_reproducible_and_seeded():
    a = translated_digits(16, seed=2, limit=10)
    b = translated_digits(16, seed=2, limit=10)
    c = translated_digits(16, seed=3, limit=10)
    longer = translated_digits(16, seed=2, limit=20)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.positions, b.positions)
    assert not torch.equal(a.positions, c.positions) and torch.equal(a.targets, c.targets)
    assert torch.equal(longer.positions[:10], a.positions)
    assert len(translated_digits(8, split="test")) == 359
    assert int(translated_digits(8, limit=5).positions.abs().max()) == 0  # no room to move
