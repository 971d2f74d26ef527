"""The ``locality`` job: theoretical and effective receptive fields on the plane.

The theoretical receptive field against the gradient's support, the ERF map (Luo et al.
2016), and the ERF's spread against depth, kernel size, dilation and stride, with log-log
slopes beside the uniform-kernel theory. The sweeps stack the config's op, with its
parameters and the config's ``padding_mode`` (:func:`geoconv.probes.locality.erf_sweep`);
a sweep over a parameter the op does not have (``blur_pool`` has no ``kernel_size``) is
skipped, and so are all of them for an op whose geometry no layer list describes (an
upsampling, a non-local op, a plugin op without ``layers()``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from geoconv.errors import ParameterError
from geoconv.experiment.jobs._common import Plain, log, model_of, require_planar, title
from geoconv.experiment.jobs.registry import register_job
from geoconv.nn.models import count_parameters
from geoconv.ops.registry import get_op
from geoconv.viz import add_colorbar, figure

__all__ = ["locality_job"]


@register_job("locality")
def locality_job(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """Receptive fields of the config's model on the plane; see the module table."""
    from geoconv.probes.locality import (
        effective_receptive_field,
        erf_std,
        erf_sweep,
        gradient_support,
        layers_of,
        loglog_slope,
        theoretical_receptive_field,
    )

    require_planar(plain, True, "locality")
    job = plain["job"]
    size = plain["grid"]["size"]
    channels = plain["data"]["channels"]
    shape = (channels, size, size)
    metrics: dict[str, float] = {}
    model = model_of(plain, device, seed=plain["seed"])
    try:
        metrics["rf/theoretical"] = theoretical_receptive_field(layers_of(model, shape)).size
        geometry = True
    except ParameterError as err:  # an upsampling, a non-local op, an op without layers(): no theory
        log.warning(f"no theoretical receptive field and no ERF sweeps: {err}")
        geometry = False
    # The width of the support of the centre output's gradient, the same axis as layers_of's.
    metrics["rf/gradient_support"] = gradient_support(model, shape, generator=generator, device=device).shape[1]
    log.info("effective receptive field")
    erf = effective_receptive_field(
        lambda seed: model_of(plain, device, seed=plain["seed"] + seed),
        shape,
        inputs=job["inputs"],
        inits=job["inits"],
        generator=generator,
        device=device,
    )
    metrics["erf/std"] = erf_std(erf)

    def draw_map(figure) -> None:
        axes = figure.subplots()
        image = axes.imshow(erf.detach().cpu().numpy(), cmap="magma")
        add_colorbar(figure, image, axes, "|d y_centre / d x|")  # a few ticks and one power of ten
        axes.set_title(f"ERF: {title(plain)}")

    figure(out_dir / "erf_map.png", draw_map, size=(5.0, 4.2))

    op = plain["op"]
    fields = {p.name for p in get_op(op["name"]).parameters()}
    sweeps = {}
    for parameter, key in (
        ("depth", "depths"),
        ("kernel_size", "kernel_sizes"),
        ("dilation", "dilations"),
        ("stride", "strides"),
    ):
        values = job.get(key) or []
        if len(values) < 1 or not geometry:
            continue
        if parameter != "depth" and parameter not in fields:
            log.info(f"ERF against {parameter}: skipped, op {op['name']!r} has no parameter {parameter!r}")
            continue
        log.info(f"ERF against {parameter}: {values} ({op['name']})")
        sweep = erf_sweep(
            parameter,
            values,
            op=op["name"],
            params=op.get("params"),
            padding_mode=plain.get("padding_mode"),
            inputs=job["inputs"],
            inits=job["inits"],
            generator=generator,
            device=device,
            activation=plain["model"].get("activation", "identity"),
            weights=job.get("weights", "random"),
        )
        sweeps[parameter] = sweep
        for value, std, theory in zip(sweep["value"], sweep["std"], sweep["uniform_std"], strict=True):
            metrics[f"erf/std@{parameter}={int(value)}"] = std
            metrics[f"erf/uniform_theory_std@{parameter}={int(value)}"] = theory
        # A stack that moves nothing (aps_pool at stride 1 without blur) has a zero radius: no slope.
        if len(values) > 1 and min(sweep["std"]) > 0:
            metrics[f"erf/slope_{parameter}"] = loglog_slope(sweep["value"], sweep["std"])

    def draw_sweeps(figure) -> None:
        axes = figure.subplots(1, max(len(sweeps), 1), squeeze=False)[0]
        for ax, (parameter, sweep) in zip(axes, sweeps.items(), strict=False):
            ax.loglog(sweep["value"], sweep["std"], "o-", label="measured ERF std")
            ax.loglog(sweep["value"], sweep["uniform_std"], "k:", label="uniform-kernel theory")
            ax.set_xticks(sweep["value"], [str(int(v)) for v in sweep["value"]])
            ax.minorticks_off()
            ax.set_xlabel(parameter)
            ax.set_ylabel("ERF std (pixels)")
            ax.legend(fontsize="small")
        # The sweeps stack the configured op: say which, or the four panels could be anyone's.
        figure.suptitle(f"ERF spread against the stack's geometry: {title(plain)}")

    figure(out_dir / "erf_vs_geometry.png", draw_sweeps, size=(4.0 * max(len(sweeps), 1), 3.6))
    metrics["params"] = count_parameters(model)
    return metrics
