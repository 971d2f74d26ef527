"""The disk cache: hits, validation of stale and corrupt files, atomic writes."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest
import torch

import geoconv
from geoconv.data import CacheWarning, spherical_digits, translated_digits
from geoconv.data import cache as cache_module
from geoconv.data.cache import CACHE_FORMAT, cache_path, check_cache_dir, load_or_build
from geoconv.errors import GeoconvError

KEY = {"dataset": "toy", "grid": "healpix", "size": 4, "split": "train", "rotated": False, "seed": 0, "limit": None}


class Builder:
    """Counts builds; returns distinctive tensors whose bytes can be found in the file."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, torch.Tensor]:
        self.calls += 1
        inputs = torch.linspace(0.125, 0.875, 4096, dtype=torch.float32).view(4, 1, 1024)
        return {"inputs": inputs, "targets": torch.arange(4)}


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_second_load_comes_from_the_cache(tmp_path):
    build = Builder()
    first, hit = load_or_build(tmp_path, KEY, 1, build)
    assert (hit, build.calls) == (False, 1)
    second, hit = load_or_build(tmp_path, KEY, 1, build)
    assert (hit, build.calls) == (True, 1)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert files(tmp_path) == [cache_path(tmp_path, KEY).name]
    # Another key is another file.
    load_or_build(tmp_path, {**KEY, "seed": 1}, 1, build)
    assert build.calls == 2 and len(files(tmp_path)) == 2


def test_header_records_format_version_key_shapes_and_checksum(tmp_path):
    load_or_build(tmp_path, KEY, 7, Builder())
    stored = torch.load(cache_path(tmp_path, KEY), weights_only=True)
    header = stored["header"]
    assert header["format"] == CACHE_FORMAT and header["version"] == 7
    assert '"dataset":"toy"' in header["key"] and '"size":4' in header["key"]
    assert header["shapes"] == {"inputs": [4, 1, 1024], "targets": [4]}
    assert header["dtypes"] == {"inputs": "torch.float32", "targets": "torch.int64"}
    assert len(header["checksum"]) == 64


def test_no_cache_dir_builds_every_time(tmp_path):
    build = Builder()
    assert load_or_build(None, KEY, 1, build)[1] is False
    assert load_or_build(None, KEY, 1, build)[1] is False
    assert build.calls == 2


def rebuilds_with_warning(tmp_path: Path, build: Builder, match: str, version: int = 1) -> None:
    calls = build.calls
    with pytest.warns(CacheWarning, match=match):
        tensors, hit = load_or_build(tmp_path, KEY, version, build)
    assert hit is False and build.calls == calls + 1
    assert torch.equal(tensors["targets"], torch.arange(4))
    # The rewritten file is good: the next load is a silent hit.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_or_build(tmp_path, KEY, version, build)[1] is True
    assert build.calls == calls + 1


def test_flipped_payload_bytes_are_caught_by_the_checksum(tmp_path):
    build = Builder()
    load_or_build(tmp_path, KEY, 1, build)
    path = cache_path(tmp_path, KEY)
    data = bytearray(path.read_bytes())
    # The tensors are stored uncompressed: flip a byte inside the inputs' own bytes, so the
    # file still loads and only the checksum can tell.
    raw = build()["inputs"].numpy().tobytes()
    build.calls -= 1
    start = bytes(data).find(raw[:64])
    assert start > 0
    data[start + 1000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["tensors"]["inputs"].shape == (4, 1, 1024)  # loads fine
    rebuilds_with_warning(tmp_path, build, r"does not match its checksum \(corrupt\)")


@pytest.mark.parametrize("damage", ["truncate", "flip_head", "garbage", "empty"])
def test_unreadable_files_are_rebuilt(tmp_path, damage):
    build = Builder()
    load_or_build(tmp_path, KEY, 1, build)
    path = cache_path(tmp_path, KEY)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip_head":
        for i in range(0, 64):
            data[i] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"not a torch file at all")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    rebuilds_with_warning(tmp_path, build, r"cannot be read")


def test_a_file_that_is_not_a_cache_file_is_rebuilt(tmp_path):
    build = Builder()
    path = cache_path(tmp_path, KEY)
    torch.save({"inputs": torch.zeros(2)}, path)  # loads, but has no header
    rebuilds_with_warning(tmp_path, build, r"has no header")
    torch.save({"header": {"format": CACHE_FORMAT + 1}, "tensors": {}}, path)
    rebuilds_with_warning(tmp_path, build, r"cache format is 2, expected 1")


def test_tensors_that_disagree_with_the_header_are_rebuilt(tmp_path):
    build = Builder()
    load_or_build(tmp_path, KEY, 1, build)
    path = cache_path(tmp_path, KEY)
    stored = torch.load(path, weights_only=True)
    stored["tensors"]["targets"] = torch.arange(5)
    torch.save(stored, path)
    rebuilds_with_warning(tmp_path, build, r"differ from its header")


