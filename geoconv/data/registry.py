"""The data sets a training run can name (``data.kind``): a registry third parties extend.

A *data-set builder* takes the config's ``data`` group, the grid's name and its resolution
and returns :class:`Splits`: the training set, the test sets by tag, the number of classes
and the tag of the protocol's own test set. Builders are registered by name with
:func:`register_dataset` (the pattern of ops, grids and jobs: did-you-mean errors, a taken
name refused, entry points); third-party packages add data sets through the entry-point
group ``geoconv.datasets``.

======================  ===============================================  ====================
``data.kind``           train / test                                     test tags
======================  ===============================================  ====================
``spherical_digits``    ``split_protocol`` ``NR/NR`` or ``NR/R``: train  ``nr``, ``r``
                        unrotated; ``R/R``: train rotated. Both test
                        sets are always evaluated, so one run gives
                        NR/NR and NR/R (or R/R) together.
``spherical_mnist``     the same protocols on real MNIST (``mnist_dir``  ``nr``, ``r``
                        required) at s2cnn's scale (``cap`` 73.74°),
                        as Cohen et al. (2018) ran it
``translated_digits``   flat square images; digits at random positions   (one, unnamed)
``earth_segmentation``  train on the canonical orientation; test         ``nr``, ``r``
                        canonical and under random rotations
``folder``              a folder of your own maps (``path`` required;    (one, unnamed)
                        FITS, NetCDF, PNG/JPEG, .npy), classified by
                        ``labels.csv`` or segmented by ``masks/``; a
                        seeded ``test_fraction`` held out
                        (:mod:`geoconv.data.folder`)
======================  ===============================================  ====================

Data keys read (all optional): ``split_protocol``, ``limit`` (train samples),
``test_limit``, ``samples`` (Earth: canonical copies per epoch, default 1) and
``test_samples`` (Earth: random rotations tested, default 4), ``mnist_dir``, ``cap`` (the
digits' cap in degrees, :func:`geoconv.data.digits.spherical_digits`), ``cache_dir``,
``seed`` (the data's own seed, default 0). ``folder`` reads its own keys: ``path``,
``variable``, ``labels``, ``masks``, ``task``, ``npy_grid``, ``test_fraction``, ``seed``,
``cache_dir`` (:mod:`geoconv.data.folder`).

Examples
--------
>>> list_datasets()
['earth_segmentation', 'folder', 'spherical_digits', 'spherical_mnist', 'translated_digits']
>>> splits = get_dataset("translated_digits")({"limit": 4, "test_limit": 2}, "planar", 16)
>>> tuple(splits.train.inputs.shape), splits.classes, tuple(splits.tests)
((4, 1, 16, 16), 10, ('',))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from geoconv._registry import Registry
from geoconv.errors import ParameterError, unknown_name
from geoconv.grids import get_grid

__all__ = [
    "DATASETS",
    "DATA_KINDS",
    "ENTRY_POINT_GROUP",
    "PROTOCOLS",
    "Builder",
    "Splits",
    "consistency_pairs",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]

ENTRY_POINT_GROUP = "geoconv.datasets"
"""The entry-point group third-party packages declare their data sets under."""

PROTOCOLS = ("NR/NR", "NR/R", "R/R")
"""Spherical-digits split protocols (train rotation / test rotation)."""


@dataclass(frozen=True)
class Splits:
    """What a data-set builder returns.

    Attributes
    ----------
    train : Dataset
        The training set (the validation set is carved out of it).
    tests : dict of str to Dataset
        Test sets by tag (``{"nr": ..., "r": ...}``, or ``{"": ...}`` for one).
    classes : int
        Number of classes; 0 for (binary) segmentation.
    primary : str
        The tag of the protocol's own test set.
    consistency : callable, optional
        ``consistency() -> (first, second)``: the test set under two independent draws of
        its transformation, for the consistency metric of Zhang (2019); built only when
        called (two more test sets). ``None`` for data sets without such a pair.
    class_names : tuple of str
        One name per class, when the data set has names (``data=folder``); empty otherwise.
    standardize : (means, stds), optional
        Per-channel input statistics of the training split; the engine puts a
        :class:`~geoconv.nn.norm.Standardize` layer with them in front of the model (so
        the saved run applies them too). ``None``: inputs are used as they are.
    """

    train: Dataset
    tests: dict[str, Dataset] = field(default_factory=dict)
    classes: int = 0
    primary: str = ""
    consistency: Callable[[], tuple[Dataset, Dataset]] | None = None
    class_names: tuple[str, ...] = ()
    standardize: tuple[tuple[float, ...], tuple[float, ...]] | None = None


Builder = Callable[[Mapping[str, Any], str, int], Splits]
"""``build(data, grid, size) -> Splits``: ``data`` is the config's ``data`` group."""

DATASETS: Registry[Builder] = Registry("data set", ENTRY_POINT_GROUP)
"""Data-set name (``data.kind``) -> builder."""


def register_dataset(name: str, *, override: bool = False) -> Callable[[Builder], Builder]:
    """Register a data-set builder under ``name`` (a decorator).

    Examples
    --------
    >>> @register_dataset("tiny_digits")
    ... def tiny(data, grid, size):
    ...     return get_dataset("translated_digits")({**data, "limit": 2}, grid, size)
    >>> "tiny_digits" in list_datasets()
    True
    >>> _ = DATASETS.unregister("tiny_digits")
    """

    return DATASETS.decorator(name, override=override)


