"""The probe runners behind the ``probe`` config group: measurements, metrics and figures.

Each runner takes the validated config (a plain dict), the device, a seeded generator and
the run directory; it builds the config's model, runs the probes of :mod:`geoconv.probes`,
writes its figures (PNG) into the run directory and returns flat metrics
(``"group/name" -> number``) for ``metrics.json``.

=============  ================  ===================================================================
probe          grids             what it measures
=============  ================  ===================================================================
``shift``      planar            equivariance error vs shift (circular, crop), pooled invariance,
                                 consistency, the border band, Kayhan & van Gemert's position test
``locality``   planar            theoretical vs gradient receptive field; ERF map; ERF std against
                                 depth, kernel size, dilation and stride, with log-log slopes
``rotation``   spherical         exact grid symmetries; Haar-random rotations next to the
                                 interpolation floor; the spherical ERF at the equator, pole, seam
``suite``      every grid        a quick pass of the above that applies (the ablation's default)
=============  ================  ===================================================================
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from geoconv.config import build_model
from geoconv.errors import ParameterError
from geoconv.grids import get_grid
from geoconv.nn.models import count_parameters

__all__ = ["locality_probe", "rotation_probe", "shift_probe", "suite_probe"]

Plain = dict[str, Any]


def _model(plain: Plain, device: torch.device, seed: int | None = None) -> torch.nn.Module:
    if seed is not None:
        torch.manual_seed(seed)
    return build_model(plain, plain["data"]["channels"]).to(device)


def _progress(message: str) -> None:
    from geoconv.runner import progress

    progress(message)


def _input(plain: Plain, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    from geoconv.runner import make_input

    return make_input(plain, device, generator)


def _require(plain: Plain, planar: bool, probe: str) -> None:
    grid = plain["grid"]["name"]
    if (grid == "planar") != planar:
        other = "the 'rotation' probe (experiment=rotation_equivariance)" if planar else "the 'shift' probe"
        raise ParameterError(
            f"the {probe!r} probe measures {'planar' if planar else 'spherical'} grids, got grid={grid!r}; use {other}"
        )


def _stride(x: torch.Tensor, y: torch.Tensor) -> int:
    return max(1, round(x.shape[-1] / y.shape[-1]))


def _forward_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Mean forward time in milliseconds, after two warm-up passes (lazy modules, table caches)."""
    with torch.no_grad():
        model(x)
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
    return 1000 * (time.perf_counter() - start) / repeats


