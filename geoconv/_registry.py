"""One registry pattern for ops, grids, models, data sets and jobs.

A :class:`Registry` maps names to entries (a spec, a class or a factory). It gives
did-you-mean errors for unknown names, refuses a taken name unless asked to override,
loads third-party entries from an entry-point group once, lazily, and keeps working when
one plugin fails (a :class:`PluginWarning` names it). Built-in entries that would import
heavy modules (healpy, Lightning) can be registered lazily, as ``"module:attribute"``,
and are imported on first use.

Examples
--------
>>> from geoconv._registry import Registry
>>> colours = Registry("colour")
>>> colours.register("red", (255, 0, 0))
>>> colours.get("red")
(255, 0, 0)
>>> colours.get("rde")
Traceback (most recent call last):
...
geoconv.errors.UnknownNameError: unknown colour: 'rde'; did you mean 'red'? Valid choices: 'red'
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import inspect
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Generic, TypeVar

from geoconv.errors import ParameterError, RegistryError, unknown_name

__all__ = ["Lazy", "PluginWarning", "Registry", "check_entry_name"]

T = TypeVar("T")

_RAISE = object()  # Registry.get's "no default": an unknown name raises


class PluginWarning(UserWarning):
    """A plugin failed to load; its entries are missing, everything else works."""


@dataclass(frozen=True)
class Lazy:
    """A built-in entry imported on first use: ``module.attribute``."""

    module: str
    attribute: str

    def load(self) -> object:
        return getattr(importlib.import_module(self.module), self.attribute)


def _same_definition(old: object, new: object) -> bool:
    names = [(getattr(o, "__module__", None), getattr(o, "__qualname__", None)) for o in (old, new)]
    return names[0][1] is not None and names[0] == names[1]


def check_entry_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid registry name (letters, digits, ``_``, ``.``, ``-``)."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_.-" for c in name):
        raise ParameterError(
            f"{kind} name must be a non-empty string of letters, digits, '_', '.' or '-', got {name!r}"
        )
    return name


class Registry(Generic[T]):
    """Name -> entry, with did-you-mean errors and entry-point plugins.

    Parameters
    ----------
    kind : str
        What the entries are (``"op"``, ``"grid"``), for messages.
    entry_point_group : str, optional
        The entry-point group third parties extend (``"geoconv.ops"``). Each entry point
        names a module (importing it registers its entries) or a callable taking no
        arguments that registers them.
    same : callable, optional
        ``same(old, new) -> bool``: re-registering an equal definition is not an error (the
        newer object is kept, as :func:`importlib.reload` expects). By default two functions
        or classes with the same module and qualified name are the same definition (a module
        imported twice, as pytest's doctest collection and :func:`importlib.reload` do).
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        *,
        same: Callable[[T, T], bool] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._same = same if same is not None else _same_definition
        self._entries: dict[str, T | Lazy] = {}
        self._sources: dict[str, str] = {}
        self._lock = threading.RLock()
        self._plugins_loaded = False
        self._current_source = "geoconv"

    # -- writing -------------------------------------------------------------------------

    def register(self, name: str, entry: T | Lazy, *, override: bool = False) -> None:
        """Register ``entry`` as ``name``; a taken name raises :class:`RegistryError` unless ``override``."""
        check_entry_name(self.kind, name)
        with self._lock:
            existing = self._entries.get(name)
            if existing is not None and not override and not self._is_same(existing, entry):
                raise RegistryError(
                    f"a {self.kind} named {name!r} is already registered (from {self._sources[name]}); "
                    "pass override=True to replace it, or choose another name"
                )
            self._entries[name] = entry
            self._sources[name] = self._current_source

    def decorator(self, name: str, *, override: bool = False) -> Callable[[T], T]:
        """A decorator that registers what it decorates as ``name`` and returns it unchanged.

        >>> shapes = Registry("shape")
        >>> @shapes.decorator("unit_square")
        ... def unit_square():
        ...     return 1.0
        >>> shapes.get("unit_square")()
        1.0
        """

        def register(entry: T) -> T:
            self.register(name, entry, override=override)
            return entry

        return register

    def _is_same(self, old: T | Lazy, new: T | Lazy) -> bool:
        if old is new or (isinstance(old, Lazy) and old == new):
            return True
        return not isinstance(old, Lazy) and not isinstance(new, Lazy) and self._same(old, new)  # type: ignore[arg-type]

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry."""
        with self._lock:
            if name not in self._entries:
                raise unknown_name(self.kind, name, self._entries)
            entry = self._entries.pop(name)
            self._sources.pop(name, None)
        return entry.load() if isinstance(entry, Lazy) else entry  # type: ignore[return-value]

    @contextlib.contextmanager
    def registering_as(self, source: str) -> Iterator[None]:
        """Attribute the entries registered inside the block to ``source`` (a distribution)."""
        with self._lock:
            previous, self._current_source = self._current_source, source
            try:
                yield
            finally:
                self._current_source = previous

    # -- plugins -------------------------------------------------------------------------

    def load_plugins(self, *, reload: bool = False) -> list[str]:
        """Load the entry points of :attr:`entry_point_group` (once; ``reload=True`` looks again).

        Returns
        -------
        list of str
            The names of the entry points that loaded. One that fails gives a
            :class:`PluginWarning` naming it; the others still load.
        """
        if self.entry_point_group is None:
            return []
        with self._lock:
            if self._plugins_loaded and not reload:
                return []
            self._plugins_loaded = True
            loaded = []
            for entry_point in metadata.entry_points(group=self.entry_point_group):
                dist = getattr(entry_point, "dist", None)
                source = dist.name if dist is not None else entry_point.value
                try:
                    with self.registering_as(source):
                        target = entry_point.load()
                        if inspect.isfunction(target):
                            target()
                except Exception as exc:  # a broken plugin must never break the rest
                    warnings.warn(
                        f"geoconv plugin {entry_point.name!r} ({entry_point.value}, from {source}, entry-point group "
                        f"{self.entry_point_group!r}) failed to load and its {self.kind}s are unavailable: "
                        f"{type(exc).__name__}: {exc}",
                        PluginWarning,
                        stacklevel=3,
                    )
                    continue
                loaded.append(entry_point.name)
            return loaded

    # -- reading -------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, T | Lazy]:
        self.load_plugins()
        with self._lock:
            return dict(self._entries)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the :mod:`fnmatch` ``pattern``."""
        return sorted(name for name in self._snapshot() if fnmatch.fnmatchcase(name, pattern))

    def source(self, name: str) -> str:
        """``"geoconv"`` or the distribution that registered ``name``."""
        self.get(name)
        return self._sources[name]

    def get(self, name: str, default: object = _RAISE) -> T:
        """The entry registered as ``name``; an unknown name raises with the closest names.

        With ``default`` given, an unknown name returns it instead (as ``dict.get`` does).
        """
        entries = self._snapshot()
        if not isinstance(name, str) or name not in entries:
            if default is not _RAISE:
                return default  # type: ignore[return-value]
            raise unknown_name(self.kind, name, entries)
        entry = entries[name]
        if isinstance(entry, Lazy):
            loaded = entry.load()
            with self._lock:
                if self._entries.get(name) is entry:
                    self._entries[name] = loaded  # type: ignore[assignment]
            return loaded  # type: ignore[return-value]
        return entry

    # Mapping-style access, so that ``monkeypatch.setitem(REGISTRY, name, entry)`` swaps an
    # entry for one test and puts it back.
    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, entry: T) -> None:
        self.register(name, entry, override=True)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._snapshot()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._snapshot())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