def get_dataset(name: str) -> Builder:
    """The builder registered as ``name``; an unknown name raises with the closest names."""
    return DATASETS.get(name)


def list_datasets(pattern: str = "*") -> list[str]:
    """Sorted names of the registered data sets (plugins included)."""
    return DATASETS.names(pattern)


def consistency_pairs(data: Mapping[str, Any], grid: str, size: int) -> tuple[Dataset, Dataset] | None:
    """The test set of ``data.kind`` under two independent draws of its transformation, or ``None``.

    Builds the data set first (from its disk cache when ``data.cache_dir`` has one); a
    training run uses :attr:`Splits.consistency` of the splits it already holds.
    """
    splits = get_dataset(data.get("kind"))(data, grid, size)
    return None if splits.consistency is None else splits.consistency()


def _classes(dataset: Dataset) -> int:
    return int(getattr(dataset, "classes", 0))


# Offsets of the data seed for the two draws of a consistency pair: far from the seeds the
# train and test sets use (seed, seed + 1), so the pair is independent of both.
_PAIR_OFFSETS = (101, 202)


def _spherical_splits(data: Mapping[str, Any], grid: str, size: int, **options: Any) -> Splits:
    """The NR/NR, NR/R and R/R splits of :func:`geoconv.data.digits.spherical_digits`."""
    from geoconv.data.digits import spherical_digits

    protocol = data.get("split_protocol", "NR/NR")
    if protocol not in PROTOCOLS:
        raise unknown_name("data.split_protocol", protocol, PROTOCOLS)
    seed, test_limit = data.get("seed", 0), data.get("test_limit")
    common = {"cache_dir": data.get("cache_dir"), **options}
    train = spherical_digits(
        grid, size, split="train", rotated=protocol == "R/R", limit=data.get("limit"), seed=seed, **common
    )
    tests = {
        tag: spherical_digits(grid, size, split="test", rotated=rotated, limit=test_limit, seed=seed, **common)
        for tag, rotated in (("nr", False), ("r", True))
    }

    def pair() -> tuple[Dataset, Dataset]:
        # Two sets of Haar-random rotations of the same test digits.
        first, second = (
            spherical_digits(grid, size, split="test", rotated=True, seed=seed + offset, limit=test_limit, **common)
            for offset in _PAIR_OFFSETS
        )
        return first, second

    return Splits(train, tests, _classes(train), "nr" if protocol == "NR/NR" else "r", pair)


@register_dataset("spherical_digits")
def _spherical_digits(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    return _spherical_splits(data, grid, size, mnist_dir=data.get("mnist_dir"))


@register_dataset("spherical_mnist")
def _spherical_mnist(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data.digits import S2CNN_CAP_DEGREES

    if data.get("mnist_dir") is None:
        raise ParameterError(
            "data.mnist_dir is not set: data=spherical_mnist reads real MNIST from its IDX files "
            "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; "
            "dashed or dotted names, plain or .gz) and never downloads; set data.mnist_dir=PATH or the "
            "environment variable GEOCONV_MNIST_DIR, or use data=spherical_digits (shipped with scikit-learn)"
        )
    return _spherical_splits(data, grid, size, mnist_dir=data["mnist_dir"], cap=data.get("cap", S2CNN_CAP_DEGREES))


@register_dataset("translated_digits")
def _translated_digits(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data.digits import translated_digits

    layout = get_grid(grid)
    # The digits are square images: any flat grid whose layout is (B, C, size, size) holds them.
    if layout.spherical or tuple(layout.shape(1, 1, size)) != (1, 1, size, size):
        raise ParameterError(
            f"data kind 'translated_digits' holds flat square images (B, C, size, size); it needs a flat grid "
            f"with that layout, e.g. grid=planar, got grid={grid!r}"
        )
    seed, cache_dir = data.get("seed", 0), data.get("cache_dir")
    train = translated_digits(size, split="train", limit=data.get("limit"), seed=seed, cache_dir=cache_dir)
    test = translated_digits(size, split="test", limit=data.get("test_limit"), seed=seed, cache_dir=cache_dir)

    def pair() -> tuple[Dataset, Dataset]:
        # Two sets of random positions of the same test digits.
        first, second = (
            translated_digits(size, split="test", seed=seed + offset, limit=data.get("test_limit"), cache_dir=cache_dir)
            for offset in _PAIR_OFFSETS
        )
        return first, second

    return Splits(train, {"": test}, _classes(train), "", pair)


@register_dataset("earth_segmentation")
def _earth_segmentation(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data.earth import earth_segmentation

    seed, cache_dir = data.get("seed", 0), data.get("cache_dir")
    samples = data.get("samples", 1)
    train = earth_segmentation(grid, size, rotated=False, samples=samples, seed=seed, cache_dir=cache_dir)
    # Canonical samples are copies of one image, so one is the whole canonical test set.
    tests = {
        "nr": earth_segmentation(grid, size, rotated=False, samples=1, seed=seed, cache_dir=cache_dir),
        "r": earth_segmentation(
            grid, size, rotated=True, samples=data.get("test_samples", 4), seed=seed + 1, cache_dir=cache_dir
        ),
    }
    return Splits(train, tests, 0, "nr")


@register_dataset("folder")
def _folder(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data.folder import folder_splits

    return folder_splits(data, grid, size)


DATA_KINDS: tuple[str, ...] = (
    "spherical_digits",
    "spherical_mnist",
    "translated_digits",
    "earth_segmentation",
    "folder",
)
"""The data sets shipped with geoconv; :func:`list_datasets` adds the registered plugins."""
