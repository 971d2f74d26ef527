"""The bounded table cache every grid and op shares.

Padding index tables, HEALPix stencils, Chebyshev Laplacians and Legendre tables are built
once per shape on the CPU with numpy and kept, per device, in one bounded, thread-safe LRU
(:data:`TABLES`), so sweeping many resolutions does not grow memory without bound.
:func:`cached` looks an object up by builder name and constant arguments; under
``torch.compile`` a miss is built at trace time, so a cold cache compiles with ``fullgraph``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["TABLES", "TableCache", "cached", "held_bytes", "register_builder"]

T = TypeVar("T")


def held_bytes(obj: object) -> int:
    """Bytes of the tensors and arrays held by ``obj``: itself, or inside tuples, lists and dataclasses."""
    if isinstance(obj, torch.Tensor):
        if obj.layout == torch.sparse_csr:
            return held_bytes((obj.crow_indices(), obj.col_indices(), obj.values()))
        if obj.layout == torch.sparse_coo:
            return held_bytes((obj._indices(), obj._values()))
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, tuple | list):
        return sum(held_bytes(item) for item in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return sum(held_bytes(getattr(obj, field.name)) for field in fields(obj))
    return 0


class TableCache:
    """A bounded, thread-safe LRU of device tensors and the objects that hold them.

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
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._bytes: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached device tensors."""
        with self._lock:
            return sum(self._bytes.values())

    def get(self, key: Hashable, device: torch.device, build: Callable[[], Any]) -> tuple[Any, ...]:
        """Return ``(table, *table.on(device))`` for ``key`` on ``device``, building it if needed.

        ``build()`` makes a table object with an ``on(device)`` method (a padding table's
        index tensor and corner patch).
        """

        def make() -> tuple[Any, ...]:
            table = build()
            return (table, *table.on(device))

        return self.entry(key, device, make)

    def entry(self, key: Hashable, device: torch.device, make: Callable[[], T]) -> T:
        """Return the cached object for ``(key, device)``, calling ``make()`` on a miss.

        The object's size is the bytes of the tensors and arrays it holds (found in tuples, lists and
        dataclass fields), and counts against :attr:`max_bytes`.
        """
        full_key = (key, str(torch.device(device)))
        # A hit is one dict read: no lock (dict reads are atomic), and nothing torch.compile
        # cannot trace once the entry exists.
        found = self._entries.get(full_key)
        if found is not None:
            if not torch.compiler.is_compiling():
                with self._lock:
                    if full_key in self._entries:
                        self._entries.move_to_end(full_key)
            return found  # type: ignore[return-value]
        # Built outside the lock: two threads may build the same entry, never a wrong one.
        made = make()
        size = held_bytes(made)
        with self._lock:
            self._entries[full_key] = made
            self._bytes[full_key] = size
            self._entries.move_to_end(full_key)
            while len(self._entries) > 1 and (
                len(self._entries) > self.maxsize or sum(self._bytes.values()) > self.max_bytes
            ):
                oldest, _ = self._entries.popitem(last=False)
                del self._bytes[oldest]
        return made

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every cached table."""
        with self._lock:
            self._entries.clear()
            self._bytes.clear()


TABLES = TableCache()
"""The cache every grid's padding shares."""


_BUILDERS: dict[str, Callable[..., object]] = {}


def register_builder(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Register ``fn(*args, device=...)`` as the builder of the cached objects called ``name``.

    See :func:`cached`.
    """

    def register(fn: Callable[..., T]) -> Callable[..., T]:
        _BUILDERS[name] = fn
        return fn

    return register


@torch.compiler.assume_constant_result
def _ensure_cached(name: str, device: str, *args: object) -> tuple:
    # Under torch.compile this runs at trace time with constant arguments: building is
    # numpy work a graph could not hold; the lookup that follows is a traceable dict read.
    key = (name, *args)
    where = torch.device(device)
    TABLES.entry(key, where, lambda: _BUILDERS[name](*args, device=where))
    return key


def cached(name: str, device: torch.device, *args: object) -> object:
    """The object the builder ``name`` makes for ``args`` on ``device``, from :data:`TABLES`.

    ``args`` are plain constants (ints, floats, strings, ``None``; not tuples, which
    ``torch.compile`` cannot pass to a trace-time function): they key the cache.
    Traceable by ``torch.compile(fullgraph=True)``: a miss during tracing is built at
    trace time, and the graph reads the cached object.

    >>> @register_builder("doc.arange")
    ... def _arange(n: int, device: torch.device) -> torch.Tensor:
    ...     return torch.arange(n, device=device)
    >>> cached("doc.arange", torch.device("cpu"), 3)
    tensor([0, 1, 2])
    """
    key = _ensure_cached(name, str(device), *args) if torch.compiler.is_compiling() else (name, *args)
    return TABLES.entry(key, device, lambda: _BUILDERS[name](*args, device=device))
