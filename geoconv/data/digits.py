r"""Handwritten digits on the sphere (the Spherical MNIST protocol) and on a planar canvas.

Projection onto the sphere
--------------------------
Following Cohen et al. (2018, "Spherical CNNs"), a planar digit is lifted onto a cap around
the north pole (:math:`+z`, colatitude 0) by the inverse stereographic projection. The
stereographic projection from the south pole onto the plane :math:`z = 1` tangent at the
north pole sends

.. math::

    v = (x, y, z) \mapsto (u, w) = \frac{2\,(x, y)}{1 + z}, \qquad
    \rho = \sqrt{u^2 + w^2} = 2 \tan\frac{\theta}{2},

(:math:`\theta` the colatitude, the direction of :math:`(u, w)` the longitude). The image lies
on that plane, centred on the pole, columns along :math:`+x` and rows down along
:math:`-y`, so that seen from outside above the north pole the digit reads as on paper
(not mirrored). Its *support* is a square of half-width :math:`a = 2\tan(\text{cap}/2)`
on the plane: the image padded with one ring of zeros has the ring's pixel centres on the
square's edges, so the bilinear interpolant of the image with zeros outside is exactly
zero beyond the square, and a pixel ``(r, c)`` of an ``h x w`` image (pitch
:math:`s = 2a/(\max(h, w) + 1)`) has its centre at

.. math::

    u = \left(c - \tfrac{w - 1}{2}\right) s, \qquad w = -\left(r - \tfrac{h - 1}{2}\right) s.

The cap is :data:`CAP_DEGREES` = 60°: the square's edge midpoints lie at colatitude 60°,
its corners at :math:`2\arctan(\sqrt2\tan 30°) \approx 78.5°`, so every digit stays in the
northern hemisphere and spans about 120° of arc. (s2cnn's projection for Cohen et al. 2018
is wider: the image spans ±1.5 on the plane tangent at the pole and is projected from the
opposite pole, :math:`\tan(\theta/2) = r/2`, so its edge midpoints lie at
:math:`2\arctan 0.75 \approx 73.7°`: :data:`S2CNN_CAP_DEGREES`, the ``cap`` of
``data=spherical_mnist``. s2cnn samples its 28 pixels from the square's edge, one pitch
``3/28``, off centre by half a pitch; here the ring of zeros sits on the edge, pitch ``3/29``, centred:
a digit 3.4% smaller.) Each grid pixel centre :math:`v` takes the bilinear
sample of the image at the projection of :math:`v`; under a rotation :math:`R` it takes the
sample at the projection of :math:`R^\top v`, exactly: rotated samples are evaluated, not
resampled from an unrotated grid.

Data
----
:func:`spherical_digits` projects scikit-learn's 1797 handwritten digits (8x8, values
0..16, scaled to [0, 1]) or, given ``mnist_dir``, real MNIST read from its IDX files
(:func:`read_idx`, values 0..255 scaled to [0, 1]). scikit-learn's digits are split once
and for all, whatever the ``seed``: 20% of each class (rounded) go to ``test``, drawn
with ``numpy.random.default_rng(0)``, then both splits are shuffled with it (so a
``limit`` keeps a mix of classes): 1438 train and 359 test images. ``seed`` drives only
the random rotations (and the canvas positions of :func:`translated_digits`). The
protocol's settings are

======  ===============================  ===============================
name    train                            test
======  ===============================  ===============================
NR/NR   ``split="train"``                ``split="test"``
NR/R    ``split="train"``                ``split="test", rotated=True``
R/R     ``split="train", rotated=True``  ``split="test", rotated=True``
======  ===============================  ===============================

:func:`translated_digits` places scikit-learn's 8x8 digits, not upsampled, at uniformly
random positions on a larger zero canvas (planar consistency experiments).

Public names: :data:`CAP_DEGREES`, :func:`project_to_sphere`, :func:`read_idx`,
:func:`spherical_digits`, :func:`translated_digits`.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geoconv._checks import check_bool, check_float, check_int, check_tensor
from geoconv.data.base import (
    SignalDataset,
    check_limit,
    check_spherical,
    check_split,
    derived_seed,
    haar_rotations,
)
from geoconv.data.cache import check_cache_dir, load_or_build
from geoconv.errors import GeoconvError, ParameterError

__all__ = [
    "CAP_DEGREES",
    "S2CNN_CAP_DEGREES",
    "VERSION",
    "project_to_sphere",
    "read_idx",
    "spherical_digits",
    "translated_digits",
]

CAP_DEGREES = 60.0
"""Colatitude (degrees) of the midpoints of the edges of a digit's support square."""

