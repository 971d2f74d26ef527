r"""Padding as one gather from a precomputed index table, and its adjoint.

Every spherical padding is linear and local: each pixel of the padded tensor is a pixel of
the input, or (at a few corners) the average of a few. So a padding is a table

.. math::

    \tilde x[p] = \sum_{k < K} w[p, k]\, x_{flat}[\mathrm{index}[p, k]]

over the flattened spatial dims of the input, built once per shape on the CPU with numpy,
cached, and applied as one ``index_select`` (one memory pass). A table whose every row has
a single source (``K = 1``, no weights) is a pure permutation-with-repeats.

Rows with several taps are rare (corner blocks), so they are applied as a sparse
:class:`Patch` after a 1-tap gather of every row, rather than as K passes.

The adjoint (needed by ``conv_transpose``: the transpose of "pad, then conv") is one
``index_add`` of the padded tensor back onto the source pixels.

Tables are cached per key and device in the shared bounded LRU of :mod:`geoconv._cache`
(re-exported here), so sweeping many resolutions does not grow memory without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoconv._cache import TABLES, TableCache, cached, held_bytes, register_builder
from geoconv.errors import ShapeError

__all__ = [
    "TABLES",
    "PadTable",
    "Patch",
    "TableCache",
    "cached",
    "gather",
    "gather_adjoint",
    "held_bytes",
    "plain_rows",
    "register_builder",
]


def plain_rows(taps: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Rows of a table that copy one pixel (their first tap), over the last axis of ``taps``/``weight``.

    Weight 1 on the first tap and 0 on the others, or taps that all agree with weights
    summing to 1 (a corner average whose two continuations land on the same pixel).
    """
    first_only = (weight[..., 0] == 1.0) & np.all(weight[..., 1:] == 0.0, axis=-1)
    agreeing = np.all(taps == taps[..., :1], axis=-1) & (weight.sum(axis=-1) == 1.0)
    return first_only | agreeing


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

    def taps_at(self, faces: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source pixels and weights ``(*shape, K)`` of the padded pixels at ``(faces, rows, cols)`` (broadcast).

        Taps that agree are merged onto the first (a plain copy may be stored as agreeing
        taps), so a tap after a pixel's first has a weight only where it averages distinct
        pixels. A halo-only op reads the pixels it needs this way, once per shape.
        """
        target = self.target_shape if len(self.target_shape) == 3 else (1, *self.target_shape)
        index = self.index.reshape(*target, -1)[faces, rows, cols]
        weight = np.ones(index.shape) if self.weight is None else self.weight.reshape(*target, -1)[faces, rows, cols]
        weight = np.array(weight, dtype=np.float64)
        for k in range(1, index.shape[-1]):
            for j in range(k):
                same = (index[..., k] == index[..., j]) & (weight[..., k] != 0)
                weight[..., j] += np.where(same, weight[..., k], 0.0)
                weight[..., k] = np.where(same, 0.0, weight[..., k])
        return index, weight

    def on(self, device: torch.device) -> tuple[torch.Tensor, Patch | None]:
        """The table as device tensors: a 1-tap index for every row, and a :class:`Patch`.

        Most rows of a padding table have one source (the corners of a few blocks average
        two); gathering K taps for every row would cost K passes. So every row gets its
        first tap, and the rows whose taps differ from "first tap, weight 1" are patched
        afterwards. The result is the same as the weighted sum over all taps.
        """
        flat_index = self.index.reshape(-1, self.index.shape[-1])
        first = torch.from_numpy(np.ascontiguousarray(flat_index[:, 0])).to(device)
        if self.weight is None:
            return first, None
        flat_weight = self.weight.reshape(flat_index.shape)
        plain = plain_rows(flat_index, flat_weight)
        rows = np.flatnonzero(~plain)
        dense = rows.size > flat_index.shape[0] // 2
        if dense:
            # Mostly weighted (an interpolation table): one weighted pass over every row.
            rows = np.arange(flat_index.shape[0])
        patch = Patch(
            dense=dense,
            rows=torch.from_numpy(rows).to(device),
            index=torch.from_numpy(np.ascontiguousarray(flat_index[rows].reshape(-1))).to(device),
            weight=torch.from_numpy(np.ascontiguousarray(flat_weight[rows])).to(device),
        )
        return first, patch


@dataclass(frozen=True)
class Patch:
    """The rows of a gather table that are not a plain copy: weighted sums of K taps.

    Attributes
    ----------
    dense : bool
        Every row of the table is here (``rows`` is ``0 .. R-1``): the 1-tap pass is skipped.
    rows : torch.Tensor
        int64 ``(R,)``: flat target positions.
    index : torch.Tensor
        int64 ``(R * K,)``: flat source positions, K per row.
    weight : torch.Tensor
        float64 ``(R, K)``.
    """

    dense: bool
    rows: torch.Tensor
    index: torch.Tensor
    weight: torch.Tensor


def _check_floating(x: torch.Tensor, patch: Patch | None) -> None:
    if patch is not None and not (x.is_floating_point() or x.is_complex()):
        raise ShapeError(
            f"this padding averages a few pixels, which needs a floating-point tensor; got dtype {x.dtype}"
        )


def gather(x: torch.Tensor, table: PadTable, index: torch.Tensor, patch: Patch | None) -> torch.Tensor:
    """Apply a gather table to the trailing spatial dims of ``x``.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(*lead, *table.source_shape)``.
    table, index, patch
        As returned by :meth:`TableCache.get` (or :meth:`PadTable.on`).

    Returns
    -------
    torch.Tensor
        Shape ``(*lead, *table.target_shape)``.
    """
    _check_floating(x, patch)
    spatial = len(table.source_shape)
    lead = x.shape[: x.dim() - spatial]
    # The source size, not -1: with an empty batch (B = 0) there is no size to infer.
    flat = x.reshape(*lead, int(np.prod(table.source_shape)))
    if patch is None:
        return flat.index_select(-1, index).reshape(*lead, *table.target_shape)
    taps = flat.index_select(-1, patch.index).reshape(*lead, *patch.weight.shape)
    patched = (taps * patch.weight.to(taps.dtype)).sum(-1)
    out = patched if patch.dense else flat.index_select(-1, index).index_copy(-1, patch.rows, patched)
    return out.reshape(*lead, *table.target_shape)


def gather_adjoint(y: torch.Tensor, table: PadTable, index: torch.Tensor, patch: Patch | None) -> torch.Tensor:
    """The adjoint of :func:`gather`: scatter-add ``y`` back onto the source pixels.

    ``<gather(x), y> == <x, gather_adjoint(y)>`` for all ``x`` and ``y``.
    """
    _check_floating(y, patch)
    spatial = len(table.target_shape)
    lead = y.shape[: y.dim() - spatial]
    flat = y.reshape(*lead, int(np.prod(table.target_shape)))
    size = int(np.prod(table.source_shape))
    out = flat.new_zeros(*lead, size)
    if patch is None or not patch.dense:
        plain = flat if patch is None else flat.index_fill(-1, patch.rows, 0)
        out = out.index_add(-1, index, plain)
    if patch is not None:
        patched = flat.index_select(-1, patch.rows).unsqueeze(-1) * patch.weight.to(flat.dtype)
        out = out.index_add(-1, patch.index, patched.reshape(*lead, patch.index.numel()))
    return out.reshape(*lead, *table.source_shape)
