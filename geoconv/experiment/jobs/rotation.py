"""The ``rotation`` job: equivariance and receptive fields on a spherical grid.

Exact grid symmetries, Haar-random rotations of band-limited fields next to the
interpolation floor of the identity, and the spherical ERF at the equator, a pole and a seam.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from geoconv.experiment.jobs._common import Plain, log, model_of, require_planar, title
from geoconv.experiment.jobs.registry import register_job
from geoconv.grids.conversion import spherical_grid
from geoconv.nn.models import count_parameters
from geoconv.viz import figure, plot_sphere_map

__all__ = ["rotation_job", "sphere_metrics"]


def sphere_metrics(
    plain: Plain, model: torch.nn.Module, generator: torch.Generator, rotations: int, lmax: int | None, erf_inputs: int
) -> tuple[dict[str, float], Any]:
    from geoconv.probes.sphere import erf_radii, rotation_error, symmetry_error

    grid, size = plain["grid"]["name"], plain["grid"]["size"]
    channels = plain["data"]["channels"]
    metrics = {
        f"symmetry/{k}": v for k, v in symmetry_error(model, grid, size, channels=channels, generator=generator).items()
    }
    result = rotation_error(model, grid, size, rotations=rotations, channels=channels, lmax=lmax, generator=generator)
    metrics.update({"rotation/error": result.error, "rotation/floor": result.floor, "rotation/excess": result.excess})
    radii = erf_radii(model, grid, size, inputs=erf_inputs, channels=channels, generator=generator)
    metrics.update({f"erf/{k}_deg": math.degrees(v) for k, v in radii.items()})
    return metrics, result


@register_job("rotation")
def rotation_job(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """Equivariance and receptive fields of the config's model on a spherical grid."""
    from geoconv.probes.sphere import spherical_erf

    require_planar(plain, False, "rotation")
    job = plain["job"]
    model = model_of(plain, device)
    metrics, result = sphere_metrics(plain, model, generator, job["rotations"], job.get("lmax"), job["erf_inputs"])
    grid, size = plain["grid"]["name"], plain["grid"]["size"]
    logging.getLogger("healpy").setLevel(logging.WARNING)  # healpy narrates its graticule at INFO
    for name, centre in spherical_grid(grid, "the rotation job").points_of_interest().items():
        log.info(f"spherical ERF map at the {name}")
        erf = spherical_erf(
            model,
            grid,
            size,
            centre,
            inputs=job["erf_inputs"],
            channels=plain["data"]["channels"],
            generator=generator,
        )
        # Centred on the ERF itself (orthographic or gnomonic), the probed point marked with a cross.
        plot_sphere_map(
            erf,
            grid,
            size,
            out_dir / f"erf_{name}.png",
            title=f"ERF at the {name}: {title(plain)}",
            view="auto",
            mark=centre,
            label="|d y_centre / d x|",
        )

    def draw(figure) -> None:
        axes = figure.subplots()
        index = range(len(result.per_rotation))
        axes.bar([i - 0.2 for i in index], result.per_rotation.tolist(), width=0.4, label="operator")
        axes.bar([i + 0.2 for i in index], result.floor_per_rotation.tolist(), width=0.4, label="identity (floor)")
        axes.set_xlabel("random rotation")
        axes.set_ylabel("relative error")
        axes.set_title(f"Rotation equivariance: {title(plain)}")
        axes.legend()

    figure(out_dir / "rotation_errors.png", draw)
    metrics["params"] = count_parameters(model)
    return metrics
