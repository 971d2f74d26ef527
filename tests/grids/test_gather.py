"""Gather tables: the dense matrix they stand for, their adjoint, and the bounded cache."""

from __future__ import annotations

import threading

import numpy as np
import torch

from geoconv.grids._gather import PadTable, TableCache, gather, gather_adjoint


def _dense(table: PadTable) -> np.ndarray:
    """The table as a dense (target, source) matrix, built with a plain loop."""
    rows = int(np.prod(table.target_shape))
    cols = int(np.prod(table.source_shape))
    matrix = np.zeros((rows, cols))
    index = table.index.reshape(rows, -1)
    weight = np.ones_like(index, dtype=float) if table.weight is None else table.weight.reshape(rows, -1)
    for r in range(rows):
        for k in range(index.shape[1]):
            matrix[r, index[r, k]] += weight[r, k]
    return matrix


def _random_table(rng: np.random.Generator, k: int) -> PadTable:
    source, target = (2, 3, 4), (2, 5, 6)
    index = rng.integers(0, 24, size=(*target, k))
    weight = rng.random((*target, k)) if k > 1 else None
    return PadTable(index, weight, source, target)


def test_gather_and_adjoint_are_the_matrix_and_its_transpose() -> None:
    rng = np.random.default_rng(0)
    cache = TableCache()
    for k in (1, 3):
        table = _random_table(rng, k)
        _, index, weight = cache.get(("t", k), torch.device("cpu"), lambda table=table: table)
        matrix = _dense(table)
        x = torch.from_numpy(rng.standard_normal((2, 3, *table.source_shape)))
        y = torch.from_numpy(rng.standard_normal((2, 3, *table.target_shape)))
        expected = (x.reshape(6, -1).numpy() @ matrix.T).reshape(y.shape)
        np.testing.assert_allclose(gather(x, table, index, weight).numpy(), expected, rtol=1e-12)
        expected_adjoint = (y.reshape(6, -1).numpy() @ matrix).reshape(x.shape)
        np.testing.assert_allclose(gather_adjoint(y, table, index, weight).numpy(), expected_adjoint, rtol=1e-12)


def test_cache_is_bounded_by_count_and_bytes() -> None:
    rng = np.random.default_rng(1)
    cache = TableCache(maxsize=3)
    for key in range(10):
        cache.get(key, torch.device("cpu"), lambda: _random_table(rng, 1))
    assert len(cache) == 3
    per_table = 2 * (2 * 5 * 6 * 8)  # int64 indices, on the host (numpy) and on the device
    small = TableCache(maxsize=100, max_bytes=2 * per_table)
    for key in range(10):
        small.get(key, torch.device("cpu"), lambda: _random_table(rng, 1))
    assert len(small) == 2 and small.nbytes == 2 * per_table
    # Least recently used goes first: touching key 8 keeps it when key 10 arrives.
    small.get(8, torch.device("cpu"), lambda: _random_table(rng, 1))
    small.get(10, torch.device("cpu"), lambda: _random_table(rng, 1))
    built = []
    small.get(8, torch.device("cpu"), lambda: built.append(1) or _random_table(rng, 1))
    assert built == []


def test_cache_is_thread_safe() -> None:
    cache = TableCache(maxsize=8)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for step in range(200):
                key = int(rng.integers(0, 16))
                table, index, _ = cache.get(
                    key, torch.device("cpu"), lambda key=key: PadTable.from_index(np.full((2, 2), key % 4), (2, 2))
                )
                assert int(index[0]) == key % 4 and table.source_shape == (2, 2)
                assert len(cache) <= 8, step
        except BaseException as err:  # surfaced below, in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
