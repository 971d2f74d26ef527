"""``data=spherical_mnist``: s2cnn's scale from its closed form, real MNIST against a float64 projection."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geoconv.data import get_dataset
from geoconv.data.digits import S2CNN_CAP_DEGREES, project_to_sphere
from geoconv.errors import GeoconvError, ParameterError

REAL_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not found at {REAL_MNIST}")


def test_s2cnn_scale_puts_the_image_on_plus_minus_1_5_of_the_tangent_plane() -> None:
    # Stereographic projection from the far pole onto the plane tangent at the near one:
    # rho = 2 tan(theta / 2); s2cnn's image spans rho <= 1.5 along its axes.
    assert 2 * math.tan(math.radians(S2CNN_CAP_DEGREES) / 2) == pytest.approx(1.5, abs=1e-13)
    assert pytest.approx(73.7397952917, abs=1e-9) == S2CNN_CAP_DEGREES


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.9])
def test_the_edge_of_an_all_ones_digit_falls_off_linearly_to_the_s2cnn_support(fraction: float) -> None:
    # 28 pixels and a ring of zeros centred on the support's edge: pitch 3 / 29. Along +x
    # (longitude 0) the bilinear interpolant falls from 1 at the last pixel centre, u = 1.5 - pitch,
    # to 0 at the edge u = 1.5: value (1.5 - u) / pitch.
    pitch = 3.0 / 29.0
    u = 1.5 - pitch * (1.0 - fraction)
    colatitude = 2.0 * math.atan(u / 2.0)
    point = np.array([[math.sin(colatitude), 0.0, math.cos(colatitude)]])
    value = project_to_sphere(torch.ones(1, 28, 28), point, cap=S2CNN_CAP_DEGREES)
    assert float(value) == pytest.approx(1.0 - fraction, abs=1e-6)


def test_spherical_mnist_needs_its_folder_and_names_the_key() -> None:
    with pytest.raises(ParameterError, match="data.mnist_dir is not set: .* never downloads"):
        get_dataset("spherical_mnist")({"mnist_dir": None}, "equirect", 8)


def test_a_malformed_mnist_file_is_named(tmp_path: Path) -> None:
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x08")  # shorter than the 4-byte magic number
    with pytest.raises(GeoconvError, match=r"train-images-idx3-ubyte' is truncated: 3 bytes"):
        get_dataset("spherical_mnist")({"mnist_dir": str(tmp_path), "limit": 2}, "equirect", 8)


def _idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _reference_projection(image: np.ndarray, height: int) -> np.ndarray:
    """A float64 loop: each equirect pixel centre, stereographically projected, sampled bilinearly."""
    n = image.shape[0]
    pitch = 3.0 / (n + 1)
    padded = np.pad(image.astype(np.float64) / 255.0, 1)
    out = np.zeros((height, 2 * height))
    for i in range(height):
        theta = (i + 0.5) * math.pi / height
        for j in range(2 * height):
            phi = 2 * math.pi * j / (2 * height)
            x, y, z = math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)
            u, w = 2 * x / (1 + z), 2 * y / (1 + z)
            col, row = u / pitch + (n + 1) / 2, -w / pitch + (n + 1) / 2  # in the padded image
            if not (0 <= col <= n + 1 and 0 <= row <= n + 1):
                continue
            c0, r0 = min(int(col), n), min(int(row), n)
            fc, fr = col - c0, row - r0
            out[i, j] = (
                padded[r0, c0] * (1 - fr) * (1 - fc)
                + padded[r0, c0 + 1] * (1 - fr) * fc
                + padded[r0 + 1, c0] * fr * (1 - fc)
                + padded[r0 + 1, c0 + 1] * fr * fc
            )
    return out


@needs_mnist
def test_real_mnist_lands_on_the_sphere_as_a_float64_projection_says(tmp_path: Path) -> None:
    data = {"mnist_dir": str(REAL_MNIST), "limit": 3, "test_limit": 2, "split_protocol": "NR/R"}
    splits = get_dataset("spherical_mnist")(data, "equirect", 16)
    images = _idx(REAL_MNIST / "train-images-idx3-ubyte.gz")
    labels = _idx(REAL_MNIST / "train-labels-idx1-ubyte.gz")
    assert splits.train.targets.tolist() == labels[:3].tolist() == [5, 0, 4]
    assert splits.train.inputs.shape == (3, 1, 16, 32)
    for k in range(3):
        reference = _reference_projection(images[k], 16)
        np.testing.assert_allclose(splits.train.inputs[k, 0].numpy(), reference, atol=2e-6)
    assert splits.train.inputs.sum() > 0 and splits.train.inputs[:, :, 8:].abs().max() == 0  # the northern cap
    # The rotated test set: the same digits, each turned by its own Haar-random rotation.
    rotated = splits.tests["r"]
    assert rotated.targets.tolist() == _idx(REAL_MNIST / "t10k-labels-idx1-ubyte.gz")[:2].tolist()
    assert rotated.rotations.shape == (2, 3, 3) and not torch.equal(rotated.inputs, splits.tests["nr"].inputs)
