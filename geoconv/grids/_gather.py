r"""Padding as one gather from a precomputed index table, and its adjoint.

Every spherical padding is linear and local: each pixel of the padded tensor is a pixel of
the input, or (at a few corners) the average of a few. So a padding is a table

.. math::

    \tilde x[p] = \sum_{k < K} w[p, k]\, x_{flat}[\mathrm{index}[p, k]]

over the flattened spatial dims of the input, built once per shape on the CPU with numpy,
cached, and applied as one ``index_select`` (one memory pass). A table whose every row has
a single source (``K = 1``, no weights) is a pure permutation-with-repeats.

The adjoint (needed by ``conv_transpose``: the transpose of "pad, then conv") is one
``index_add`` of the padded tensor back onto the source pixels.

Tables are cached per key and device in a bounded, thread-safe LRU
(:class:`TableCache`), so sweeping many resolutions does not grow memory without bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PadTable", "TableCache", "gather", "gather_adjoint", "TABLES"]


@dataclass(frozen=True)
class PadTable:
    """A gather table from a flattened source to a padded target.

    Attributes
    ----------
    index : numpy.ndarray
        int64, shape ``(*target_shape, K)``: flat source positions in ``[0, source_size)``.
    weight : numpy.ndarray or None
        float64, same shape as ``index``; ``None`` means ``K == 1`` and weight 1.
    source_shape : tuple of int
        The spatial shape of the input, e.g. ``(H, W)`` or ``(12, n, n)``.
    target_shape : tuple of int
        The spatial shape of the output, e.g. ``(H + 2w, W + 2w)`` or ``(12, n + 2w, n + 2w)``.
    """

    index: np.ndarray
    weight: np.ndarray | None
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        size = int(np.prod(self.source_shape))
        if self.index.shape[:-1] != tuple(self.target_shape):
            raise AssertionError(f"index shape {self.index.shape} does not match target {self.target_shape}")
        if self.index.size and (self.index.min() < 0 or self.index.max() >= size):
            raise AssertionError("index out of range of the source")
        if self.weight is not None and self.weight.shape != self.index.shape:
            raise AssertionError("weight and index shapes differ")
        if self.weight is None and self.index.shape[-1] != 1:
            raise AssertionError("a table with K > 1 needs weights")

    @classmethod
    def from_index(cls, index: np.ndarray, source_shape: tuple[int, ...]) -> PadTable:
        """A single-source table from an integer array of flat source positions."""
        index = np.asarray(index, dtype=np.int64)
        return cls(index[..., None], None, tuple(source_shape), tuple(index.shape))

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The flat index ``(P * K,)`` and weights ``(P, K)`` (float64) as tensors on ``device``."""
        index = torch.from_numpy(np.ascontiguousarray(self.index.reshape(-1))).to(device)
        weight = None if self.weight is None else torch.from_numpy(self.weight.reshape(-1, self.weight.shape[-1]))
        return index, None if weight is None else weight.to(device)


class TableCache:
    """A bounded, thread-safe LRU of device tensors built from :class:`PadTable` objects.

    Entries are keyed by ``(key, device)``, where ``key`` names the grid, the shape and
    the table's parameters (the dtype does not matter: indices are int64 and weights are
    cast on use). The least recently used entries are dropped when there are more than
    ``maxsize`` of them or they hold more than ``max_bytes`` together.

    Parameters
    ----------
    maxsize : int
        How many entries to keep at most.
    max_bytes : int
        How many bytes of index and weight tensors to keep at most (256 MiB by default).
    """

    def __init__(self, maxsize: int = 64, max_bytes: int = 256 * 2**20) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[PadTable, torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self._bytes: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached device tensors."""
        with self._lock:
            return sum(self._bytes.values())

    def get(
        self, key: Hashable, device: torch.device, build: Callable[[], PadTable]
    ) -> tuple[PadTable, torch.Tensor, torch.Tensor | None]:
        """Return ``(table, index, weight)`` for ``key`` on ``device``, building it if needed."""
        full_key = (key, str(torch.device(device)))
        with self._lock:
            if full_key in self._entries:
                self._entries.move_to_end(full_key)
                return self._entries[full_key]
        # Built outside the lock: two threads may build the same table, never a wrong one.
        table = build()
        entry = (table, *table.on(device))
        size = sum(t.numel() * t.element_size() for t in entry[1:] if t is not None)
        with self._lock:
            self._entries[full_key] = entry
            self._bytes[full_key] = size
            self._entries.move_to_end(full_key)
            while len(self._entries) > 1 and (
                len(self._entries) > self.maxsize or sum(self._bytes.values()) > self.max_bytes
            ):
                oldest, _ = self._entries.popitem(last=False)
                del self._bytes[oldest]
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every cached table."""
        with self._lock:
            self._entries.clear()
            self._bytes.clear()


TABLES = TableCache()
"""The cache every grid's padding shares."""


def gather(x: torch.Tensor, table: PadTable, index: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Apply a gather table to the trailing spatial dims of ``x``.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(*lead, *table.source_shape)``.
    table, index, weight
        As returned by :meth:`TableCache.get`.

    Returns
    -------
    torch.Tensor
        Shape ``(*lead, *table.target_shape)``.
    """
    spatial = len(table.source_shape)
    lead = x.shape[: x.dim() - spatial]
    flat = x.reshape(*lead, -1)
    out = flat.index_select(-1, index)
    if weight is not None:
        k = weight.shape[-1]
        out = (out.reshape(*lead, -1, k) * weight.to(out.dtype)).sum(-1)
    return out.reshape(*lead, *table.target_shape)


def gather_adjoint(y: torch.Tensor, table: PadTable, index: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """The adjoint of :func:`gather`: scatter-add ``y`` back onto the source pixels.

    ``<gather(x), y> == <x, gather_adjoint(y)>`` for all ``x`` and ``y``.
    """
    spatial = len(table.target_shape)
    lead = y.shape[: y.dim() - spatial]
    flat = y.reshape(*lead, -1)
    if weight is not None:
        flat = (flat.unsqueeze(-1) * weight.to(flat.dtype)).reshape(*lead, -1)
    size = int(np.prod(table.source_shape))
    out = flat.new_zeros(*lead, size).index_add(-1, index, flat)
    return out.reshape(*lead, *table.source_shape)
