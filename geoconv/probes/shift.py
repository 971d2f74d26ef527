r"""Shift invariance on the plane: the equivariance error against the shift.

The border band, consistency and the absolute-position test are in :mod:`geoconv.probes.position`.

A convolution is supposed to commute with translations. On a finite grid it does so
exactly only for circular shifts, stride 1 and circular padding; every other choice
(zero/reflect/replicate padding, strides, crops) breaks it somewhere, and the probes
here measure where and by how much.

=================================  ============================================================
probe                              what it measures
=================================  ============================================================
:func:`shift_equivariance`         relative error :math:`\|F(Tx) - T'F(x)\| / \|F(x)\|` against
                                   the shift, for feature maps and globally pooled outputs
:func:`border_profile`             that error as a function of the distance to the border
:func:`predicted_border_band`      the band width the receptive field predicts for it
:func:`consistency`                Zhang (2019): :math:`P[\arg\max f(T_1x) = \arg\max f(T_2x)]`
:func:`absolute_position_test`     Kayhan & van Gemert (2020): can a conv + global max pool tell
                                   the same pattern at two corners apart?
=================================  ============================================================

Every probe takes a model (any callable ``(B, C, H, W) -> tensor``; an ``nn.Module`` is run
in eval mode and its modes are restored afterwards), works on the device and dtype of its
input, runs without autograd, and returns floats (or one small tensor) once at the end.

Examples
--------
>>> import torch
>>> from geoconv import build_op
>>> conv = build_op("conv", 1, 2, padding_mode="circular")
>>> curve = shift_equivariance(conv, torch.randn(1, 1, 8, 8), [1, 2, 3])
>>> max(curve.errors) < 1e-5
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from geoconv._checks import check_choice, check_pair
from geoconv.errors import ParameterError, ShapeError
from geoconv.probes._planar import (
    Model,
    check_axis,
    check_images,
    check_model,
    check_output_stride,
    check_shifts,
    crop_window,
    evaluating,
    global_pool,
    relative_error,
    run_model,
    shift_dims,
)

__all__ = [
    "SHIFT_KINDS",
    "ShiftCurve",
    "check_model",
    "evaluating",
    "shift_equivariance",
]

SHIFT_KINDS: tuple[str, ...] = ("circular", "crop")
"""The shifts the probes apply: ``circular`` (``torch.roll``) and ``crop`` (windows of a larger input)."""

_NAN = float("nan")


# --------------------------------------------------------------------------- equivariance error


@dataclass(frozen=True)
class ShiftCurve:
    """Relative equivariance error against the shift.

    Attributes
    ----------
    shifts : tuple of int
        The input shifts, in pixels (along both axes when ``axis`` is None).
    errors : tuple of float
        :math:`\\|F(Tx) - T'F(x)\\| / \\|F(x)\\|` on feature maps, one per shift; ``nan``
        where a shift is not a multiple of the output stride (no output shift
        corresponds to it) or, for crops, where the two outputs do not overlap. For a
        model that returns ``(B, K)`` it is the invariance error :math:`T' = 1`.
    pooled_errors : tuple of float or None
        The same for globally average-pooled outputs ``(B, C)``, where :math:`T'` is the
        identity for every shift; ``None`` unless ``pooled=True``.
    kind : str
        ``"circular"`` or ``"crop"``.
    axis : int or None
        ``None`` (diagonal shifts), ``-2`` (rows) or ``-1`` (columns).
    output_stride : (int, int)
        The total stride of the model, rows and columns.
    """

    shifts: tuple[int, ...]
    errors: tuple[float, ...]
    pooled_errors: tuple[float, ...] | None
    kind: str
    axis: int | None
    output_stride: tuple[int, int]

    def summary(self) -> dict[str, float]:
        """Flat metrics: max and mean over the shifts (``nan`` entries ignored; all-``nan`` gives ``nan``)."""

        def stats(values: Sequence[float]) -> tuple[float, float]:
            finite = [v for v in values if not math.isnan(v)]
            return (max(finite), sum(finite) / len(finite)) if finite else (_NAN, _NAN)

        out: dict[str, float] = {}
        out["error_max"], out["error_mean"] = stats(self.errors)
        if self.pooled_errors is not None:
            out["pooled_error_max"], out["pooled_error_mean"] = stats(self.pooled_errors)
        return out


def shift_equivariance(
    model: Model,
    x: torch.Tensor,
    shifts: Sequence[int] | int,
    *,
    kind: str = "circular",
    axis: int | None = None,
    output_stride: int | tuple[int, int] = 1,
    pooled: bool = False,
) -> ShiftCurve:
    r"""Relative equivariance error of ``model`` under integer shifts of ``x``.

    .. math::

        e(s) = \frac{\| F(T_s x) - T'_{s} F(x) \|_2}{\| F(x) \|_2}

    with norms over the whole batch, all channels and pixels compared.

    ``kind="circular"``
        :math:`T_s` is ``torch.roll`` by ``s`` along the shifted axes and
        :math:`T'_s` the roll by ``s / output_stride`` of the output. A shift that is
        not a multiple of the stride has no output counterpart: its feature-map error
        is ``nan`` (its pooled error is still measured). The model must map ``H`` to
        ``H / output_stride`` along the shifted axes.
    ``kind="crop"``
        ``x`` is a larger image; :math:`T_s x` is its window of size ``H - max(shifts)``
        (along the shifted axes) starting at offset ``s``, compared with the window at
        offset 0. With :math:`t = s / \text{output\_stride}` the outputs should agree on
        their overlap, ``F(T_s x)[:H'-t]`` against ``F(T_0 x)[t:]``; that overlap is what
        both norms run over (the reference norm is the one of ``F(T_0 x)[t:]``).
        Shifts must be non-negative.

    Pooled outputs (``pooled=True``) are the means over ``H'`` and ``W'``, invariant in
    the ideal case (:math:`T'` the identity), so every shift is measured, and for crops
    the whole windows are compared. A model that returns ``(B, K)`` (a classifier) is
    measured as invariant: ``errors`` and ``pooled_errors`` are then the same numbers.

    Parameters
    ----------
    model : callable
        ``(B, C, H, W) -> (B, C', H', W')`` or ``-> (B, K)``; an ``nn.Module`` runs in
        eval mode (restored afterwards).
    x : torch.Tensor
        ``(B, C, H, W)``, floating point, on the model's device.
    shifts : int or sequence of int
        Shifts in pixels; ``0`` gives the baseline (error 0 for a deterministic model).
    kind : str
        ``"circular"`` or ``"crop"``.
    axis : int, optional
        ``None`` shifts rows and columns by the same amount (a diagonal shift), ``-2``
        rows only, ``-1`` columns only.
    output_stride : int or (int, int)
        The model's total stride :math:`S` (rows, columns).
    pooled : bool
        Also measure globally average-pooled outputs.

    Returns
    -------
    ShiftCurve
        One error per shift, as Python floats.

    Raises
    ------
    GeoconvError
        For a wrong ``x``, an empty shift list, a negative crop shift, an unknown
        ``kind``, or a model whose output size does not match ``output_stride``.

    Examples
    --------
    A strided zero-padded conv is neither circularly equivariant nor invariant after pooling:

    >>> import torch
    >>> from geoconv import build_op
    >>> _ = torch.manual_seed(0)
    >>> conv = build_op("conv", 1, 4, stride=2)
    >>> curve = shift_equivariance(conv, torch.randn(2, 1, 16, 16), [0, 1, 2], output_stride=2, pooled=True)
    >>> curve.errors[0], math.isnan(curve.errors[1]), curve.errors[2] > 0.01
    (0.0, True, True)
    >>> curve.pooled_errors[1] > 0
    True
    """
    model = check_model(model)
    x = check_images(x)
    kind = check_choice("kind", kind, SHIFT_KINDS)
    axis = check_axis(axis)
    dims = shift_dims(axis)
    shifts = check_shifts(shifts, kind)
    stride = check_pair("output_stride", output_stride, minimum=1)
    if not isinstance(pooled, bool):
        raise ParameterError(f"pooled must be True or False, got {pooled!r}")

    largest = max(shifts)
    if kind == "crop":
        for dim in dims:
            if largest >= x.shape[dim]:
                raise ShapeError(
                    f"crop shifts up to {largest} leave no window of x of shape {tuple(x.shape)}; the largest shift "
                    f"must be smaller than the size of each shifted axis"
                )
        window = [x.shape[dim] - largest for dim in dims]

    errors: list[torch.Tensor] = []
    pooled_errors: list[torch.Tensor] = []
    nan = torch.full((), _NAN, device=x.device)
    with torch.no_grad(), evaluating(model):
        base = run_model(model, x if kind == "circular" else crop_window(x, 0, window, dims))
        check_output_stride(base, x, stride, dims, kind)
        for s in shifts:
            if kind == "circular":
                moved = run_model(model, torch.roll(x, (s,) * len(dims), dims))
            else:
                moved = run_model(model, crop_window(x, s, window, dims))
            if base.dim() == 2:
                errors.append(relative_error(moved - base, base))
            elif any(s % stride[dim + 2] for dim in dims):
                errors.append(nan)
            elif kind == "circular":
                steps = tuple(s // stride[dim + 2] for dim in dims)
                errors.append(relative_error(moved - torch.roll(base, steps, dims), base))
            else:
                steps = [s // stride[dim + 2] for dim in dims]
                if any(t >= base.shape[dim] for t, dim in zip(steps, dims, strict=True)):
                    errors.append(nan)
                else:
                    kept = [base.shape[dim] - t for t, dim in zip(steps, dims, strict=True)]
                    reference = base
                    for t, n, dim in zip(steps, kept, dims, strict=True):
                        reference = reference.narrow(dim, t, n)
                    overlap = crop_window(moved, 0, kept, dims)
                    errors.append(relative_error(overlap - reference, reference))
            if pooled:
                pooled_errors.append(relative_error(global_pool(moved) - global_pool(base), global_pool(base)))
        # float32 holds any error value well enough and exists on every backend.
        values = torch.stack([e.float() for e in errors]).tolist()
        pooled_values = torch.stack([e.float() for e in pooled_errors]).tolist() if pooled else None
    return ShiftCurve(
        shifts=shifts,
        errors=tuple(values),
        pooled_errors=None if pooled_values is None else tuple(pooled_values),
        kind=kind,
        axis=axis,
        output_stride=stride,
    )
