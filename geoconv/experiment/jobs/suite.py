"""The ``suite`` job: a quick pass of every measurement that applies to the grid (the ablation's default).

On a flat grid ``equivariance/max`` is the largest circular-shift equivariance error of the
feature maps over :func:`geoconv.experiment.jobs.shift.measured_shifts` (the configured
shifts and their multiples by the model's total stride, so a strided model such as a
``blur_pool`` stack is measured at shifts its output can follow); on a spherical grid, the
largest error over the grid's exact symmetries.
"""

from __future__ import annotations

from pathlib import Path

import torch

from geoconv.experiment.jobs._common import Plain, forward_ms, model_of, probe_input, title
from geoconv.experiment.jobs.registry import register_job
from geoconv.experiment.jobs.rotation import sphere_metrics
from geoconv.experiment.jobs.shift import plot_curves, shift_metrics
from geoconv.grids import get_grid
from geoconv.nn.models import count_parameters

__all__ = ["suite_job"]


@register_job("suite")
def suite_job(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """A quick pass of every probe that applies to the config's grid."""
    from geoconv.probes.locality import effective_receptive_field, erf_std

    job = plain["job"]
    model = model_of(plain, device)
    x = probe_input(plain, device, generator)
    if not get_grid(plain["grid"]["name"]).spherical:
        metrics, curves = shift_metrics(model, x, job["shifts"], ("circular",))
        metrics["equivariance/max"] = metrics["shift/circular/error_max"]
        size = plain["grid"]["size"]
        erf = effective_receptive_field(
            lambda seed: model_of(plain, device, seed=plain["seed"] + seed),
            (plain["data"]["channels"], size, size),
            inputs=2,
            inits=1,
            generator=generator,
            device=device,
        )
        metrics["erf/std_px"] = erf_std(erf)
        plot_curves(out_dir / "shift_curves.png", curves, title(plain))
    else:
        metrics, _ = sphere_metrics(plain, model, generator, job["rotations"], job.get("lmax"), job["erf_inputs"])
        metrics["equivariance/max"] = metrics["symmetry/max"]
    metrics["params"] = count_parameters(model)
    metrics["forward_ms"] = forward_ms(model, x)
    return metrics
