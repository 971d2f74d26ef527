"""The LightningDataModule: the config's ``data`` group as train, validation and test sets.

:class:`SignalDataModule` builds the data set ``data.kind`` names from the data-set
registry (:mod:`geoconv.data.registry`: ``spherical_digits``, ``translated_digits``,
``earth_segmentation`` and any registered plugin) on the config's grid and resolution.

The protocol's own test set is the *primary* one (spherical digits ``NR/NR``: ``nr``,
``NR/R`` and ``R/R``: ``r``), which the engine also reports without a tag (``test/acc``).

The validation set is a seeded random ``trainer.val_fraction`` of the training set; when
that holds no sample (a single Earth image), validation runs on the training set itself.

Training batches are shuffled by :class:`EpochSampler`: a permutation seeded by
``seed + epoch``, so a run resumed from a checkpoint sees the very batches an
uninterrupted run would have seen.

``BUILDERS``, ``DATA_KINDS``, ``PROTOCOLS``, ``Splits`` and ``consistency_pairs`` live in
:mod:`geoconv.data.registry` (``BUILDERS`` is its registry ``DATASETS``) and are re-exported
here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import lightning
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from geoconv._checks import check_int
from geoconv.data.registry import DATA_KINDS, DATASETS, PROTOCOLS, Splits, consistency_pairs
from geoconv.errors import GeoconvError, ParameterError, unknown_name

__all__ = [
    "BUILDERS",
    "DATASETS",
    "DATA_KINDS",
    "PROTOCOLS",
    "EpochSampler",
    "SignalDataModule",
    "Splits",
    "check_batch_size",
    "consistency_pairs",
]

BUILDERS = DATASETS
"""The data-set registry (:data:`geoconv.data.registry.DATASETS`), under its former name."""


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
        if kind not in DATASETS:
            raise unknown_name("data kind (for training)", kind, DATASETS.names())
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
        splits = DATASETS.get(self.kind)(self.data, self.grid, self.size)
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

    def recalibration_dataloader(self) -> DataLoader:
        """The training set in one fixed random order (its own seeded permutation, no global RNG).

        For :mod:`geoconv.training.batchnorm`: the same batches after every epoch and on resume,
        a mix of classes even when the set is stored sorted.
        """
        self._built()
        assert self.train_set is not None
        generator = torch.Generator().manual_seed(self.seed + 7919)  # apart from the training order's seed
        order = torch.randperm(len(self.train_set), generator=generator).tolist()  # type: ignore[arg-type]
        return self._loader(self.train_set, order)  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader:
        self._built()
        assert self.val_set is not None
        return self._loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(dataset) for dataset in self._built().tests.values()]
