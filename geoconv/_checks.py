"""Validation helpers shared by configs, grids and ops.

Each helper either returns the value in canonical form (``int``, a ``tuple`` of ints, ...)
or raises a :class:`~geoconv.errors.GeoconvError` naming the parameter, what was
expected and what came in. Config dataclasses call them in ``__post_init__`` so that an
invalid config can never be built.
"""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Union

import torch

from geoconv.errors import ParameterError, ShapeError, unknown_name

__all__ = [
    "check_bool",
    "check_int",
    "check_float",
    "check_pair",
    "check_choice",
    "check_tensor",
    "coerce",
    "type_name",
]


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int``, checking its type and range.

    >>> check_int("stride", 2, minimum=1)
    2
    >>> check_int("stride", 0, minimum=1)
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: stride must be an integer >= 1, got 0
    """
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = "an integer" + (" " + " and ".join(bounds) if bounds else "")
    if not _is_int(value):
        raise ParameterError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    value = int(value)  # type: ignore[arg-type]
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParameterError(f"{name} must be {expected}, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool`` (configs built directly skip the registry's type check)."""
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_float(name: str, value: object, *, minimum: float | None = None, positive: bool = False) -> float:
    """Return ``value`` as a ``float``; integers are accepted, booleans are not."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ParameterError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if positive and not value > 0:
        raise ParameterError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_pair(name: str, value: object, *, minimum: int | None = None) -> tuple[int, int]:
    """Return an int or a pair of ints as ``(height, width)``.

    >>> check_pair("kernel_size", 3, minimum=1)
    (3, 3)
    >>> check_pair("kernel_size", [3, 5], minimum=1)
    (3, 5)
    """
    if _is_int(value):
        item = check_int(name, value, minimum=minimum)
        return item, item
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return (
            check_int(f"{name}[0]", value[0], minimum=minimum),
            check_int(f"{name}[1]", value[1], minimum=minimum),
        )
    raise ParameterError(f"{name} must be an integer or a pair of integers (height, width), got {value!r}")


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise with the closest names."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise unknown_name(name, value, options)
    return value


def check_tensor(
    x: object,
    *,
    ndim: int | Sequence[int],
    name: str = "x",
    layout: str = "",
    floating: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with one of the allowed numbers of dimensions.

    Parameters
    ----------
    x : object
        The value to check.
    ndim : int or sequence of int
        Allowed numbers of dimensions.
    name : str
        The argument's name, for the message.
    layout : str
        The expected layout, e.g. ``"(B, C, H, W)"``, for the message.
    floating : bool
        Also require a floating-point dtype.
    """
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    described = layout or " or ".join(f"{d}-D" for d in allowed)
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape {described}, got {type(x).__name__}")
    if x.dim() not in allowed:
        raise ShapeError(
            f"{name} must have shape {described} ({' or '.join(map(str, allowed))} dims), "
            f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
        )
    if floating and not x.is_floating_point():
        raise ShapeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    return x


def type_name(annotation: Any) -> str:
    """A short, readable name for a type annotation (``int | tuple[int, int]``)."""
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "None"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Try to read ``value`` as ``annotation``; return ``(ok, converted)``."""
    if annotation is Any:
        return True, value
    if annotation is type(None):
        return value is None, value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        if isinstance(value, str):
            # String literals are names; accept any case ("SAME" for "same").
            for arg in args:
                if isinstance(arg, str) and arg.lower() == value.lower():
                    return True, arg
            return False, value
        return value in args and type(value) in {type(a) for a in args}, value
    if origin in (Union, types.UnionType):
        for arg in args:
            ok, converted = _coerce(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin in (tuple, list):
        # Hydra hands sequences over as ListConfig (a Sequence); accept any non-string one.
        if isinstance(value, str) or not isinstance(value, Sequence):
            return False, value
        items = list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(items)
        elif args:
            if len(items) != len(args):
                return False, value
            item_types = list(args)
        else:
            item_types = [Any] * len(items)
        converted = []
        for item, item_type in zip(items, item_types, strict=True):
            ok, item = _coerce(item, item_type)
            if not ok:
                return False, value
            converted.append(item)
        return True, origin(converted)
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return _is_int(value), int(value) if _is_int(value) else value
    if annotation is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if isinstance(annotation, type):
        return isinstance(value, annotation), value
    return True, value


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to the type ``annotation``, or raise ``ParameterError``.

    Integers are accepted where a float is expected and converted; booleans are never
    taken for numbers; lists (including Hydra's ``ListConfig``) are accepted for tuples.

    >>> coerce("kernel_size", [3, 3], int | tuple[int, int])
    (3, 3)
    >>> coerce("stride", "2", int)
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: stride must be of type int, got '2' (str)
    """
    ok, converted = _coerce(value, annotation)
    if not ok:
        raise ParameterError(f"{name} must be of type {type_name(annotation)}, got {value!r} ({type(value).__name__})")
    return converted
