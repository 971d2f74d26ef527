r"""Speed and memory of ops × grids × resolutions, beside baselines, in one run (``experiment=benchmark``).

For every *case* ``(op, grid, padding_mode)`` of the job config and every resolution of its
grid, and in the same run, on inputs of the same size, for the *baselines*:

=================== ========================================================================
row (``label``)     what runs
=================== ========================================================================
the case (``conv``) ``geoconv.build_op(op, C, C, grid=grid, kernel_size=k, padding_mode=mode)``
                    on ``grid.shape_at(B, C, size)``; ``conv:zeros`` when the mode is not the
                    grid's own
``floor``           ``torch.nn.Conv2d(C, C, k, padding=k // 2)`` (torch's zero padding) on the
                    grid's folded faces ``grid.to_planes(x)``: the cost of the planar
                    convolution alone, which a padded conv cannot beat
``copy``            ``clone()`` of a tensor shaped like ``grid.pad(x, k // 2)``: one memory pass
``pad``             ``grid.pad(x, k // 2, mode)`` alone (``pad:zeros`` for another mode)
an op baseline      ``geoconv.build_op(name, C, C, grid=...)`` with its default parameters (and
                    the job's kernel size), on the case's grid when the op's spec lists it;
                    else on the first grid of ``job.match_pixels`` the op runs on, at the
                    resolution with the nearest pixel count (``grid.size_for_pixels``); else no
                    row. An op registered only with an optional package (``disco_conv``:
                    torch-harmonics) is ``skipped`` with the reason when the package is missing.
a reference path    a registered op computed another way (:mod:`.baselines`):
                    ``neighbour_gather`` is ``neighbour_conv`` as NNhealpix computes it, a 9-tap
                    gather of every pixel's neighbours, then one contraction
=================== ========================================================================

Nothing here names a grid: shapes, faces, padding and pixel counts come from the grid
(:class:`geoconv.grids.Grid`), where an op runs from its spec, so a plugin grid or op is
benchmarked with no change here.

Measurements (each row)
-----------------------
- ``fwd_ms``: the median over ``repeats`` runs, after ``warmup`` runs, of one forward pass
  under :func:`torch.no_grad` (inference).
- ``fwdbwd_ms``: the median of one forward pass with autograd, then ``y.backward(g)`` with a
  fixed random cotangent ``g`` (gradients of the input and of every parameter; they are reset
  to ``None`` before each run, so each run allocates them).
- Timers (:func:`time_ms`): on CUDA a pair of ``torch.cuda.Event`` per run, read after
  :func:`torch.cuda.synchronize` (``timer = "cuda_event"``); on the CPU
  :func:`time.perf_counter` around each run (``timer = "perf_counter"``).
- ``peak_mb``: the peak memory of one forward+backward above what was held before it
  (inputs, parameters and the cotangent are held before; the gradients are freed before).
  On CUDA, :func:`torch.cuda.max_memory_allocated` after
  :func:`torch.cuda.reset_peak_memory_stats`, minus :func:`torch.cuda.memory_allocated`
  before (``memory = "cuda_allocator"``). On the CPU, traced allocations
  (``memory = "profiler"``, :func:`cpu_peak_bytes`): the maximum of the running sum of the
  profiler's ``[memory]`` events in time order. Allocations outside torch's allocator
  (e.g. oneDNN's scratch space) are not traced.
- Ratios to the floor of the same grid and resolution: ``fwd_ratio``, ``fwdbwd_ratio``,
  ``mem_ratio`` (every row, the floor's own being 1); ``pad_over_copy`` (forward) and
  ``pad_over_copy_fwdbwd`` for each pad row; ``speedup_over_<baseline>`` = the baseline's
  ``fwdbwd_ms`` over the case's, for op baselines on the case's own grid.
- ``slope``: per (row label, grid), the least-squares slope of :math:`\log` ``fwdbwd_ms``
  against :math:`\log` pixels over the resolutions (:func:`pixel_slope`); ``slope_fwd`` for the
  forward pass. 1 is linear in the number of pixels.

Each row has a ``status``: ``ok``; ``oom`` (:class:`torch.OutOfMemoryError`, or a
``RuntimeError`` whose message says out of memory; memory is freed and the sweep goes on);
``skipped`` (with why, e.g. ``torch_harmonics is not installed``); ``failed`` (any other
exception, with its message; the sweep goes on).

Metrics (``metrics.json``; stable names)
----------------------------------------
``<label>/<grid>/<size>/<field>``
    for every ``ok`` row; ``<grid>/<size>`` are the case's grid and resolution as the config
    writes it (``HxW`` for a pair), also for a baseline run on another grid at about its pixel
    count; ``field`` is ``pixels``, ``fwd_ms``, ``fwdbwd_ms``, ``peak_mb``, ``fwd_ratio``,
    ``fwdbwd_ratio``, ``mem_ratio``, and ``pad_over_copy``, ``pad_over_copy_fwdbwd`` (pad rows)
    or ``speedup_over_<baseline>`` (case rows).
``<label>/<grid>/slope``, ``<label>/<grid>/slope_fwd``
    the log-log slopes (with at least two ``ok`` resolutions).
``rows/total``, ``rows/ok``, ``rows/oom``, ``rows/skipped``, ``rows/failed``
    counts.
``target/<name>`` (1 pass, 0 fail), ``target/<name>/worst``; ``targets/evaluated``, ``targets/passed``
    for each target of the job config whose metrics exist. A target names metrics by fnmatch
    patterns (``metric``: one or a list) and bounds (``min``, ``max``); it passes when every
    matching metric is within them. ``worst`` is the matching value nearest to failing.

Files: ``benchmark.csv`` (every row, every field, exact numbers, the machine),
``benchmark.md`` (the table, slopes, speedups and targets, the machine and the settings) and
``benchmark.png`` (fwd+bwd time against pixels, log-log, per grid), all written atomically.

Modules: :mod:`.settings` (the validated job config), :mod:`.baselines`, :mod:`.rows` (the
plan), :mod:`.workload` (building and measuring a row), :mod:`.timing` (clocks and memory
meters), :mod:`.sweep`, :mod:`.metrics` (metrics and targets), :mod:`.render` (CSV and
Markdown), :mod:`.plot`.

Examples
--------
>>> round(pixel_slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]), 6)
1.0
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from geoconv._io import atomic_write
from geoconv.errors import ParameterError
from geoconv.experiment.jobs.benchmark.metrics import evaluate_targets, sweep_metrics
from geoconv.experiment.jobs.benchmark.plot import plot_times
from geoconv.experiment.jobs.benchmark.render import machine_description, render_csv, render_markdown, settings_line
from geoconv.experiment.jobs.benchmark.rows import FIELDS, STATUSES, Row, RowSpec, plan
from geoconv.experiment.jobs.benchmark.settings import Case, Settings, Target
from geoconv.experiment.jobs.benchmark.sweep import run_sweep
from geoconv.experiment.jobs.benchmark.timing import cpu_peak_bytes, peak_memory_bytes, pixel_slope, time_ms
from geoconv.experiment.jobs.benchmark.workload import Workload, build_workload, measure
from geoconv.experiment.jobs.registry import register_job

log = logging.getLogger(__name__)

__all__ = [
    "FIELDS",
    "STATUSES",
    "Case",
    "Row",
    "RowSpec",
    "Settings",
    "Target",
    "Workload",
    "benchmark_job",
    "build_workload",
    "cpu_peak_bytes",
    "evaluate_targets",
    "machine_description",
    "measure",
    "peak_memory_bytes",
    "pixel_slope",
    "render_csv",
    "render_markdown",
    "run_sweep",
    "sweep_metrics",
    "time_ms",
]


@register_job("benchmark")
def benchmark_job(
    plain: dict[str, Any], device: torch.device, generator: torch.Generator, out_dir: Path
) -> dict[str, float]:
    """Run the benchmark sweep of ``plain["job"]``; write ``benchmark.csv/.md/.png``; return the metrics.

    Parameters
    ----------
    plain : dict
        The run's config as plain data; ``plain["job"]`` is validated by :meth:`Settings.from_job`
        before anything is timed.
    device : torch.device
        Where every row runs.
    generator : torch.Generator
        Seeds the inputs and cotangents.
    out_dir : Path
        Where the three files go (atomically).

    Returns
    -------
    dict of str to float
        The metrics of the package doc, and ``seconds`` (the sweep's wall time).
    """
    settings = Settings.from_job(plain["job"])  # every size and name is checked before any timing
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device} was asked for, but CUDA is not available")
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        machine = machine_description(device)
        log.info("benchmark on %s", machine)
        log.info("benchmark settings: %s; %d rows", settings_line(settings, device), len(plan(settings)))
        start = time.perf_counter()
        rows = run_sweep(settings, device, generator, log.info)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    metrics, slopes = sweep_metrics(rows)
    target_metrics, table = evaluate_targets(settings.targets, metrics)
    metrics.update(target_metrics)
    metrics["seconds"] = seconds
    atomic_write(out_dir / "benchmark.csv", render_csv(rows, settings, device, machine))
    text = render_markdown(rows, settings, device, machine, slopes, metrics, table, seconds)
    atomic_write(out_dir / "benchmark.md", text)
    plot_times(out_dir / "benchmark.png", rows, f"{machine}\n{settings_line(settings, device)}")
    print(text, flush=True)
    return metrics
