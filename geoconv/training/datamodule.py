"""The LightningDataModule: the config's ``data`` group as train, validation and test sets.

:class:`SignalDataModule` builds the data sets of :mod:`geoconv.data` on the config's grid
and resolution, from an allow-list of kinds (:data:`DATA_KINDS`):

======================  ===============================================  ====================
``data.kind``           train / test                                     test tags
======================  ===============================================  ====================
``spherical_digits``    ``split_protocol`` ``NR/NR`` or ``NR/R``: train  ``nr``, ``r``
                        unrotated; ``R/R``: train rotated. Both test
                        sets are always evaluated, so one run gives
                        NR/NR and NR/R (or R/R) together.
``translated_digits``   planar only; digits at random canvas positions   (one, unnamed)
``earth_segmentation``  train on the canonical orientation; test         ``nr``, ``r``
                        canonical and under random rotations
======================  ===============================================  ====================

The protocol's own test set is the *primary* one (``NR/NR``: ``nr``, ``NR/R`` and ``R/R``:
``r``), which the engine also reports without a tag (``test/acc``).

The validation set is a seeded random ``trainer.val_fraction`` of the training set; when
that holds no sample (a single Earth image), validation runs on the training set itself.

Training batches are shuffled by :class:`EpochSampler`: a permutation seeded by
``seed + epoch``, so a run resumed from a checkpoint sees the very batches an
uninterrupted run would have seen.

Data keys read (all optional except ``kind``): ``split_protocol``, ``limit`` (train
samples), ``test_limit``, ``samples`` (Earth: canonical copies per epoch, default 1) and
``test_samples`` (Earth: random rotations tested, default 4), ``mnist_dir``,
``cache_dir``, ``seed`` (the data's own seed, default 0, so that sweeping the top-level
``seed`` changes the initialisation and the batch order, not the data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from geoconv._checks import check_int
from geoconv.errors import GeoconvError, ParameterError, unknown_name

__all__ = [
    "consistency_pairs",
    "DATA_KINDS",
    "PROTOCOLS",
    "BUILDERS",
    "EpochSampler",
    "SignalDataModule",
    "Splits",
    "check_batch_size",
]

PROTOCOLS = ("NR/NR", "NR/R", "R/R")
"""Spherical-digits split protocols (train rotation / test rotation)."""


@dataclass(frozen=True)
class Splits:
    """What a data builder returns.

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
    """

    train: Dataset
    tests: dict[str, Dataset] = field(default_factory=dict)
    classes: int = 0
    primary: str = ""


Builder = Callable[[Mapping[str, Any], str, int], Splits]


def _classes(dataset: Dataset) -> int:
    return int(getattr(dataset, "classes", 0))


def _spherical_digits(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data import spherical_digits

    protocol = data.get("split_protocol", "NR/NR")
    if protocol not in PROTOCOLS:
        raise unknown_name("data.split_protocol", protocol, PROTOCOLS)
    common = {"seed": data.get("seed", 0), "cache_dir": data.get("cache_dir"), "mnist_dir": data.get("mnist_dir")}
    train = spherical_digits(grid, size, split="train", rotated=protocol == "R/R", limit=data.get("limit"), **common)
    tests = {
        tag: spherical_digits(grid, size, split="test", rotated=rotated, limit=data.get("test_limit"), **common)
        for tag, rotated in (("nr", False), ("r", True))
    }
    return Splits(train, tests, _classes(train), "nr" if protocol == "NR/NR" else "r")


def _translated_digits(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data import translated_digits

    if grid != "planar":
        raise ParameterError(f"data kind 'translated_digits' is planar; it needs grid=planar, got grid={grid!r}")
    common = {"seed": data.get("seed", 0), "cache_dir": data.get("cache_dir")}
    train = translated_digits(size, split="train", limit=data.get("limit"), **common)
    test = translated_digits(size, split="test", limit=data.get("test_limit"), **common)
    return Splits(train, {"": test}, _classes(train), "")


def _earth_segmentation(data: Mapping[str, Any], grid: str, size: int) -> Splits:
    from geoconv.data import earth_segmentation

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


def consistency_pairs(data: Mapping[str, Any], grid: str, size: int) -> tuple[Dataset, Dataset] | None:
    """The test set under two independent draws of its transformation, for classification kinds.

    Spherical digits: two sets of Haar-random rotations of the same test digits; translated
    digits: two sets of random positions. ``None`` for kinds without such a pair.
    """
    seed, limit, cache_dir = data.get("seed", 0), data.get("test_limit"), data.get("cache_dir")
    if data.get("kind") == "spherical_digits":
        from geoconv.data import spherical_digits

        return tuple(  # type: ignore[return-value]
            spherical_digits(
                grid,
                size,
                split="test",
                rotated=True,
                seed=seed + offset,
                limit=limit,
                cache_dir=cache_dir,
                mnist_dir=data.get("mnist_dir"),
            )
            for offset in (101, 202)
        )
    if data.get("kind") == "translated_digits":
        from geoconv.data import translated_digits

        return tuple(  # type: ignore[return-value]
            translated_digits(size, split="test", seed=seed + offset, limit=limit, cache_dir=cache_dir)
            for offset in (101, 202)
        )
    return None


BUILDERS: dict[str, Builder] = {
    "spherical_digits": _spherical_digits,
    "translated_digits": _translated_digits,
    "earth_segmentation": _earth_segmentation,
}
"""Data kinds the training path can build, by ``data.kind`` (an allow-list)."""

DATA_KINDS = tuple(BUILDERS)
"""The data kinds a training config may name."""


def check_batch_size(value: object) -> int:
    """``trainer.batch_size`` as a positive integer, or a :class:`~geoconv.errors.GeoconvError`."""
    return check_int("trainer.batch_size", value, minimum=1)


class EpochSampler(Sampler[int]):
    """A random permutation of ``range(n)`` per epoch, seeded by ``seed + epoch``.

    Lightning calls :meth:`set_epoch` before every epoch (as for a ``DistributedSampler``),
    so the order of epoch ``k`` depends only on ``seed`` and ``k``: what a resumed run
    needs to repeat an uninterrupted one.

    Examples
    --------
    >>> sampler = EpochSampler(5, seed=0)
    >>> first = list(sampler); sampler.set_epoch(1)
    >>> sorted(first) == sorted(sampler) == [0, 1, 2, 3, 4] and list(EpochSampler(5, seed=0)) == first
    True
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class SignalDataModule(lightning.LightningDataModule):
    """Train, validation and test loaders of one ``data`` config on one grid.

    Parameters
    ----------
    data : mapping
        The config's ``data`` group (``kind`` and the keys of the module docstring).
    grid : str
        The grid the signals are sampled on.
    size : int
        The grid's resolution (``grid.size``).
    batch_size : int
        Samples per batch (> 0; checked here, before anything is built).
    num_workers : int
        DataLoader worker processes (0: load in the main process).
    val_fraction : float
        Share of the training set held out for validation, in ``[0, 1)``.
    seed : int
        Seeds the validation split and the shuffling of training batches.

    Raises
    ------
    GeoconvError
        For a batch size < 1, an unknown data kind or protocol, or a bad fraction.

    Examples
    --------
    >>> SignalDataModule({"kind": "spherical_digits"}, "healpix", 8, batch_size=0)
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: trainer.batch_size must be an integer >= 1, got 0
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        grid: str,
        size: int,
        *,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = check_batch_size(batch_size)
        self.num_workers = check_int("trainer.num_workers", num_workers, minimum=0)
        if not (isinstance(val_fraction, int | float) and 0 <= val_fraction < 1):
            raise ParameterError(f"trainer.val_fraction must be a number in [0, 1), got {val_fraction!r}")
        self.data = dict(data)
        kind = self.data.get("kind")
        if kind not in BUILDERS:
            raise unknown_name("data kind (for training)", kind, BUILDERS)
        if kind == "spherical_digits" and self.data.get("split_protocol", "NR/NR") not in PROTOCOLS:
            raise unknown_name("data.split_protocol", self.data.get("split_protocol"), PROTOCOLS)
        self.kind, self.grid, self.size = str(kind), grid, size
        self.val_fraction, self.seed = float(val_fraction), int(seed)
        self.splits: Splits | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @classmethod
    def from_config(cls, plain: Mapping[str, Any]) -> SignalDataModule:
        """The data module of a validated config (``data``, ``grid``, ``trainer``, ``seed``)."""
        trainer = plain.get("trainer") or {}
        return cls(
            plain["data"],
            plain["grid"]["name"],
            plain["grid"]["size"],
            batch_size=trainer.get("batch_size", 32),
            num_workers=trainer.get("num_workers", 0),
            val_fraction=trainer.get("val_fraction", 0.1),
            seed=plain.get("seed", 0),
        )

    # -- building -----------------------------------------------------------------------------

    def prepare_data(self) -> None:
        # Runs on one process per node first under DDP, so an on-disk cache is written once.
        self.setup("fit")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = BUILDERS[self.kind](self.data, self.grid, self.size)
        n = len(splits.train)  # type: ignore[arg-type]
        if n == 0:
            limit = self.data.get("limit")
            raise GeoconvError(f"data kind {self.kind!r} gave an empty training set (data.limit={limit})")
        held_out = math.floor(n * self.val_fraction)
        if held_out == 0 or held_out == n:
            self.train_set, self.val_set = splits.train, splits.train
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
            self.train_set = Subset(splits.train, order[held_out:])
            self.val_set = Subset(splits.train, order[:held_out])
        self.splits = splits

    def _built(self) -> Splits:
        self.setup()
        assert self.splits is not None
        return self.splits

    @property
    def classes(self) -> int:
        """Number of classes (0: segmentation)."""
        return self._built().classes

    @property
    def task(self) -> str:
        """``"classification"`` or ``"segmentation"``."""
        return "classification" if self.classes > 0 else "segmentation"

    @property
    def in_channels(self) -> int:
        """Channels of an input sample."""
        x, _ = self._built().train[0]
        return int(x.shape[0])

    @property
    def test_tags(self) -> tuple[str, ...]:
        """Tags of the test sets, in the order of :meth:`test_dataloader`."""
        return tuple(self._built().tests)

    @property
    def primary(self) -> str:
        """The tag of the protocol's own test set."""
        return self._built().primary

    def example(self, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` training samples as a batch (for a shape check before training)."""
        train = self._built().train
        samples = [train[i] for i in range(min(count, len(train)))]  # type: ignore[arg-type]
        return torch.stack([s[0] for s in samples]), torch.stack([torch.as_tensor(s[1]) for s in samples])

    # -- loaders ------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, sampler: Sampler[int] | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self._built()
        assert self.train_set is not None
        return self._loader(self.train_set, EpochSampler(len(self.train_set), self.seed))  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader:
        self._built()
        assert self.val_set is not None
        return self._loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(dataset) for dataset in self._built().tests.values()]
