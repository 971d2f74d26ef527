"""The ``shift`` job: shift invariance on the plane.

Equivariance error against circular and crop shifts (pooled invariance too), consistency
(Zhang 2019), the border band, and the absolute-position test of Kayhan & van Gemert (2020).

Strided models
--------------
A model of total stride :math:`S` (three ``blur_pool`` layers: :math:`S = 8`) maps a shift of
the input by :math:`s` pixels to a shift of its output by :math:`s / S` pixels, which exists
only when :math:`S` divides :math:`s`; at any other shift the feature-map error is undefined
(``nan`` in the curve, and no ``error@<s>`` metric) and only the pooled error is measured.
So the shifts measured are the configured ``job.shifts`` *and* their multiples by :math:`S`
(:func:`measured_shifts`): every model gets feature-map errors, ``equivariance/max`` and
``shift/<kind>/error_max`` included, at shifts its output can follow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from geoconv.errors import ParameterError
from geoconv.experiment.jobs._common import (
    Plain,
    log,
    model_of,
    output_stride,
    padding_mode_of,
    probe_input,
    require_planar,
    title,
)
from geoconv.experiment.jobs.registry import register_job
from geoconv.nn.models import count_parameters
from geoconv.viz import figure

__all__ = ["measured_shifts", "plot_curves", "shift_job", "shift_metrics"]


def measured_shifts(shifts: Sequence[int], stride: int, kind: str, size: int) -> list[int]:
    """The configured ``shifts`` and their multiples by the model's total ``stride``, sorted.

    Crop shifts must leave a window of the ``size``-pixel input, so multiples of ``size`` or
    more are left out for ``kind="crop"``; a circular shift of any length is a roll.

    Examples
    --------
    >>> measured_shifts([1, 2, 4], 8, "circular", 32)
    [1, 2, 4, 8, 16, 32]
    >>> measured_shifts([0, 1, 2, 3], 2, "crop", 6)
    [0, 1, 2, 3, 4]
    >>> measured_shifts([1, 2], 1, "circular", 8)
    [1, 2]
    """
    multiples = {s * stride for s in shifts if kind == "circular" or s * stride < size}
    return sorted(set(shifts) | multiples)


def shift_metrics(
    model: torch.nn.Module, x: torch.Tensor, shifts: Sequence[int], kinds: Sequence[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Equivariance error of ``model`` on ``x`` at :func:`measured_shifts`, per kind of shift.

    Returns the flat metrics (``shift/<kind>/error@<s>``, ``.../pooled_error@<s>`` and the
    summaries ``error_max``, ``error_mean``, ...) and the curves (for :func:`plot_curves`).
    """
    from geoconv.probes.shift import shift_equivariance

    with torch.no_grad():
        stride = output_stride(x, model(x))
    metrics: dict[str, float] = {}
    curves = {}
    for kind in kinds:
        measured = measured_shifts(shifts, stride, kind, min(x.shape[-2:]))
        curve = shift_equivariance(model, x, measured, kind=kind, output_stride=stride, pooled=True)
        curves[kind] = curve
        for key, value in curve.summary().items():
            metrics[f"shift/{kind}/{key}"] = value
        for shift, error, pooled in zip(curve.shifts, curve.errors, curve.pooled_errors or (), strict=False):
            if shift % stride == 0:  # elsewhere the output has no shift to compare with: no such metric
                metrics[f"shift/{kind}/error@{shift}"] = error
            metrics[f"shift/{kind}/pooled_error@{shift}"] = pooled
    return metrics, curves


def plot_curves(path: Path, curves: dict[str, Any], title: str) -> Path:
    def draw(figure) -> None:
        axes = figure.subplots()
        for kind, curve in curves.items():
            axes.plot(curve.shifts, curve.errors, "o-", label=f"{kind}: feature maps")
            if curve.pooled_errors is not None:
                axes.plot(curve.shifts, curve.pooled_errors, "s--", label=f"{kind}: pooled")
        axes.set_xlabel("shift (pixels)")
        axes.set_ylabel("relative equivariance error")
        axes.set_yscale("symlog", linthresh=1e-6)
        axes.set_title(title)
        axes.legend()

    return figure(path, draw)


@register_job("shift")
def shift_job(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """Shift invariance of the config's model on the plane; see the module table."""
    from geoconv.probes.locality import layers_of
    from geoconv.probes.position import absolute_position_test, border_profile, consistency, predicted_border_band

    require_planar(plain, True, "shift")
    job = plain["job"]
    model = model_of(plain, device)
    x = probe_input(plain, device, generator)
    log.info("equivariance error against shift")
    metrics, curves = shift_metrics(model, x, job["shifts"], job["kinds"])
    plot_curves(out_dir / "shift_curves.png", curves, title(plain))
    log.info("border band and consistency")

    stride = output_stride(x, model(x).detach())
    measured = measured_shifts(job["shifts"], stride, "circular", min(x.shape[-2:]))
    largest = max((s for s in measured if s % stride == 0 and s < min(x.shape[-2:])), default=0)
    if largest:
        profile = border_profile(model, x, largest, output_stride=stride)
        scale = float(profile.max()) if profile.numel() else 0.0
        nonzero = (profile > 1e-6 * max(scale, 1e-30)).nonzero()
        metrics["border/measured_band"] = float(nonzero.max()) + 1 if nonzero.numel() else 0.0
    with contextlib.suppress(ParameterError):  # a layer of unknown geometry: no prediction
        metrics["border/predicted_band"] = float(predicted_border_band(layers_of(model, tuple(x.shape))))
    classifier = torch.nn.Sequential(model, torch.nn.Flatten(2)).to(device)
    metrics["consistency"] = consistency(
        lambda t: classifier(t).mean(-1), x, max(job["shifts"]), pairs=job["consistency_pairs"], generator=generator
    )
    if job.get("absolute_position", False):
        log.info("absolute-position test (training a one-layer classifier)")
        mode = padding_mode_of(plain) or "zeros"
        metrics["absolute_position/accuracy"] = absolute_position_test(mode, generator=generator, device=device)
    metrics["params"] = count_parameters(model)
    return metrics
