r"""Speed and memory of ops × grids × resolutions, beside baselines, in one run (``experiment=benchmark``).

For every *case* ``(op, grid, padding_mode[, path])`` of the job config and every resolution
it runs at (its own ``sizes``, else ``job.sizes.<grid>``), and in the same run, on inputs of
the same size, for the *baselines*:

=================== ========================================================================
row (``label``)     what runs
=================== ========================================================================
the case (``conv``) ``geoconv.build_op(op, C, C, grid=grid, kernel_size=k, padding_mode=mode)``
                    on ``grid.shape_at(B, C, size)``; ``conv:zeros`` when the mode is not the
                    grid's own; ``conv[halo]`` when the case names a conv path (``path``:
                    ``padded``, ``halo`` or ``auto``, the default): every pass runs under
                    ``geoconv.ops.conv_path(path)``. Where ``geoconv.ops`` has no
                    ``conv_path``, such a row is ``skipped`` with the reason.
``floor``           ``torch.nn.Conv2d(C, C, k, padding=k // 2)`` (torch's zero padding) on the
                    grid's folded faces ``grid.to_planes(x)``: the cost of the planar
                    convolution alone, which a padded conv cannot beat
``floor_transpose`` where a transposed case (an op with ``output_padding``: ``conv_transpose``)
                    runs: ``torch.nn.ConvTranspose2d(C, C, k, stride=s, padding=k // 2,
                    output_padding=s - 1)`` on the folded faces, ``s`` the case's stride (each
                    face ``s`` times larger, as a "same" ``conv_transpose`` makes it)
``copy``            ``clone()`` of a tensor shaped like ``grid.pad(x, k // 2)``: one memory pass
``pad``             ``grid.pad(x, k // 2, mode)`` alone (``pad:reflect`` for another mode); where
                    the grid has it, ``pad:zeros`` too (torch's ``F.pad`` of each face): the
                    least that writing a padded copy costs
an op baseline      ``geoconv.build_op(name, C, C, grid=...)`` with its default parameters (and
                    the job's kernel size), on the case's grid when the op's spec lists it;
                    else on the first grid of ``job.match_pixels`` the op runs on, at the
                    resolution with the nearest pixel count (``grid.size_for_pixels``); else no
                    row. An op registered only with an optional package (``disco_conv``:
                    torch-harmonics) is ``skipped`` with the reason when the package is missing.
a reference path    a registered op computed another way (:mod:`.baselines`):
                    ``neighbour_gather`` is ``neighbour_conv`` as NNhealpix computes it, a 9-tap
                    gather of every pixel's neighbours, then one contraction
``sht``             with ``job.sht_lmax = L`` and a CPU run: geoconv's spherical-harmonic analysis to degree
                    ``L`` then synthesis (:func:`geoconv.ops.spectral.sh_analysis`,
                    :func:`~geoconv.ops.spectral.sh_synthesis`) of ``B·C`` maps on the equirect
                    grid ``H = 2(L + 1)``, ``W = 2H`` (:mod:`.sht`), forward only, on the CPU
``ducc0_sht``       the same maps through ``ducc0.sht.analysis_2d`` then ``synthesis_2d``
                    (geometry ``F1``: the same rows and columns), ``torch.get_num_threads()``
                    threads; ``skipped`` with the reason when ducc0 is not installed
=================== ========================================================================

Nothing here names a grid: shapes, faces, padding and pixel counts come from the grid
(:class:`geoconv.grids.Grid`), where an op runs from its spec, so a plugin grid or op is
benchmarked with no change here.

Pairing
-------
Every row has a *partner* (``partner``): the ``floor`` of its group (grid and resolution of
the case it stands beside; ``floor_transpose`` for a transposed case), or ``ducc0_sht`` for
``sht``. The partner is built once per group and held; each row is timed **interleaved**
with it on fixed inputs (:func:`paired_times`): after ``warmup`` calls of each, ``repeats``
pairs, the order alternating (A, B, then B, A, ...), so that drift of a shared machine hits
both and cancels in the ratio of a pair. A pad row is paired with the floor and, again, with
the copy. The partners (*anchors*: the floors, ``ducc0_sht``) get the median of their times
pooled over all their pairs. A row whose partner did not build (or is ``skipped``) is timed
alone and has no ratios.

Measurements (each row)
-----------------------
- ``fwd_ms``: the median of one forward pass under :func:`torch.no_grad` (inference);
  ``fwd_ms_min`` the fastest.
- ``fwdbwd_ms``: the median of one forward pass with autograd, then ``y.backward(g)`` with a
  fixed random cotangent ``g`` (gradients of the input and of every parameter; they are reset
  to ``None`` before each run, so each run allocates them); ``fwdbwd_ms_min``.
- ``fwd_ratio``, ``fwdbwd_ratio``: the **median of the per-pair ratios** of the row's time to
  its partner's (:func:`ratio_summary`), with the interquartile range ``*_ratio_q25``,
  ``*_ratio_q75``; ``pairs``: how many pairs (an anchor's: how many it was in). An anchor's
  own ratios are 1.
- Timers (:func:`time_ms`): on CUDA a pair of ``torch.cuda.Event`` per run, read after
  :func:`torch.cuda.synchronize` (``timer = "cuda_event"``); on the CPU
  :func:`time.perf_counter` around each run (``timer = "perf_counter"``). The ``sht`` rows
  always run on the CPU (ducc0 is a CPU library).
- ``peak_mb``: the peak memory of one forward+backward above what was held before it
  (inputs, parameters and the cotangent are held before; the gradients are freed before).
  On CUDA, :func:`torch.cuda.max_memory_allocated` after
  :func:`torch.cuda.reset_peak_memory_stats`, minus :func:`torch.cuda.memory_allocated`
  before (``memory = "cuda_allocator"``). On the CPU, traced allocations
  (``memory = "profiler"``, :func:`cpu_peak_bytes`): the maximum of the running sum of the
  profiler's ``[memory]`` events in time order; it prints nothing (Kineto's own log lines on
  descriptor 2 are dropped, :func:`~.timing.kineto_log_dropped`). Allocations outside torch's
  allocator (e.g. oneDNN's scratch space) are not traced. Not measured for ``sht`` and
  ``ducc0_sht`` (forward only; ducc0 allocates outside torch).
- ``mem_ratio``: ``peak_bytes`` over the partner's (deterministic: one traced run each).
- ``pad_over_copy`` (forward) and ``pad_over_copy_fwdbwd``, with ``_q25``/``_q75``, for each
  pad row: the median per-pair ratio of the padding to a plain copy of its output.
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
    count; ``field`` is ``pixels``, ``pairs``, ``fwd_ms``, ``fwdbwd_ms``, ``peak_mb``,
    ``fwd_ratio``, ``fwdbwd_ratio`` (each with ``_q25``, ``_q75``), ``mem_ratio``, and
    ``pad_over_copy``, ``pad_over_copy_fwdbwd`` (with ``_q25``, ``_q75``; pad rows).
``<case>/<grid>/<size>/speedup_over_<baseline>``
    for op baselines on the case's own grid and resolution, paired with the same floor: the
    baseline's ``fwdbwd_ratio`` over the case's.
``sht/equirect/<H>x<W>/spectral_over_ducc0`` (with ``_q25``, ``_q75``)
    the ``sht`` row's ``fwd_ratio``: geoconv's transform over ducc0's.
``<label>/<grid>/slope``, ``<label>/<grid>/slope_fwd``
    the log-log slopes (with at least two ``ok`` resolutions).
``rows/total``, ``rows/ok``, ``rows/oom``, ``rows/skipped``, ``rows/failed``
    counts.
``target/<name>`` (1 pass, 0 fail), ``target/<name>/worst``; ``targets/evaluated``, ``targets/passed``
    for each target of the job config whose metrics exist. A target names metrics by fnmatch
    patterns (``metric``: one or a list) and bounds (``min``, ``max``); it passes when every
    matching metric is within them. ``worst`` is the matching value nearest to failing.

Files: ``benchmark.csv`` (every row, every field, exact numbers, the machine),
``benchmark.md`` (first the machine, the settings, the 1-minute load average before and
after the sweep and the allocator policy, then one line per (label, grid, resolution): fwd and fwd+bwd medians, the
paired ratio [q25–q75], the partner, pairs, peak MB, mem ratio, status; then slopes,
speedups, pad over copy, the spectral ratio and targets) and ``benchmark.png`` (fwd+bwd time
against pixels, log-log, per grid), all written atomically. Nothing else is printed but the
Markdown report and one log line per row.

``job.allocator``: ``reuse`` (glibc keeps large freed blocks for reuse during the sweep, so
that page faults of fresh ``mmap`` blocks do not decide the times; see :mod:`.allocator`) or
``system``.

Modules: :mod:`.settings` (the validated job config), :mod:`.allocator`, :mod:`.baselines`, :mod:`.rows` (the
plan), :mod:`.workload` (building and measuring a row), :mod:`.timing` (clocks, pairing and
memory meters), :mod:`.sht` (the spectral-transform rows), :mod:`.sweep`, :mod:`.metrics`
(metrics and targets), :mod:`.render` (CSV and Markdown), :mod:`.plot`.

Examples
--------
>>> round(pixel_slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]), 6)
1.0
>>> ratio_summary([2.0, 3.0, 4.0, 10.0], [1.0, 1.0, 2.0, 2.0])["median"]
2.5
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from geoconv._io import atomic_write
from geoconv.errors import ParameterError
from geoconv.experiment.jobs.benchmark.allocator import ALLOCATORS, allocator
from geoconv.experiment.jobs.benchmark.metrics import evaluate_targets, sweep_metrics
from geoconv.experiment.jobs.benchmark.plot import plot_times
from geoconv.experiment.jobs.benchmark.render import machine_description, render_csv, render_markdown, settings_line
from geoconv.experiment.jobs.benchmark.rows import FIELDS, STATUSES, Row, RowSpec, plan
from geoconv.experiment.jobs.benchmark.settings import Case, Settings, Target
from geoconv.experiment.jobs.benchmark.sweep import run_sweep
from geoconv.experiment.jobs.benchmark.timing import (
    cpu_peak_bytes,
    paired_times,
    peak_memory_bytes,
    pixel_slope,
    ratio_summary,
    time_ms,
)
from geoconv.experiment.jobs.benchmark.workload import Workload, build_workload, measure
from geoconv.experiment.jobs.registry import register_job

log = logging.getLogger(__name__)

__all__ = [
    "ALLOCATORS",
    "FIELDS",
    "STATUSES",
    "Case",
    "Row",
    "RowSpec",
    "Settings",
    "Target",
    "Workload",
    "allocator",
    "benchmark_job",
    "build_workload",
    "cpu_peak_bytes",
    "evaluate_targets",
    "machine_description",
    "measure",
    "paired_times",
    "peak_memory_bytes",
    "pixel_slope",
    "ratio_summary",
    "render_csv",
    "render_markdown",
    "run_sweep",
    "sweep_metrics",
    "time_ms",
]


def _load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the system has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


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
    if device.type != "cpu" and settings.sht_lmax is not None:
        # ducc0 runs on the CPU only: beside a GPU run its ratio would compare two machines.
        log.info(
            "job.sht_lmax=%d: no spectral-transform rows on %s (ducc0 is a CPU library)", settings.sht_lmax, device
        )
        settings = dataclasses.replace(settings, sht_lmax=None)
    threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        machine = machine_description(device)
        log.info("benchmark on %s", machine)
        log.info("benchmark settings: %s; %d rows", settings_line(settings, device), len(plan(settings)))
        with allocator(settings.allocator) as memory_policy:
            log.info("allocator: %s", memory_policy)
            load_before = _load_average()
            start = time.perf_counter()
            rows = run_sweep(settings, device, generator, log.info)
            seconds = time.perf_counter() - start
            load_after = _load_average()
        load = (load_before, load_after) if load_before is not None and load_after is not None else None
    finally:
        torch.set_num_threads(threads)
    metrics, slopes = sweep_metrics(rows)
    target_metrics, table = evaluate_targets(settings.targets, metrics)
    metrics.update(target_metrics)
    metrics["seconds"] = seconds
    atomic_write(out_dir / "benchmark.csv", render_csv(rows, settings, device, machine))
    text = render_markdown(rows, settings, device, machine, slopes, metrics, table, seconds, load, memory_policy)
    atomic_write(out_dir / "benchmark.md", text)
    plot_times(out_dir / "benchmark.png", rows, f"{machine}\n{settings_line(settings, device)}")
    print(text, flush=True)
    return metrics
