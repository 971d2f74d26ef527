"""The data-set registry: the shipped data sets by name, plugins beside them, bad names refused."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from geoconv.data import DATASETS, Splits, get_dataset, list_datasets, register_dataset, translated_digits
from geoconv.errors import GeoconvError, RegistryError, UnknownNameError
from geoconv.training.datamodule import BUILDERS, SignalDataModule


def test_the_shipped_data_sets_are_registered_and_training_reads_the_same_registry() -> None:
    assert list_datasets() == [
        "earth_segmentation",
        "folder",
        "spherical_digits",
        "spherical_mnist",
        "translated_digits",
    ]
    assert BUILDERS is DATASETS  # the training module's former name for it


def test_a_builder_returns_the_data_set_its_function_builds() -> None:
    splits = get_dataset("translated_digits")({"limit": 6, "test_limit": 3, "seed": 2}, "planar", 12)
    direct = translated_digits(12, split="train", limit=6, seed=2)
    assert torch.equal(splits.train.inputs, direct.inputs) and torch.equal(splits.train.targets, direct.targets)
    assert (splits.classes, splits.primary, tuple(splits.tests)) == (10, "", ("",))
    first, second = splits.consistency()
    # The same test digits at two independent draws of their positions.
    assert torch.equal(first.targets, second.targets) and not torch.equal(first.inputs, second.inputs)


def test_flat_digits_refuse_a_grid_without_their_square_layout() -> None:
    with pytest.raises(GeoconvError, match=r"flat square images .* got grid='equirect'"):
        get_dataset("translated_digits")({"limit": 2}, "equirect", 8)


def test_an_unknown_name_suggests_and_a_taken_name_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'spherical_digits'"):
        get_dataset("spherical_digit")
    with pytest.raises(RegistryError, match="already registered"):
        register_dataset("earth_segmentation")(lambda data, grid, size: Splits(None))  # type: ignore[arg-type]


def test_a_registered_data_set_is_what_a_training_config_can_name() -> None:
    built: list[tuple[str, int]] = []

    @register_dataset("four_digits")
    def four_digits(data: dict[str, Any], grid: str, size: int) -> Splits:
        built.append((grid, size))
        return get_dataset("translated_digits")({**data, "limit": 4, "test_limit": 2}, grid, size)

    try:
        module = SignalDataModule({"kind": "four_digits"}, "planar", 8, batch_size=2, val_fraction=0.5)
        assert module.classes == 10 and module.in_channels == 1 and built == [("planar", 8)]
        assert len(module.train_dataloader().dataset) == len(module.val_dataloader().dataset) == 2
    finally:
        DATASETS.unregister("four_digits")
    with pytest.raises(GeoconvError, match="unknown data kind .*'four_digits'"):
        SignalDataModule({"kind": "four_digits"}, "planar", 8)