def _figure(path: Path, draw, *, size: tuple[float, float] = (6.0, 4.0)) -> Path:
    """Draw with ``draw(figure)`` on an off-screen figure and save it as a PNG, atomically.

    The PNG goes into a temporary file beside ``path`` and is renamed over it
    (:func:`geoconv._io.atomic_write`): a run killed while saving leaves the previous
    figure or none, never a truncated PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from geoconv._io import atomic_write

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    try:
        draw(figure)
        atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    finally:
        figure.clear()
    return Path(path)


def _padding_mode(plain: Plain) -> str | None:
    """The padding mode the op really uses (``None`` for ops without padding)."""
    params = plain["op"].get("params") or {}
    if "padding_mode" not in params:
        return None
    return plain.get("padding_mode") or params["padding_mode"] or get_grid(plain["grid"]["name"]).default_padding_mode


def _title(plain: Plain) -> str:
    mode = _padding_mode(plain)
    padding = f", {mode} padding" if mode else ""
    return f"{plain['op']['name']} on {plain['grid']['name']}{padding}"


# -- shift invariance -----------------------------------------------------------------------


def _shift_metrics(
    model: torch.nn.Module, x: torch.Tensor, shifts: Sequence[int], kinds: Sequence[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    from geoconv.probes.shift import shift_equivariance

    with torch.no_grad():
        stride = _stride(x, model(x))
    metrics: dict[str, float] = {}
    curves = {}
    for kind in kinds:
        curve = shift_equivariance(model, x, list(shifts), kind=kind, output_stride=stride, pooled=True)
        curves[kind] = curve
        for key, value in curve.summary().items():
            metrics[f"shift/{kind}/{key}"] = value
        for shift, error, pooled in zip(curve.shifts, curve.errors, curve.pooled_errors or (), strict=False):
            metrics[f"shift/{kind}/error@{shift}"] = error
            metrics[f"shift/{kind}/pooled_error@{shift}"] = pooled
    return metrics, curves


def _plot_curves(path: Path, curves: dict[str, Any], title: str) -> Path:
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

    return _figure(path, draw)


def shift_probe(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """Shift invariance of the config's model on the plane; see the module table."""
    from geoconv.probes.locality import layers_of
    from geoconv.probes.shift import absolute_position_test, border_profile, consistency, predicted_border_band

    _require(plain, True, "shift")
    probe = plain["probe"]
    model = _model(plain, device)
    x = _input(plain, device, generator)
    _progress("equivariance error against shift")
    metrics, curves = _shift_metrics(model, x, probe["shifts"], probe["kinds"])
    _plot_curves(out_dir / "shift_curves.png", curves, _title(plain))
    _progress("border band and consistency")

    stride = _stride(x, model(x).detach())
    largest = max(s for s in probe["shifts"] if s % stride == 0) if any(s % stride == 0 for s in probe["shifts"]) else 0
    if largest:
        profile = border_profile(model, x, largest, output_stride=stride)
        scale = float(profile.max()) if profile.numel() else 0.0
        nonzero = (profile > 1e-6 * max(scale, 1e-30)).nonzero()
        metrics["border/measured_band"] = float(nonzero.max()) + 1 if nonzero.numel() else 0.0
    with contextlib.suppress(ParameterError):  # a layer of unknown geometry: no prediction
        metrics["border/predicted_band"] = float(predicted_border_band(layers_of(model, tuple(x.shape))))
    classifier = torch.nn.Sequential(model, torch.nn.Flatten(2)).to(device)
    metrics["consistency"] = consistency(
        lambda t: classifier(t).mean(-1), x, max(probe["shifts"]), pairs=probe["consistency_pairs"], generator=generator
    )
    if probe.get("absolute_position", False):
        _progress("absolute-position test (training a one-layer classifier)")
        mode = _padding_mode(plain) or "zeros"
        metrics["absolute_position/accuracy"] = absolute_position_test(mode, generator=generator, device=device)
    metrics["params"] = count_parameters(model)
    return metrics


# -- locality -------------------------------------------------------------------------------


