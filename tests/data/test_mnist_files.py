"""MNIST's IDX files under every name they ship with: dashed or dotted, plain or gzipped.

Tiny IDX files are written here byte by byte from the format's definition (a big-endian magic
number ``0x00000803`` for images or ``0x00000801`` for labels, one big-endian uint32 per
dimension, then the bytes), so the reader is checked against the format, not against itself.
The team's real copy of MNIST is read only where it is present.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from geoconv.data import read_idx, spherical_digits
from geoconv.data.digits import _mnist_paths
from geoconv.errors import GeoconvError

REAL_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
PREFIX = {"train": "train", "test": "t10k"}


def idx_bytes(magic: int, shape: tuple[int, ...], body: bytes) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape) + body


def write(path: Path, data: bytes) -> None:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_split(directory: Path, split: str, dotted: bool, gz: bool, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Write ``n`` 4x5 images (byte ``7 * flat index mod 256``) and labels ``3k mod 10``; return them."""
    images = ((np.arange(n * 20).reshape(n, 4, 5) * 7) % 256).astype(np.uint8)
    labels = (np.arange(n) * 3 % 10).astype(np.uint8)
    sep = "." if dotted else "-"
    suffix = ".gz" if gz else ""
    prefix = PREFIX[split]
    write(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", idx_bytes(0x00000803, (n, 4, 5), images.tobytes()))
    write(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", idx_bytes(0x00000801, (n,), labels.tobytes()))
    return images, labels


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("dotted", [False, True], ids=["dashed", "dotted"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_every_naming_is_found_and_read_exactly(tmp_path: Path, split: str, dotted: bool, gz: bool) -> None:
    images, labels = write_split(tmp_path, split, dotted, gz)
    images_path, labels_path = _mnist_paths(tmp_path, split)
    sep = "." if dotted else "-"
    assert images_path.name == f"{PREFIX[split]}-images{sep}idx3-ubyte" + (".gz" if gz else "")
    assert labels_path.name == f"{PREFIX[split]}-labels{sep}idx1-ubyte" + (".gz" if gz else "")
    assert np.array_equal(read_idx(images_path), images) and read_idx(images_path).shape == (3, 4, 5)
    assert np.array_equal(read_idx(labels_path), labels)
    data = spherical_digits("healpix", 2, split=split, mnist_dir=tmp_path)
    assert torch.equal(data.targets, torch.from_numpy(labels).long())


def test_dashed_plain_wins_when_several_namings_are_present(tmp_path: Path) -> None:
    write_split(tmp_path, "train", dotted=True, gz=True)
    write_split(tmp_path, "train", dotted=False, gz=False)
    images_path, labels_path = _mnist_paths(tmp_path, "train")
    assert (images_path.name, labels_path.name) == ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def test_a_missing_file_names_every_name_tried(tmp_path: Path) -> None:
    write_split(tmp_path, "train", dotted=True, gz=False)
    (tmp_path / "train-labels.idx1-ubyte").unlink()
    tried = "train-labels-idx1-ubyte, train-labels-idx1-ubyte.gz, train-labels.idx1-ubyte, train-labels.idx1-ubyte.gz"
    with pytest.raises(GeoconvError, match="no MNIST train labels file for split 'train': tried " + tried):
        spherical_digits("healpix", 2, split="train", mnist_dir=tmp_path)


def test_a_malformed_dotted_file_is_named_with_what_was_expected(tmp_path: Path) -> None:
    write_split(tmp_path, "test", dotted=True, gz=True)
    # Labels where the images belong: the file is valid IDX, but not images.
    write(tmp_path / "t10k-images.idx3-ubyte.gz", idx_bytes(0x00000801, (3,), bytes([1, 2, 3])))
    with pytest.raises(GeoconvError, match=r"t10k-images\.idx3-ubyte\.gz.*shape \(3,\), expected images"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)
    # A body one byte short of its header's 3x4x5.
    write(tmp_path / "t10k-images.idx3-ubyte.gz", idx_bytes(0x00000803, (3, 4, 5), bytes(59)))
    with pytest.raises(GeoconvError, match=r"t10k-images\.idx3-ubyte\.gz.*body of 59 bytes, expected 60"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)
    # Not gzip at all behind a .gz name.
    (tmp_path / "t10k-images.idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(GeoconvError, match=r"t10k-images\.idx3-ubyte\.gz.*cannot be read"):
        spherical_digits("healpix", 2, split="test", mnist_dir=tmp_path)


def read_header(path: Path) -> tuple[int, tuple[int, ...]]:
    """The magic number and dimensions of an IDX file, read independently of geoconv."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        head = handle.read(16)
    magic = struct.unpack(">I", head[:4])[0]
    ndim = head[3]
    return magic, struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"no MNIST copy at {REAL_MNIST}")
@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_the_real_mnist_files_are_found_and_their_headers_are_mnists(split: str, count: int) -> None:
    images_path, labels_path = _mnist_paths(REAL_MNIST, split)
    assert read_header(images_path) == (0x00000803, (count, 28, 28))
    assert read_header(labels_path) == (0x00000801, (count,))