S2CNN_CAP_DEGREES = math.degrees(2.0 * math.atan(0.75))
"""s2cnn's scale (Cohen et al. 2018): the image spans ±1.5 on the plane tangent at the pole,
projected from the opposite pole, so its edge midpoints lie at :math:`2\arctan 0.75 \approx 73.74°`."""

VERSION = 1
"""The generation version of the digit data sets; cache files of another version are rebuilt."""

SPLIT_SEED = 0
TEST_FRACTION = 0.2
DIGIT_SIDE = 8

_IDX_MAGIC = {0x00000801: "labels", 0x00000803: "images"}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Samples per grid_sample call: bounds the (samples, pixels, 1, 2) coordinate tensor.
_CHUNK_POINTS = 1 << 22


# -- IDX files ---------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (MNIST's format), checking it strictly.

    The header is a big-endian magic number, ``0x00000801`` (a 1-D array: labels) or
    ``0x00000803`` (a 3-D array: images), then one big-endian uint32 per dimension; the
    body holds exactly the product of the dimensions in bytes. A name ending in ``.gz`` is
    decompressed first.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(N,)`` for labels or ``(N, rows, cols)`` for images.

    Raises
    ------
    GeoconvError
        Naming the file: it does not exist, cannot be decompressed, has another magic
        number, or its body is truncated or longer than its header says.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "labels-idx1-ubyte"
    ...     _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    ...     read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    if not path.is_file():
        raise GeoconvError(f"IDX file {str(path)!r} does not exist (or is not a file)")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise GeoconvError(f"IDX file {str(path)!r} cannot be read: {err}") from None
    if len(data) < 4:
        raise GeoconvError(
            f"IDX file {str(path)!r} is truncated: {len(data)} bytes, fewer than its 4-byte magic number"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic not in _IDX_MAGIC:
        raise GeoconvError(
            f"IDX file {str(path)!r} has the magic number 0x{magic:08x}, expected 0x00000801 (labels) "
            "or 0x00000803 (images) of unsigned bytes"
        )
    ndim = data[3]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise GeoconvError(
            f"IDX file {str(path)!r} is truncated: its header needs {start} bytes for {ndim} dimensions, "
            f"the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:start])
    expected, found = math.prod(shape), len(data) - start
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise GeoconvError(
            f"IDX file {str(path)!r} has a body of {found} bytes, expected {expected} for its "
            f"{_IDX_MAGIC[magic]} of shape {shape}: the file is {what}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape).copy()


def _mnist_names(name: str) -> tuple[str, ...]:
    """The file names tried for MNIST's ``name``, in order: dashed, then dotted, each plain then gzipped.

    MNIST's own site names the files ``train-images-idx3-ubyte``; copies from elsewhere (Kaggle,
    some mirrors) name them ``train-images.idx3-ubyte``. Both hold the same IDX bytes.

    >>> _mnist_names("t10k-labels-idx1-ubyte")
    ('t10k-labels-idx1-ubyte', 't10k-labels-idx1-ubyte.gz', 't10k-labels.idx1-ubyte', 't10k-labels.idx1-ubyte.gz')
    """
    stem, _, kind = name.rpartition("-idx")
    dotted = f"{stem}.idx{kind}"
    return (name, f"{name}.gz", dotted, f"{dotted}.gz")


def _mnist_paths(mnist_dir: object, split: str) -> tuple[Path, Path]:
    """The images and labels files of ``split`` in ``mnist_dir``.

    Each file is looked for under the names of :func:`_mnist_names` (dashed or dotted, plain or
    ``.gz``), the first that exists wins; none existing is a :class:`GeoconvError` that names
    every name tried.
    """
    if not isinstance(mnist_dir, str | os.PathLike):
        raise GeoconvError(f"mnist_dir must be a path (str or os.PathLike) or None, got {type(mnist_dir).__name__}")
    directory = Path(mnist_dir).expanduser()
    if not directory.is_dir():
        raise GeoconvError(f"mnist_dir {str(directory)!r} does not exist (or is not a directory)")
    found = []
    for name in _MNIST_FILES[split]:
        names = _mnist_names(name)
        existing = [directory / n for n in names if (directory / n).is_file()]
        if not existing:
            raise GeoconvError(
                f"mnist_dir {str(directory)!r} has no MNIST {split} "
                f"{'images' if '-images' in name else 'labels'} file for split {split!r}: tried "
                f"{', '.join(names)} (IDX files of unsigned bytes, as on MNIST's site, plain or gzipped)"
            )
        found.append(existing[0].resolve())
    return found[0], found[1]


def _load_mnist(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, rows, cols)`` float32 in [0, 1] and labels ``(N,)`` int64, checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise GeoconvError(f"IDX file {str(images_path)!r} holds an array of shape {images.shape}, expected images")
    if labels.ndim != 1:
        raise GeoconvError(f"IDX file {str(labels_path)!r} holds an array of shape {labels.shape}, expected labels")
    if len(images) != len(labels):
        raise GeoconvError(
            f"IDX files {str(images_path)!r} and {str(labels_path)!r} hold {len(images)} images "
            f"but {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise GeoconvError(f"IDX file {str(labels_path)!r} holds the label {labels.max()}, expected digits 0..9")
    return torch.from_numpy(images).float() / 255.0, torch.from_numpy(labels).long()


# -- scikit-learn's digits -----------------------------------------------------------------


@lru_cache(maxsize=1)
def _sklearn_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits as ``{split: (images (N, 8, 8) float32 in [0, 1], labels (N,) int64)}``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    in_test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        in_test[rng.permutation(members)[: round(TEST_FRACTION * len(members))]] = True
    order = rng.permutation(len(labels))
    splits = {"train": order[~in_test[order]], "test": order[in_test[order]]}
    result = {}
    for name, index in splits.items():
        chosen_images, chosen_labels = images[index], labels[index]
        chosen_images.flags.writeable = chosen_labels.flags.writeable = False
        result[name] = (chosen_images, chosen_labels)
    return result


def _sklearn_digits(split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _sklearn_splits()[split]
    return torch.tensor(images[:limit]), torch.tensor(labels[:limit])


# -- the projection ----------------------------------------------------------------------


def _check_cap(cap: object) -> float:
    """``cap`` as a float colatitude in degrees, strictly between 0 and 180."""
    cap = check_float("cap", cap)
    if not 0.0 < cap < 180.0:
        raise ParameterError(f"cap must be a colatitude in degrees in (0, 180), got {cap}")
    return cap


def project_to_sphere(
    images: torch.Tensor,
    vectors: np.ndarray | torch.Tensor,
    rotations: torch.Tensor | None = None,
    cap: float = CAP_DEGREES,
) -> torch.Tensor:
    r"""Sample planar images lifted onto a cap around the north pole at points on the sphere.

    Image ``i`` is placed on the plane tangent at the north pole and evaluated at the
    stereographic projection of :math:`R_i^\top v` for every point :math:`v` (see the
    module docstring): bilinear, zero outside the image.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, h, w)``, real.
    vectors : numpy.ndarray or torch.Tensor
        ``(*shape, 3)`` unit vectors, e.g. a grid's pixel centres ``grid.vectors(size)``.
    rotations : torch.Tensor, optional
        ``(N, 3, 3)`` rotation matrices; ``None`` for the identity.
    cap : float
        Colatitude in degrees of the midpoints of the edges of the image's support square,
        in ``(0, 180)``.

    Returns
    -------
    torch.Tensor
        ``(N, *shape)`` float32.

    Examples
    --------
    >>> image = torch.zeros(1, 8, 8)
    >>> image[0, 3:5, 3:5] = 1.0                         # the four central pixels
    >>> pole_and_equator = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    >>> project_to_sphere(image, pole_and_equator)
    tensor([[1., 0.]])
    """
    images = check_tensor(images, ndim=3, name="images", layout="(N, h, w)")
    cap = _check_cap(cap)
    points = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ParameterError(f"vectors must have shape (..., 3), got {tuple(points.shape)}")
    count, height, width = images.shape
    if rotations is not None:
        rotations = check_tensor(rotations, ndim=3, name="rotations", layout="(N, 3, 3)").to(torch.float64)
        if tuple(rotations.shape) != (count, 3, 3):
            raise ParameterError(f"rotations must have shape {(count, 3, 3)}, got {tuple(rotations.shape)}")
    shape = points.shape[:-1]
    flat = points.reshape(-1, 3)
    half = 2.0 * math.tan(math.radians(cap) / 2.0)
    pitch = 2.0 * half / (max(height, width) + 1)
    half_x, half_y = pitch * (width + 1) / 2.0, pitch * (height + 1) / 2.0
    # One ring of zeros whose centres sit on the support square's edges: with align_corners
    # the normalised coordinate +-1 is exactly the edge, and the interpolant is 0 beyond it.
    padded = F.pad(images.to(torch.float64), (1, 1, 1, 1)).unsqueeze(1)
    out = torch.empty(count, flat.shape[0], dtype=torch.float32)
    step = max(1, _CHUNK_POINTS // max(1, flat.shape[0]))
    for start in range(0, count, step):
        stop = min(count, start + step)
        # Row vectors v^T R are (R^T v)^T: where each pixel's value comes from.
        source = flat.expand(stop - start, -1, -1) if rotations is None else flat @ rotations[start:stop]
        x, y, z = source.unbind(-1)
        denominator = 1.0 + z
        # The south pole projects to infinity: put it (and its round-off neighbourhood) outside.
        far = denominator < 1e-12
        safe = torch.where(far, torch.ones_like(denominator), denominator)
        gx = torch.where(far, 2.0, (2.0 * x / safe / half_x).clamp(-2.0, 2.0))
        gy = torch.where(far, 2.0, (-2.0 * y / safe / half_y).clamp(-2.0, 2.0))
        coordinates = torch.stack([gx, gy], dim=-1).unsqueeze(2)
        sampled = F.grid_sample(
            padded[start:stop], coordinates, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        out[start:stop] = sampled[:, 0, :, 0].float()
    return out.reshape(count, *shape)


# -- the data sets -----------------------------------------------------------------------


def _fingerprint(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def spherical_digits(
    grid: str,
    size: int,
    *,
    split: str = "train",
    rotated: bool = False,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    mnist_dir: str | os.PathLike | None = None,
    cap: float = CAP_DEGREES,
) -> SignalDataset:
    """Handwritten digits projected onto a cap around the north pole (Spherical MNIST).

    See the module docstring for the projection, the cap and the split.

    Parameters
    ----------
    grid : str
        ``"equirect"``, ``"cubemap"`` or ``"healpix"`` (the plane is refused).
    size : int
        The grid's resolution: ``H`` on equirect (``W = 2H``), the face side on the cube,
        nside (a power of two) on HEALPix.
    split : {"train", "test"}
        scikit-learn's fixed 80/20 stratified split, or MNIST's train and t10k files.
    rotated : bool
        Apply an independent Haar-random rotation to each sample (evaluated exactly at the
        rotated pixel centres); the rotations are in ``dataset.rotations``.
    seed : int
        Seeds the rotations (independent streams for train and test); >= 0.
    cache_dir : str or os.PathLike, optional
        A directory for the disk cache (:mod:`geoconv.data.cache`); ``None``: no cache.
    limit : int, optional
        Keep the first ``limit`` samples of the split (they do not depend on ``limit``).
    mnist_dir : str or os.PathLike, optional
        A directory with MNIST's IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
        or dotted as ``train-images.idx3-ubyte``, each optionally ``.gz``), used instead of
        scikit-learn's digits.
    cap : float
        Colatitude in degrees of the edge midpoints of a digit's support square, in (0, 180):
        :data:`CAP_DEGREES` (60°, the default) or :data:`S2CNN_CAP_DEGREES` (s2cnn's scale).

    Returns
    -------
    SignalDataset
        ``inputs`` ``(N, 1, *spatial)`` float32 in [0, 1] in the grid's layout, ``targets``
        ``(N,)`` int64 in 0..9, ``classes`` 10, ``name`` ``"spherical_digits"`` (or
        ``"spherical_mnist"``), ``rotations`` ``(N, 3, 3)`` when rotated.

    Raises
    ------
    GeoconvError
        Before any work, for an unknown or planar grid, a resolution the grid cannot take,
        an unknown split, a bad seed or limit, a cache_dir inside the package, or an
        mnist_dir that does not exist or lacks a file; when reading, for a malformed IDX file.

    Examples
    --------
    >>> data = spherical_digits("healpix", 2, split="test", rotated=True, limit=3)
    >>> data.inputs.shape, data.targets.dtype, data.rotations.shape
    (torch.Size([3, 1, 12, 2, 2]), torch.int64, torch.Size([3, 3, 3]))
    """
    sphere, size = check_spherical(grid, size, "spherical_digits")
    split = check_split(split)
    rotated = check_bool("rotated", rotated)
    seed = check_int("seed", seed, minimum=0)
    limit = check_limit(limit)
    cap = _check_cap(cap)
    check_cache_dir(cache_dir)
    paths = None if mnist_dir is None else _mnist_paths(mnist_dir, split)
    source: Any = "sklearn" if paths is None else [_fingerprint(p) for p in paths]
    key = {
        "dataset": "spherical_digits",
        "source": source,
        "grid": sphere.name,
        "size": size,
        "split": split,
        "rotated": rotated,
        "seed": seed if rotated else None,
        "limit": limit,
        "cap": cap,
    }

    def build() -> dict[str, torch.Tensor]:
        if paths is None:
            images, labels = _sklearn_digits(split, limit)
        else:
            images, labels = _load_mnist(*paths)
            images, labels = images[:limit], labels[:limit]
        tensors = {"targets": labels}
        rotations = None
        if rotated:
            rotations = haar_rotations(len(images), derived_seed(seed, "spherical_digits", "rotations", split))
            tensors["rotations"] = rotations
        projected = project_to_sphere(images, sphere.vectors(size), rotations, cap)
        tensors["inputs"] = projected.unsqueeze(1).contiguous()
        return tensors

    tensors, from_cache = load_or_build(cache_dir, key, VERSION, build)
    return SignalDataset(
        inputs=tensors["inputs"],
        targets=tensors["targets"],
        grid=sphere.name,
        size=size,
        classes=10,
        name="spherical_digits" if paths is None else "spherical_mnist",
        rotations=tensors.get("rotations"),
        from_cache=from_cache,
    )


def translated_digits(
    size: int = 32,
    *,
    split: str = "train",
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> SignalDataset:
    """scikit-learn's 8x8 digits at random positions on a ``size x size`` zero canvas (planar).

    Each digit is pasted as it is (not upsampled), its top-left corner at a position drawn
    uniformly from ``0 .. size - 8`` in each axis, independently per sample.

    Parameters
    ----------
    size : int
        The canvas side, >= 8.
    split : {"train", "test"}
        scikit-learn's fixed 80/20 stratified split (as :func:`spherical_digits`).
    seed : int
        Seeds the positions (independent streams for train and test); >= 0.
    limit : int, optional
        Keep the first ``limit`` samples (they do not depend on ``limit``).
    cache_dir : str or os.PathLike, optional
        A directory for the disk cache; ``None``: no cache.

    Returns
    -------
    SignalDataset
        ``inputs`` ``(N, 1, size, size)`` float32 in [0, 1], ``targets`` ``(N,)`` int64,
        ``grid`` ``"planar"``, ``classes`` 10, ``positions`` ``(N, 2)`` int64: the
        ``(row, col)`` of each digit's top-left pixel on the canvas.

    Examples
    --------
    >>> data = translated_digits(12, split="test", limit=2)
    >>> data.inputs.shape, data.positions.tolist() == data.positions.clamp(0, 4).tolist()
    (torch.Size([2, 1, 12, 12]), True)
    """
    size = check_int("size", size, minimum=DIGIT_SIDE)
    split = check_split(split)
    seed = check_int("seed", seed, minimum=0)
    limit = check_limit(limit)
    check_cache_dir(cache_dir)
    key = {"dataset": "translated_digits", "grid": "planar", "size": size, "split": split, "seed": seed, "limit": limit}

    def build() -> dict[str, torch.Tensor]:
        images, labels = _sklearn_digits(split, limit)
        count = len(images)
        generator = torch.Generator().manual_seed(derived_seed(seed, "translated_digits", "positions", split))
        positions = torch.randint(0, size - DIGIT_SIDE + 1, (count, 2), generator=generator)
        canvas = torch.zeros(count, size, size)
        offsets = torch.arange(DIGIT_SIDE)
        rows = positions[:, 0, None, None] + offsets[None, :, None]
        cols = positions[:, 1, None, None] + offsets[None, None, :]
        canvas[torch.arange(count)[:, None, None], rows, cols] = images
        return {"inputs": canvas.unsqueeze(1), "targets": labels, "positions": positions}

    tensors, from_cache = load_or_build(cache_dir, key, VERSION, build)
    return SignalDataset(
        inputs=tensors["inputs"],
        targets=tensors["targets"],
        grid="planar",
        size=size,
        classes=10,
        name="translated_digits",
        positions=tensors["positions"],
        from_cache=from_cache,
    )