def locality_probe(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
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

    _require(plain, True, "locality")
    probe = plain["probe"]
    size = plain["grid"]["size"]
    channels = plain["data"]["channels"]
    shape = (channels, size, size)
    metrics: dict[str, float] = {}
    model = _model(plain, device, seed=plain["seed"])
    with contextlib.suppress(ParameterError):  # a layer of unknown geometry (an upsampling): no theory
        metrics["rf/theoretical"] = theoretical_receptive_field(layers_of(model, shape)).size
    # The width of the support of the centre output's gradient, the same axis as layers_of's.
    metrics["rf/gradient_support"] = gradient_support(model, shape, generator=generator, device=device).shape[1]
    _progress("effective receptive field")
    erf = effective_receptive_field(
        lambda seed: _model(plain, device, seed=plain["seed"] + seed),
        shape,
        inputs=probe["inputs"],
        inits=probe["inits"],
        generator=generator,
        device=device,
    )
    metrics["erf/std"] = erf_std(erf)

    def draw_map(figure) -> None:
        axes = figure.subplots()
        image = axes.imshow(erf.detach().cpu().numpy(), cmap="magma")
        figure.colorbar(image, ax=axes, label="|d y_centre / d x|")
        axes.set_title(f"ERF: {_title(plain)}")

    _figure(out_dir / "erf_map.png", draw_map, size=(5.0, 4.2))

    sweeps = {}
    for parameter, key in (
        ("depth", "depths"),
        ("kernel_size", "kernel_sizes"),
        ("dilation", "dilations"),
        ("stride", "strides"),
    ):
        values = probe.get(key) or []
        if len(values) < 1:
            continue
        _progress(f"ERF against {parameter}: {values}")
        sweep = erf_sweep(
            parameter,
            values,
            inputs=probe["inputs"],
            inits=probe["inits"],
            generator=generator,
            device=device,
            activation=plain["model"].get("activation", "identity"),
            weights=probe.get("weights", "random"),
        )
        sweeps[parameter] = sweep
        for value, std, theory in zip(sweep["value"], sweep["std"], sweep["uniform_std"], strict=True):
            metrics[f"erf/std@{parameter}={int(value)}"] = std
            metrics[f"erf/uniform_theory_std@{parameter}={int(value)}"] = theory
        if len(values) > 1:
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

    _figure(out_dir / "erf_vs_geometry.png", draw_sweeps, size=(4.0 * max(len(sweeps), 1), 3.6))
    metrics["params"] = count_parameters(model)
    return metrics


# -- on the sphere --------------------------------------------------------------------------


def _sphere_metrics(
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


def rotation_probe(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """Equivariance and receptive fields of the config's model on a spherical grid."""
    from geoconv._io import atomic_path
    from geoconv.probes.sphere import ERF_CENTRES, plot_sphere_map, spherical_erf

    _require(plain, False, "rotation")
    probe = plain["probe"]
    model = _model(plain, device)
    metrics, result = _sphere_metrics(
        plain, model, generator, probe["rotations"], probe.get("lmax"), probe["erf_inputs"]
    )
    grid, size = plain["grid"]["name"], plain["grid"]["size"]
    logging.getLogger("healpy").setLevel(logging.WARNING)  # healpy narrates its graticule at INFO
    for name, centre in ERF_CENTRES.items():
        _progress(f"spherical ERF map at the {name}")
        erf = spherical_erf(
            model,
            grid,
            size,
            centre,
            inputs=probe["erf_inputs"],
            channels=plain["data"]["channels"],
            generator=generator,
        )
        with atomic_path(out_dir / f"erf_{name}.png") as temporary:
            plot_sphere_map(erf, grid, size, temporary, title=f"ERF at the {name}: {_title(plain)}")

    def draw(figure) -> None:
        axes = figure.subplots()
        index = range(len(result.per_rotation))
        axes.bar([i - 0.2 for i in index], result.per_rotation.tolist(), width=0.4, label="operator")
        axes.bar([i + 0.2 for i in index], result.floor_per_rotation.tolist(), width=0.4, label="identity (floor)")
        axes.set_xlabel("random rotation")
        axes.set_ylabel("relative error")
        axes.set_title(f"Rotation equivariance: {_title(plain)}")
        axes.legend()

    _figure(out_dir / "rotation_errors.png", draw)
    metrics["params"] = count_parameters(model)
    return metrics


# -- the suite ------------------------------------------------------------------------------


def suite_probe(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """A quick pass of every probe that applies to the config's grid."""
    from geoconv.probes.locality import effective_receptive_field, erf_std

    probe = plain["probe"]
    model = _model(plain, device)
    x = _input(plain, device, generator)
    if plain["grid"]["name"] == "planar":
        metrics, curves = _shift_metrics(model, x, probe["shifts"], ("circular",))
        metrics["equivariance/max"] = metrics["shift/circular/error_max"]
        size = plain["grid"]["size"]
        erf = effective_receptive_field(
            lambda seed: _model(plain, device, seed=plain["seed"] + seed),
            (plain["data"]["channels"], size, size),
            inputs=2,
            inits=1,
            generator=generator,
            device=device,
        )
        metrics["erf/std_px"] = erf_std(erf)
        _plot_curves(out_dir / "shift_curves.png", curves, _title(plain))
    else:
        metrics, _ = _sphere_metrics(
            plain, model, generator, probe["rotations"], probe.get("lmax"), probe["erf_inputs"]
        )
        metrics["equivariance/max"] = metrics["symmetry/max"]
    metrics["params"] = count_parameters(model)
    metrics["forward_ms"] = _forward_ms(model, x)
    return metrics