def test_a_stale_version_is_rebuilt(tmp_path):
    build = Builder()
    load_or_build(tmp_path, KEY, 1, build)
    rebuilds_with_warning(tmp_path, build, r"version 1, expected 2 \(stale\)", version=2)
    assert torch.load(cache_path(tmp_path, KEY), weights_only=True)["header"]["version"] == 2
    assert len(files(tmp_path)) == 1  # replaced, not left behind


def test_a_file_holding_another_key_is_rebuilt(tmp_path):
    build = Builder()
    other = {**KEY, "seed": 9}
    load_or_build(tmp_path, other, 1, build)
    os.replace(cache_path(tmp_path, other), cache_path(tmp_path, KEY))  # as if two keys' names collided
    rebuilds_with_warning(tmp_path, build, r"holds the key .*\"seed\":9")


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    build = Builder()
    load_or_build(tmp_path, KEY, 1, build)
    good = cache_path(tmp_path, KEY).read_bytes()
    assert files(tmp_path) == [cache_path(tmp_path, KEY).name]

    # A writer that dies half-way (disk full, interrupt) leaves the old file whole and no temporary.
    def failing_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"), pytest.warns(CacheWarning, match="stale"):
        load_or_build(tmp_path, KEY, 2, build)  # stale: rebuilt, and the write fails
    assert files(tmp_path) == [cache_path(tmp_path, KEY).name]
    assert cache_path(tmp_path, KEY).read_bytes() == good
    monkeypatch.undo()

    # The file appears only by a rename of a finished temporary in the same directory.
    renames = []
    real_replace = os.replace

    def recording_replace(source, target):
        renames.append((Path(source), Path(target), Path(source).stat().st_size))
        real_replace(source, target)

    monkeypatch.setattr(cache_module.os, "replace", recording_replace)
    load_or_build(tmp_path, {**KEY, "seed": 3}, 1, build)
    [(source, target, size)] = renames
    assert source.parent == target.parent == tmp_path and source.name.startswith(f".{target.name}.")
    assert size == target.stat().st_size > 0
    assert not any(name.endswith(".tmp") for name in files(tmp_path))


def test_cache_dir_is_checked(tmp_path):
    assert check_cache_dir(tmp_path / "new" / "dir") == (tmp_path / "new" / "dir").resolve()
    package = Path(geoconv.__file__).parent
    with pytest.raises(GeoconvError, match=r"cache_dir .* lies inside the geoconv package"):
        translated_digits(16, limit=2, cache_dir=package / "data" / "cache")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(GeoconvError, match=r"cache_dir .*file.* is not a directory"):
        spherical_digits("healpix", 2, limit=2, cache_dir=a_file)
    with pytest.raises(GeoconvError, match=r"cache_dir must be a path"):
        check_cache_dir(3)


def test_data_sets_use_the_cache(tmp_path):
    start = time.perf_counter()
    built = spherical_digits("healpix", 8, split="train", rotated=True, limit=200, cache_dir=tmp_path)
    build_time = time.perf_counter() - start
    start = time.perf_counter()
    cached = spherical_digits("healpix", 8, split="train", rotated=True, limit=200, cache_dir=tmp_path)
    load_time = time.perf_counter() - start
    assert (built.from_cache, cached.from_cache) == (False, True)
    assert torch.equal(built.inputs, cached.inputs) and torch.equal(built.targets, cached.targets)
    assert torch.equal(built.rotations, cached.rotations)
    assert load_time < build_time
    # Any argument the data depend on is part of the key.
    assert not spherical_digits(
        "healpix", 8, split="train", rotated=True, seed=1, limit=200, cache_dir=tmp_path
    ).from_cache
    assert not spherical_digits("healpix", 8, split="test", rotated=True, limit=200, cache_dir=tmp_path).from_cache
    assert not spherical_digits("healpix", 8, split="train", rotated=True, limit=100, cache_dir=tmp_path).from_cache
    assert not spherical_digits("healpix", 4, split="train", rotated=True, limit=200, cache_dir=tmp_path).from_cache
    assert not spherical_digits("cubemap", 8, split="train", rotated=True, limit=200, cache_dir=tmp_path).from_cache
    plain = translated_digits(16, limit=5, cache_dir=tmp_path)
    again = translated_digits(16, limit=5, cache_dir=tmp_path)
    assert again.from_cache and torch.equal(plain.positions, again.positions)


def test_a_new_data_set_version_rebuilds_its_cache(tmp_path, monkeypatch):
    first = translated_digits(16, limit=5, cache_dir=tmp_path)
    # Patch the globals the builder reads: under --import-mode=importlib a doctest run of
    # geoconv/data/digits.py can leave a second module object behind the package attribute.
    namespace = translated_digits.__globals__
    monkeypatch.setitem(namespace, "VERSION", namespace["VERSION"] + 1)
    with pytest.warns(CacheWarning, match=r"stale"):
        rebuilt = translated_digits(16, limit=5, cache_dir=tmp_path)
    assert not rebuilt.from_cache and torch.equal(first.inputs, rebuilt.inputs)
    assert translated_digits(16, limit=5, cache_dir=tmp_path).from_cache
