"""The exceptions geoconv raises for input a user controls.

Every error a user can trigger by passing a wrong name, value, type or shape is a
:class:`GeoconvError`, which is a :class:`ValueError`, so ``except ValueError`` keeps
working in code that does not know geoconv. Messages name the parameter or the shape,
say what was expected and what came in, and suggest the closest valid names.

Examples
--------
>>> from geoconv.errors import GeoconvError, unknown_name
>>> err = unknown_name("padding_mode", "reflection", ["zeros", "reflect", "replicate"])
>>> isinstance(err, GeoconvError) and isinstance(err, ValueError)
True
>>> print(err)
unknown padding_mode: 'reflection'; did you mean 'reflect'? Valid choices: 'reflect', 'replicate', 'zeros'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "GeoconvError",
    "UnknownNameError",
    "ParameterError",
    "ShapeError",
    "RegistryError",
    "DTypeError",
    "closest_names",
    "unknown_name",
]


class GeoconvError(ValueError):
    """Base class of every user-facing geoconv error (a :class:`ValueError`)."""


class UnknownNameError(GeoconvError):
    """A name (op, grid, padding mode, parameter, ...) that is not one of the valid choices.

    Attributes
    ----------
    kind : str
        What the name is for, e.g. ``"op"`` or ``"padding_mode"``.
    name : str
        The name that came in.
    choices : tuple of str
        The valid names, sorted.
    suggestions : tuple of str
        The valid names closest to ``name``, best first.
    """

    def __init__(self, message: str, *, kind: str, name: str, choices: Iterable[str]) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.choices = tuple(sorted(choices))
        self.suggestions = tuple(closest_names(name, self.choices))


class ParameterError(GeoconvError):
    """A parameter with a wrong type or an out-of-range value."""


class ShapeError(GeoconvError):
    """A tensor whose shape, dtype or layout does not fit the operation."""


class RegistryError(GeoconvError):
    """A registration that would silently replace or corrupt the op registry."""


class DTypeError(GeoconvError):
    """A tensor whose dtype differs from the dtype of the op's parameters (``float64`` into a ``float32`` conv).

    Not a :class:`ShapeError`: the shape is fine, and the fix is a cast (``x.to(...)`` or
    ``op.to(...)``), not a reshape.
    """


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` entries of ``choices`` closest to ``name``, best first.

    Uses :func:`difflib.get_close_matches` (a ratio cut-off of 0.5), and falls back to
    choices that share a prefix or contain ``name`` so that ``"pool"`` still suggests
    ``"max_pool"``.
    """
    options = sorted(set(choices))
    # Compare case-insensitively, so "Relu" suggests "relu" before "elu".
    by_lower: dict[str, str] = {}
    for option in options:
        by_lower.setdefault(option.lower(), option)
    matches = [by_lower[m] for m in difflib.get_close_matches(str(name).lower(), list(by_lower), n=n, cutoff=0.5)]
    if len(matches) < n:
        lowered = str(name).lower()
        for option in options:
            if option not in matches and lowered and (lowered in option.lower() or option.lower() in lowered):
                matches.append(option)
            if len(matches) == n:
                break
    return matches


def unknown_name(kind: str, name: object, choices: Iterable[str]) -> UnknownNameError:
    """Build the error for an unknown ``kind`` called ``name``, with suggestions.

    Parameters
    ----------
    kind : str
        What the name is for, used in the message (``"op"``, ``"grid"``, ``"padding_mode"``).
    name : object
        The value that came in (its ``repr`` goes into the message).
    choices : iterable of str
        Every valid name.

    Returns
    -------
    UnknownNameError
        Not raised here, so that callers write ``raise unknown_name(...)`` and the
        traceback points at them.
    """
    options = sorted(set(choices))
    suggestions = closest_names(str(name), options)
    message = f"unknown {kind}: {name!r}"
    if suggestions:
        message += "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
    elif options:
        message += "."
    if options:
        message += " Valid choices: " + ", ".join(repr(o) for o in options)
    return UnknownNameError(message, kind=kind, name=str(name), choices=options)
