"""The benchmark's baselines: which names exist, where each runs, and why one cannot run here.

Three kinds of baseline sit beside the cases:

- the fixed ones (:data:`FIXED_BASELINES`), which are not ops: ``floor`` (torch's
  ``nn.Conv2d`` on the folded faces), ``copy`` (a clone of the padded bytes) and ``pad``
  (the grid's padding alone);
- any registered op, on the grids its spec names (``get_op(name).grids``), plus the ops
  registered only when an optional package imports (:data:`OPTIONAL_OPS`): asked for while
  missing, they give ``skipped`` rows that say what to install;
- a registered op's literal reference path (:data:`REFERENCE_PATHS`), e.g. ``neighbour_gather``:
  ``neighbour_conv`` computed as NNhealpix does, on the grids of that op.

Beside them: the convolution paths a case may name (:func:`conv_paths`, :func:`path_context`),
which op is a transposed one (:func:`is_transposed`: its floor is ``nn.ConvTranspose2d``),
and whether ducc0, the reference of the spectral-transform rows, is installed.

Nothing here names a grid: where an op runs is its spec's business.

>>> "floor" in known_baselines() and "neighbour_gather" in known_baselines()
True
>>> baseline_grids("neighbour_gather") == get_op("neighbour_conv").grids
True
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable
from typing import Any

from geoconv.ops.registry import get_op, list_ops

__all__ = [
    "CONV_PATH_NAMES",
    "FIXED_BASELINES",
    "OPTIONAL_OPS",
    "REFERENCE_PATHS",
    "baseline_grids",
    "conv_paths",
    "ducc0_unavailable",
    "is_transposed",
    "known_baselines",
    "op_params",
    "path_context",
    "path_unavailable",
    "reference_path",
    "unavailable",
]

FIXED_BASELINES = ("floor", "copy", "pad")
"""Baselines that are not registered ops: torch's Conv2d, a copy, the grid's padding alone."""

OPTIONAL_OPS = {"disco_conv": "torch_harmonics"}
"""Ops registered only when an optional package imports: op name -> the package it needs."""

REFERENCE_PATHS = {"neighbour_gather": ("neighbour_conv", "gather_forward")}
"""Baseline name -> (registered op, method of its module): the op computed another way.
``neighbour_gather`` is ``neighbour_conv`` as NNhealpix computes it, a 9-tap gather then one
contraction (:meth:`geoconv.ops.neighbour.NeighbourConv.gather_forward`)."""


def known_baselines() -> tuple[str, ...]:
    """Every name ``job.baselines`` accepts: the fixed ones, then every op and reference path, sorted."""
    return (*FIXED_BASELINES, *sorted(set(list_ops()) | set(OPTIONAL_OPS) | set(REFERENCE_PATHS)))


def reference_path(name: str) -> tuple[str, str | None]:
    """The registered op a baseline builds and the method it calls (``None``: the op's own ``apply``)."""
    return REFERENCE_PATHS.get(name, (name, None))


def baseline_grids(name: str) -> tuple[str, ...] | None:
    """The grids op baseline ``name`` runs on, or ``None`` when its op is not registered (unknown)."""
    op, _ = reference_path(name)
    return get_op(op).grids if op in list_ops() else None


def unavailable(name: str) -> str:
    """Why op baseline ``name`` cannot run here ("" when it can).

    >>> unavailable("conv")
    ''
    """
    op, _ = reference_path(name)
    if op in list_ops():
        return ""
    package = OPTIONAL_OPS.get(op)
    if package is None:
        return f"op {op!r} is not registered"
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed"
    return f"{package} is installed but did not import (see the PluginWarning); {op} is not registered"


def op_params(op: str, kernel_size: int, mode: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters an op is built with: the job's kernel size and padding mode where the op has them.

    >>> op_params("conv", 3, "sphere", {"bias": False})
    {'kernel_size': 3, 'padding_mode': 'sphere', 'bias': False}
    """
    fields = {p.name for p in get_op(op).parameters()}
    params: dict[str, Any] = {}
    if "kernel_size" in fields:
        params["kernel_size"] = kernel_size
    if mode is not None and "padding_mode" in fields:
        params["padding_mode"] = mode
    params.update(extra or {})
    return params


CONV_PATH_NAMES = ("auto", "padded", "halo")
"""The convolution paths a case may name (``path``) while ``geoconv.ops`` does not list them
(``geoconv.ops.CONV_PATHS``): ``padded`` pads the faces, then convolves them; ``halo`` convolves
with zero padding and adds the correction from the halo strips; ``auto`` picks by shape."""


def conv_paths() -> tuple[str, ...]:
    """The path names a case may give: ``geoconv.ops.CONV_PATHS`` where it exists, else :data:`CONV_PATH_NAMES`.

    >>> "halo" in conv_paths() and "auto" in conv_paths()
    True
    """
    try:  # imported here: the paths arrive with the halo correction, and a missing one is not an error
        from geoconv.ops import CONV_PATHS
    except ImportError:
        return CONV_PATH_NAMES
    return tuple(CONV_PATHS)


def path_unavailable(path: str | None) -> str:
    """Why a case cannot run under conv path ``path`` here ("" when it can; ``None`` and ``auto`` always can)."""
    if path in (None, "auto"):
        return ""
    try:
        from geoconv.ops import conv_path  # noqa: F401  (only whether it exists)
    except ImportError:
        return f"geoconv.ops.conv_path does not exist in this version, so the {path!r} path cannot be chosen"
    return ""


def path_context(path: str | None) -> Callable[[], contextlib.AbstractContextManager] | None:
    """A factory of ``geoconv.ops.conv_path(path)`` contexts, or ``None`` for the default (no path named)."""
    if path is None:
        return None
    try:
        from geoconv.ops import conv_path
    except ImportError:
        if path == "auto":  # without paths there is one path, which is what "auto" asks for
            return None
        raise
    return functools.partial(conv_path, path)


def is_transposed(op: str) -> bool:
    """Whether ``op`` is a transposed convolution (its config has ``output_padding``): its floor transposes too.

    >>> is_transposed("conv_transpose"), is_transposed("conv")
    (True, False)
    """
    return op in list_ops() and "output_padding" in {p.name for p in get_op(op).parameters()}


def ducc0_unavailable() -> str:
    """Why ducc0's spherical-harmonic transform cannot run here ("" when it can)."""
    if importlib.util.find_spec("ducc0") is None:
        return "ducc0 is not installed (pip install ducc0)"
    return ""
