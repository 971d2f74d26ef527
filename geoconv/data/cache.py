"""A disk cache of built data sets: one validated file per key, written atomically.

Building a data set (projecting 60 000 digits, resampling the Blue Marble image) costs
seconds to minutes; reading it back costs milliseconds. Each data set is stored as one file
``<dataset>-<hash of the key>.pt`` under ``cache_dir``: a ``torch.save`` of plain tensors and
a header,

.. code-block:: python

    {"header": {"format": CACHE_FORMAT, "version": 3, "key": '{"dataset": ..., "grid": ...}',
                "shapes": {"inputs": [N, C, ...], ...}, "dtypes": {"inputs": "torch.float32", ...},
                "checksum": "<sha256 of every tensor's name, dtype, shape and bytes>"},
     "tensors": {"inputs": ..., "targets": ..., ...}}

read back with ``torch.load(weights_only=True)`` (no code runs on load). A file is used only
if it loads, its format, data set version and key are the expected ones, and its tensors
have the recorded shapes, dtypes and checksum; otherwise it is rebuilt and rewritten, with
a :class:`CacheWarning` saying why. The data set version is not in the file name, so a
stale file is found, reported and replaced rather than left behind.

Writes go to a temporary file in the same directory, then :func:`os.replace`
(:func:`geoconv._io.atomic_write`): a reader (another process, another DDP rank) sees the
old file or the new one, never half of one.

Public names: :data:`CACHE_FORMAT`, :class:`CacheWarning`, :func:`cache_path`,
:func:`check_cache_dir`, :func:`load_or_build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from geoconv._io import atomic_write
from geoconv.errors import GeoconvError

__all__ = ["CACHE_FORMAT", "CacheWarning", "cache_path", "check_cache_dir", "load_or_build"]

CACHE_FORMAT = 1
"""The layout of a cache file; bumped when the header or the payload layout changes."""

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class CacheWarning(UserWarning):
    """A cache file was missing a piece, stale or corrupt, and was rebuilt."""


class _Invalid(Exception):
    """Why a cache file cannot be used (internal: turned into a warning and a rebuild)."""


def check_cache_dir(cache_dir: object) -> Path | None:
    """Return ``cache_dir`` as an absolute :class:`~pathlib.Path` (``None`` passes: no cache).

    The directory is created on first write. It must not be a file, and must not lie inside
    the installed ``geoconv`` package (data belong under the run's output directory).

    >>> check_cache_dir(None) is None
    True
    >>> check_cache_dir(_PACKAGE_DIR / "cache")
    Traceback (most recent call last):
    ...
    geoconv.errors.GeoconvError: cache_dir ... lies inside the geoconv package ...; choose a directory ...
    """
    if cache_dir is None:
        return None
    if not isinstance(cache_dir, str | os.PathLike):
        raise GeoconvError(f"cache_dir must be a path (str or os.PathLike) or None, got {type(cache_dir).__name__}")
    path = Path(cache_dir).expanduser().resolve()
    if path == _PACKAGE_DIR or _PACKAGE_DIR in path.parents:
        raise GeoconvError(
            f"cache_dir {str(path)!r} lies inside the geoconv package ({_PACKAGE_DIR}); "
            "choose a directory under the run's output directory"
        )
    if path.exists() and not path.is_dir():
        raise GeoconvError(f"cache_dir {str(path)!r} exists and is not a directory")
    return path


def _canonical_key(key: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(key), sort_keys=True, separators=(",", ":"))
    except TypeError as err:
        raise GeoconvError(
            f"a cache key must hold JSON values only (str, int, float, bool, None, lists): {err}"
        ) from None


def cache_path(cache_dir: str | os.PathLike, key: Mapping[str, Any]) -> Path:
    """The file that holds the data set ``key`` (a mapping with a ``"dataset"`` entry).

    >>> cache_path("/tmp/cache", {"dataset": "toy", "size": 4}).name
    'toy-002730c79a78f25c.pt'
    """
    canonical = _canonical_key(key)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{key.get('dataset', 'data')}-{digest}.pt"


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _header(key: str, version: int, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "version": version,
        "key": key,
        "shapes": {name: list(t.shape) for name, t in tensors.items()},
        "dtypes": {name: str(t.dtype) for name, t in tensors.items()},
        "checksum": _checksum(tensors),
    }


def _write(path: Path, key: str, version: int, tensors: Mapping[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    payload = {"header": _header(key, version, plain), "tensors": plain}
    # A half-written temporary is removed on any failure (an interrupt included).
    atomic_write(path, lambda handle: torch.save(payload, handle))


def _read(path: Path, key: str, version: int) -> dict[str, torch.Tensor]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to read means the file cannot be trusted
        raise _Invalid(f"it cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("header"), dict):
        raise _Invalid("it has no header")
    header, tensors = payload["header"], payload.get("tensors")
    if header.get("format") != CACHE_FORMAT:
        raise _Invalid(f"its cache format is {header.get('format')!r}, expected {CACHE_FORMAT}")
    if header.get("version") != version:
        raise _Invalid(f"it was built by data set version {header.get('version')!r}, expected {version} (stale)")
    if header.get("key") != key:
        raise _Invalid(f"it holds the key {header.get('key')!r}, expected {key!r}")
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise _Invalid("its payload is not a dict of tensors")
    shapes = {name: list(t.shape) for name, t in tensors.items()}
    dtypes = {name: str(t.dtype) for name, t in tensors.items()}
    if shapes != header.get("shapes") or dtypes != header.get("dtypes"):
        raise _Invalid(
            f"its tensors {shapes} {dtypes} differ from its header {header.get('shapes')} {header.get('dtypes')}"
        )
    if _checksum(tensors) != header.get("checksum"):
        raise _Invalid("its payload does not match its checksum (corrupt)")
    return tensors


def load_or_build(
    cache_dir: str | os.PathLike | None,
    key: Mapping[str, Any],
    version: int,
    build: Callable[[], dict[str, torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], bool]:
    """The tensors of the data set ``key``: from the cache when valid, else built (and stored).

    Parameters
    ----------
    cache_dir : str or os.PathLike or None
        The cache directory (created when needed); ``None`` builds every time.
    key : mapping
        Everything the data depend on, JSON values only, with a ``"dataset"`` entry (the
        file name's prefix): grid, size, split, rotated, seed, limit, ...
    version : int
        The data set's generation version; a file written by another version is stale.
    build : callable
        Returns the tensors (a dict of name to tensor) when the cache cannot serve them.

    Returns
    -------
    tensors : dict of str to torch.Tensor
        The data set's tensors, on the CPU.
    from_cache : bool
        Whether they were read from the cache.

    Warns
    -----
    CacheWarning
        When a file exists but cannot be used (unreadable, truncated, another format or
        version, another key, wrong shapes or checksum); it is then rebuilt and replaced.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = load_or_build(tmp, {"dataset": "toy"}, 1, lambda: {"x": torch.arange(3)})
    ...     second = load_or_build(tmp, {"dataset": "toy"}, 1, lambda: {"x": torch.arange(3)})
    >>> first[1], second[1], torch.equal(first[0]["x"], second[0]["x"])
    (False, True, True)
    """
    path = check_cache_dir(cache_dir)
    if path is None:
        return build(), False
    canonical = _canonical_key(key)
    target = cache_path(path, key)
    if target.exists():
        try:
            return _read(target, canonical, version), True
        except _Invalid as why:
            warnings.warn(f"cache file {target} is not used because {why}; rebuilding it", CacheWarning, stacklevel=2)
    tensors = build()
    _write(target, canonical, version, tensors)
    return tensors, False
