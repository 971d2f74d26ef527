r"""Speed and memory of ops × grids × resolutions, beside baselines, in one run (``experiment=benchmark``).

For every *case* ``(op, grid, padding_mode)`` of the job config and every resolution of its
grid, and in the same run, on inputs of the same size, for the *baselines*:

=================  ==========================================================================
row (``label``)    what runs
=================  ==========================================================================
the case (``conv``) ``geoconv.build_op(op, C, C, grid=grid, kernel_size=k, padding_mode=mode)``
                    on ``(B, C, *grid layout)``; ``conv:zeros`` when the mode is not the grid's own
``floor``           ``torch.nn.Conv2d(C, C, k, padding=k // 2)`` (torch's zero padding) on the
                    folded faces ``(B·faces, C, n, n)`` (equirect and planar: ``(B, C, H, W)``):
                    the cost of the planar convolution alone, which a padded conv cannot beat
``copy``            ``clone()`` of a tensor shaped like ``grid.pad(x, k // 2)``: one memory pass
``pad``             ``grid.pad(x, k // 2, mode)`` alone (``pad:zeros`` for another mode)
an op baseline      ``geoconv.build_op(name, C, C, grid=...)`` with its default parameters, on the
                    case's grid when the op supports it, else (``match_pixels``) on an equirect
                    grid ``(H, 2H)`` with about the case's pixel count, ``H = round(sqrt(P / 2))``,
                    when the op supports equirect; else no row. ``disco_conv`` (torch-harmonics'
                    ``DiscreteContinuousConvS2``) is ``skipped`` when torch-harmonics is missing.
``neighbour_gather`` ``neighbour_conv`` as NNhealpix computes it: a 9-tap gather of every pixel's
                    neighbours, then one contraction (HEALPix only)
=================  ==========================================================================

Measurements (each row)
-----------------------
- ``fwd_ms``: the median over ``repeats`` runs, after ``warmup`` runs, of one forward pass
  under :func:`torch.no_grad` (inference).
- ``fwdbwd_ms``: the median of one forward pass with autograd, then ``y.backward(g)`` with a
  fixed random cotangent ``g`` (gradients of the input and of every parameter; they are reset
  to ``None`` before each run, so each run allocates them).
- Timers: on CUDA a pair of ``torch.cuda.Event`` per run, read after
  :func:`torch.cuda.synchronize` (``timer = "cuda_event"``); on the CPU
  :func:`time.perf_counter` around each run (``timer = "perf_counter"``).
- ``peak_mb``: the peak memory of one forward+backward above what was held before it
  (inputs, parameters and the cotangent are held before; the gradients are freed before).
  On CUDA, :func:`torch.cuda.max_memory_allocated` after
  :func:`torch.cuda.reset_peak_memory_stats`, minus :func:`torch.cuda.memory_allocated`
  before (``memory = "cuda_allocator"``). On the CPU, traced allocations
  (``memory = "profiler"``): the pass runs under
  ``torch.profiler.profile(activities=[ProfilerActivity.CPU], profile_memory=True)``; every
  allocation and free of the CPU allocator is a ``[memory]`` event of the profiler's Kineto
  results with a signed byte count (``nbytes``: positive for an allocation, negative for a
  free) and a timestamp; the peak is the maximum of the running sum of those byte counts in
  time order (0 if it never rises above the start). Allocations outside torch's allocator
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
    for every ``ok`` row; ``<grid>/<size>`` are the case's grid and resolution (``size``: nside,
    the face side, the equirect height ``H``, or ``HxW`` for a pair), also for a baseline run on
    a matched equirect grid; ``field`` is ``pixels``, ``fwd_ms``, ``fwdbwd_ms``, ``peak_mb``,
    ``fwd_ratio``, ``fwdbwd_ratio``, ``mem_ratio``, and ``pad_over_copy``,
    ``pad_over_copy_fwdbwd`` (pad rows) or ``speedup_over_<baseline>`` (case rows).
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

Examples
--------
>>> round(pixel_slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]), 6)
1.0
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fnmatch
import gc
import importlib.util
import io
import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geoconv._checks import check_choice, check_float, check_int
from geoconv._io import atomic_write
from geoconv.errors import GeoconvError, ParameterError, unknown_name
from geoconv.experiment.jobs.registry import register_job
from geoconv.grids import get_grid, list_grids
from geoconv.ops.registry import build_op, get_op, list_ops
from geoconv.viz import figure

log = logging.getLogger(__name__)

__all__ = [
    "FIELDS",
    "Row",
    "Settings",
    "benchmark_job",
    "cpu_peak_bytes",
    "machine_description",
    "measure",
    "peak_memory_bytes",
    "pixel_slope",
    "run_sweep",
    "time_ms",
]

Plain = dict[str, Any]

FIXED_BASELINES = ("floor", "copy", "pad")
"""Baselines that are not registered ops: torch's Conv2d, a copy, the grid's padding alone."""

OPTIONAL_BASELINES = {"disco_conv": ("equirect",)}
"""Op baselines registered only when an optional package imports, with the grids they would support."""

GATHER_BASELINES = {"neighbour_gather": ("healpix",)}
"""Baselines that are a registered op's literal reference path: ``neighbour_gather`` is
``neighbour_conv`` computed as NNhealpix does, a 9-tap gather then one contraction
(:meth:`geoconv.ops.neighbour.NeighbourConv.gather_forward`)."""

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
PASSES = ("fwd", "fwdbwd")
STATUSES = ("ok", "oom", "skipped", "failed")


# -- settings -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One (op, grid, padding_mode) of the sweep; ``padding_mode`` is resolved (``None``: the op has none)."""

    op: str
    grid: str
    padding_mode: str | None
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """``op``, or ``op:mode`` when the mode is not the grid's own."""
        if self.padding_mode is None or self.padding_mode == get_grid(self.grid).default_padding_mode:
            return self.op
        return f"{self.op}:{self.padding_mode}"


@dataclasses.dataclass(frozen=True)
class Target:
    """A pass/fail bound on the metrics matching ``patterns``."""

    name: str
    patterns: tuple[str, ...]
    minimum: float | None
    maximum: float | None

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"in [{self.minimum:g}, {self.maximum:g}]"
        return f">= {self.minimum:g}" if self.minimum is not None else f"<= {self.maximum:g}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated ``job`` config of ``experiment=benchmark`` (see ``conf/job/benchmark.yaml``)."""

    cases: tuple[Case, ...]
    sizes: dict[str, tuple[Any, ...]]
    batch: int
    channels: int
    kernel_size: int
    repeats: int
    warmup: int
    dtype: str
    passes: tuple[str, ...]
    memory: bool
    baselines: tuple[str, ...]
    match_pixels: bool
    targets: tuple[Target, ...]
    threads: int | None = None

    @classmethod
    def from_probe(cls, probe: Plain) -> Settings:
        """Validate the probe config; every error names the parameter, the value and what was expected."""
        batch = check_int("job.batch", probe.get("batch"), minimum=1)
        channels = check_int("job.channels", probe.get("channels"), minimum=1)
        kernel_size = check_int("job.kernel_size", probe.get("kernel_size"), minimum=1)
        if kernel_size % 2 == 0:
            raise ParameterError(
                f"job.kernel_size must be odd (the floor's padding k // 2 keeps the size only then), got {kernel_size}"
            )
        repeats = check_int("job.repeats", probe.get("repeats"), minimum=1)
        warmup = check_int("job.warmup", probe.get("warmup"), minimum=0)
        dtype = check_choice("job.dtype", probe.get("dtype"), DTYPES)
        passes = tuple(check_choice("job.passes", p, PASSES) for p in _list("job.passes", probe.get("passes")))
        if not passes:
            raise ParameterError(f"job.passes must name at least one of {list(PASSES)}, got []")
        memory = probe.get("memory", True)
        if not isinstance(memory, bool):
            raise ParameterError(f"job.memory must be true or false, got {memory!r}")
        match_pixels = probe.get("match_pixels", True)
        if not isinstance(match_pixels, bool):
            raise ParameterError(f"job.match_pixels must be true or false, got {match_pixels!r}")

        known = (*FIXED_BASELINES, *sorted(set(list_ops()) | set(OPTIONAL_BASELINES) | set(GATHER_BASELINES)))
        baselines = []
        for name in _list("job.baselines", probe.get("baselines") or []):
            if name not in known:
                raise unknown_name("baseline (job.baselines)", name, known)
            if name not in baselines:
                baselines.append(name)

        threads = probe.get("threads")
        if threads is not None:
            threads = check_int("job.threads", threads, minimum=1)

        raw_sizes = probe.get("sizes")
        if not isinstance(raw_sizes, dict):
            raise ParameterError(f"job.sizes must map grid names to lists of resolutions, got {raw_sizes!r}")
        cases = []
        for i, raw in enumerate(_list("job.cases", probe.get("cases"))):
            cases.append(_case(f"job.cases[{i}]", raw))
        if not cases:
            raise ParameterError("job.cases must hold at least one case {op, grid, padding_mode}, got []")
        labels = [(c.label, c.grid) for c in cases]
        for label in labels:
            if labels.count(label) > 1:
                raise ParameterError(f"job.cases has the case {label[0]!r} on grid {label[1]!r} twice")
        sizes: dict[str, tuple[Any, ...]] = {}
        for case in cases:
            if case.grid in sizes:
                continue
            if case.grid not in raw_sizes:
                raise ParameterError(
                    f"job.sizes has no resolutions for grid {case.grid!r} (job.sizes.{case.grid}), "
                    f"which a case uses; it has {sorted(raw_sizes)}"
                )
            values = _list(f"job.sizes.{case.grid}", raw_sizes[case.grid])
            if not values:
                raise ParameterError(f"job.sizes.{case.grid} must list at least one resolution, got []")
            sizes[case.grid] = tuple(
                _check_size(f"job.sizes.{case.grid}[{j}]", case.grid, v, kernel_size) for j, v in enumerate(values)
            )
        targets = tuple(
            _target(f"job.targets[{i}]", t) for i, t in enumerate(_list("job.targets", probe.get("targets") or []))
        )
        names = [t.name for t in targets]
        for name in names:
            if names.count(name) > 1:
                raise ParameterError(f"job.targets has the name {name!r} twice")
        return cls(
            cases=tuple(cases),
            sizes=sizes,
            batch=batch,
            channels=channels,
            kernel_size=kernel_size,
            repeats=repeats,
            warmup=warmup,
            dtype=dtype,
            passes=passes,
            memory=memory,
            baselines=tuple(baselines),
            match_pixels=match_pixels,
            targets=targets,
            threads=threads,
        )


def _list(name: str, value: object) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ParameterError(f"{name} must be a list, got {value!r}")
    return list(value)


def _case(name: str, raw: object) -> Case:
    if not isinstance(raw, dict):
        raise ParameterError(f"{name} must be a mapping {{op, grid, padding_mode}}, got {raw!r}")
    unknown = set(raw) - {"op", "grid", "padding_mode", "params"}
    if unknown:
        raise unknown_name(f"key of {name}", sorted(unknown)[0], ("op", "grid", "padding_mode", "params"))
    op = raw.get("op")
    if op not in list_ops():
        raise unknown_name(f"op ({name}.op)", op, list_ops())
    grid = raw.get("grid")
    if grid not in list_grids():
        raise unknown_name(f"grid ({name}.grid)", grid, list_grids())
    spec = get_op(op)
    spec.check_grid(grid)
    params = dict(raw.get("params") or {})
    fields = {p.name for p in spec.parameters()}
    mode = raw.get("padding_mode")
    if "padding_mode" in fields:
        mode = get_grid(grid).check_mode(mode if mode is not None else params.get("padding_mode"))
    elif mode is not None:
        raise ParameterError(f"{name}.padding_mode={mode!r} is set, but op {op!r} has no padding; leave it null")
    else:
        mode = None
    case = Case(op, grid, mode, params)
    spec.make_config(**_op_params(op, 1, mode, params))  # wrong parameters fail here, before any timing
    return case


def _check_size(name: str, grid_name: str, value: object, kernel_size: int) -> Any:
    """The resolution ``value`` of ``grid_name``, checked (equirect also takes a pair ``[H, W]``)."""
    grid = get_grid(grid_name)
    try:
        if grid_name == "equirect" and isinstance(value, Sequence) and not isinstance(value, str):
            height, width = grid.resolution(tuple(value))  # type: ignore[attr-defined]
            size: Any = (height, width)
            spatial = (height, width)
        else:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ParameterError(f"must be an integer, got {value!r} ({type(value).__name__})")
            size = value
            spatial = grid.shape(1, 1, value)[-2:]
    except GeoconvError as err:
        expected = {
            "healpix": "nside, a power of two",
            "cubemap": "the face side F >= 1",
            "equirect": "the height H >= 1 (W = 2H), or a pair [H, W] with W even",
            "planar": "the image side >= 1",
        }.get(grid_name, "a resolution of the grid")
        raise ParameterError(f"{name} = {value!r} does not fit grid {grid_name!r} ({expected}): {err}") from None
    if kernel_size // 2 > min(spatial):
        raise ParameterError(
            f"{name} = {value!r}: a face of {spatial[0]}x{spatial[1]} pixels is smaller than the padding "
            f"kernel_size // 2 = {kernel_size // 2}; use a larger resolution or a smaller probe.kernel_size"
        )
    return size


def _target(name: str, raw: object) -> Target:
    if not isinstance(raw, dict) or "name" not in raw or "metric" not in raw:
        raise ParameterError(f"{name} must be a mapping {{name, metric, min and/or max}}, got {raw!r}")
    unknown = set(raw) - {"name", "metric", "min", "max"}
    if unknown:
        raise unknown_name(f"key of {name}", sorted(unknown)[0], ("name", "metric", "min", "max"))
    patterns = raw["metric"]
    patterns = (patterns,) if isinstance(patterns, str) else tuple(_list(f"{name}.metric", patterns))
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ParameterError(f"{name}.metric must be a metric name pattern or a list of them, got {raw['metric']!r}")
    minimum = None if raw.get("min") is None else check_float(f"{name}.min", raw["min"])
    maximum = None if raw.get("max") is None else check_float(f"{name}.max", raw["max"])
    if minimum is None and maximum is None:
        raise ParameterError(f"{name} ({raw['name']!r}) needs a bound: min, max or both")
    return Target(str(raw["name"]), patterns, minimum, maximum)


def _op_params(op: str, kernel_size: int, mode: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    fields = {p.name for p in get_op(op).parameters()}
    params: dict[str, Any] = {}
    if "kernel_size" in fields:
        params["kernel_size"] = kernel_size
    if mode is not None and "padding_mode" in fields:
        params["padding_mode"] = mode
    params.update(extra or {})
    return params


# -- measurement ----------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], *, repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn``, after ``warmup`` calls.

    CUDA: a pair of ``torch.cuda.Event`` around each call, read after synchronising; CPU:
    :func:`time.perf_counter` around each call.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    if device.type == "cuda":
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(float(start.elapsed_time(end)))
        return times
    for _ in range(repeats):
        start_s = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - start_s))
    return times


def cpu_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of the traced CPU allocations of one call of ``fn``, above the level at its start (bytes).

    Runs ``fn`` under ``torch.profiler.profile(activities=[ProfilerActivity.CPU],
    profile_memory=True)`` and takes the ``[memory]`` events of the Kineto results on the CPU
    (``nbytes``: + for an allocation, - for a free), sorted by time; returns the maximum of
    their running sum, or 0.

    >>> cpu_peak_bytes(lambda: torch.empty(1000, dtype=torch.float64)) >= 8000
    True
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        (e.start_ns(), int(e.nbytes()))
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda event: event[0])
    running, peak = 0, 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> tuple[int, str]:
    """Peak memory of one call of ``fn`` above what was allocated before it, and the method's name.

    CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``, minus ``memory_allocated``
    before (``"cuda_allocator"``). CPU: :func:`cpu_peak_bytes` (``"profiler"``).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before), "cuda_allocator"
    return cpu_peak_bytes(fn), "profiler"


def pixel_slope(pixels: Sequence[float], times: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log t` against :math:`\log P` (``numpy.polyfit``, degree 1).

    ``t ∝ P^a`` gives ``a``. Needs at least two distinct positive pixel counts and positive times.
    """
    x = np.asarray(pixels, dtype=np.float64)
    y = np.asarray(times, dtype=np.float64)
    if x.shape != y.shape or x.size < 2 or np.unique(x).size < 2:
        raise ParameterError(f"pixel_slope needs >= 2 distinct pixel counts with one time each, got {x} and {y}")
    if not (np.all(x > 0) and np.all(y > 0)):
        raise ParameterError("pixel_slope needs positive pixel counts and times for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@dataclasses.dataclass
class Workload:
    """What one row runs: ``forward(x)``; the backward pass reaches ``x`` and ``module``'s parameters."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    module: nn.Module | None = None
    cotangent: torch.Tensor | None = None
    seed: int = 0

    def _reset(self) -> None:
        self.x.grad = None
        if self.module is not None:
            for p in self.module.parameters():
                p.grad = None

    def fwd(self) -> None:
        with torch.no_grad():
            self.forward(self.x)

    def fwdbwd(self) -> None:
        self._reset()
        y = self.forward(self.x)
        if self.cotangent is None or self.cotangent.shape != y.shape:
            generator = torch.Generator().manual_seed(self.seed)
            self.cotangent = torch.randn(y.shape, generator=generator).to(device=y.device, dtype=y.dtype)
        y.backward(self.cotangent)

    def memory(self, device: torch.device) -> tuple[int, str]:
        if self.cotangent is None:  # the first pass creates it (and lazy parameters): not part of the peak
            self.fwdbwd()
        self._reset()
        return peak_memory_bytes(self.fwdbwd, device)


def measure(work: Workload, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Time (and trace the memory of) one workload; returns the row's measured fields."""
    out: dict[str, Any] = {"timer": "cuda_event" if device.type == "cuda" else "perf_counter"}
    for name in settings.passes:
        times = time_ms(getattr(work, name), repeats=settings.repeats, warmup=settings.warmup, device=device)
        out[f"{name}_ms"] = statistics.median(times)
        out[f"{name}_ms_min"] = min(times)
    if settings.memory:
        peak, method = work.memory(device)
        out["peak_bytes"] = peak
        out["peak_mb"] = peak / 2**20
        out["memory"] = method
    return out


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- rows -----------------------------------------------------------------------------------


FIELDS = (
    "group",
    "label",
    "role",
    "op",
    "grid",
    "padding_mode",
    "size",
    "shape",
    "pixels",
    "params",
    "fwd_ms",
    "fwd_ms_min",
    "fwdbwd_ms",
    "fwdbwd_ms_min",
    "peak_bytes",
    "peak_mb",
    "fwd_ratio",
    "fwdbwd_ratio",
    "mem_ratio",
    "pad_over_copy",
    "pad_over_copy_fwdbwd",
    "timer",
    "memory",
    "status",
    "reason",
)
"""The fields of a row, in the CSV's column order (the CSV adds the settings and the machine)."""


@dataclasses.dataclass
class RowSpec:
    """What a row will run, before it runs."""

    group_grid: str
    group_size: Any
    label: str
    role: str  # case | floor | copy | pad | baseline
    op: str
    grid: str
    size: Any
    padding_mode: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    skip: str = ""

    @property
    def group(self) -> str:
        return f"{self.group_grid}/{_size_key(self.group_size)}"


@dataclasses.dataclass
class Row:
    """One measured row; :data:`FIELDS` are its CSV columns."""

    spec: RowSpec
    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)

    @property
    def status(self) -> str:
        return self.values["status"]


def _size_key(size: Any) -> str:
    return f"{size[0]}x{size[1]}" if isinstance(size, tuple) else str(size)


def _spatial(grid: str, size: Any) -> tuple[int, ...]:
    if grid == "equirect" and isinstance(size, tuple):
        return tuple(size)
    return tuple(get_grid(grid).shape(1, 1, size)[2:])


def _shape(grid: str, size: Any, batch: int, channels: int) -> tuple[int, ...]:
    return (batch, channels, *_spatial(grid, size))


def _size_text(grid: str, size: Any) -> str:
    spatial = _spatial(grid, size)
    if grid == "healpix":
        return f"nside {size}"
    if grid == "cubemap":
        return f"face {size}"
    return f"{spatial[-2]}×{spatial[-1]}"


def _matched_equirect(pixels: int) -> int:
    return max(1, round(math.sqrt(pixels / 2)))


def _unavailable(name: str) -> str:
    """Why op baseline ``name`` cannot run here ("" when it can)."""
    if name in list_ops() or name in GATHER_BASELINES:
        return ""
    if name == "disco_conv":
        if importlib.util.find_spec("torch_harmonics") is None:
            return "torch_harmonics is not installed"
        return "torch_harmonics is installed but did not import (see the PluginWarning); disco_conv is not registered"
    return f"op {name!r} is not registered"


def _op_grids(name: str) -> tuple[str, ...]:
    if name in GATHER_BASELINES:
        return GATHER_BASELINES[name]
    return get_op(name).grids if name in list_ops() else OPTIONAL_BASELINES.get(name, ())


def plan(settings: Settings) -> list[RowSpec]:
    """Every row of the sweep, grouped by (grid, resolution), in the order they run."""
    rows: list[RowSpec] = []
    grids = list(dict.fromkeys(c.grid for c in settings.cases))
    k = settings.kernel_size
    for grid in grids:
        cases = [c for c in settings.cases if c.grid == grid]
        for size in settings.sizes[grid]:
            common = {"group_grid": grid, "group_size": size, "grid": grid, "size": size}
            for case in cases:
                rows.append(
                    RowSpec(
                        label=case.label,
                        role="case",
                        op=case.op,
                        padding_mode=case.padding_mode,
                        params=_op_params(case.op, k, case.padding_mode, case.params),
                        **common,
                    )
                )
            if "floor" in settings.baselines:
                rows.append(RowSpec(label="floor", role="floor", op="torch.nn.Conv2d", **common))
            modes = list(dict.fromkeys(c.padding_mode for c in cases if c.padding_mode is not None))
            if modes and "copy" in settings.baselines:
                rows.append(RowSpec(label="copy", role="copy", op="clone", **common))
            if "pad" in settings.baselines:
                default = get_grid(grid).default_padding_mode
                for mode in modes:
                    label = "pad" if mode == default else f"pad:{mode}"
                    rows.append(RowSpec(label=label, role="pad", op="grid.pad", padding_mode=mode, **common))
            pixels = math.prod(_spatial(grid, size))
            for name in settings.baselines:
                if name in FIXED_BASELINES:
                    continue
                op_grids = _op_grids(name)
                if grid in op_grids:
                    run_grid, run_size = grid, size
                elif settings.match_pixels and "equirect" in op_grids:
                    run_grid, run_size = "equirect", _matched_equirect(pixels)
                else:
                    continue
                rows.append(
                    RowSpec(
                        group_grid=grid,
                        group_size=size,
                        label=name,
                        role="baseline",
                        op=name,
                        grid=run_grid,
                        size=run_size,
                        params=_op_params(name, k, None) if name in list_ops() else {},
                        skip=_unavailable(name),
                    )
                )
    return rows


def _input(shape: Sequence[int], dtype: torch.dtype, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(tuple(shape), generator=generator).to(device=device, dtype=dtype)
    return x.requires_grad_(True)


def build_workload(spec: RowSpec, settings: Settings, device: torch.device, generator: torch.Generator) -> Workload:
    """Build the module and the input of one row (on ``device``, in the settings' dtype)."""
    dtype = DTYPES[settings.dtype]
    b, c, k = settings.batch, settings.channels, settings.kernel_size
    grid = get_grid(spec.grid)
    shape = _shape(spec.grid, spec.size, b, c)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    if spec.role == "floor":
        planes = grid.to_planes(torch.zeros(shape, device="meta"))
        module = nn.Conv2d(c, c, k, padding=k // 2).to(device=device, dtype=dtype)
        return Workload(module, _input(planes.shape, dtype, device, generator), module, seed=seed)
    if spec.role == "copy":
        padded = grid.pad(torch.zeros(_shape(spec.grid, spec.size, 1, 1)), k // 2).shape
        return Workload(torch.clone, _input((b, c, *padded[2:]), dtype, device, generator), seed=seed)
    if spec.role == "pad":
        mode = spec.padding_mode
        return Workload(lambda t: grid.pad(t, k // 2, mode), _input(shape, dtype, device, generator), seed=seed)
    if spec.op == "neighbour_gather":
        gather = build_op("neighbour_conv", c, c, grid=spec.grid).to(device=device, dtype=dtype)
        return Workload(gather.gather_forward, _input(shape, dtype, device, generator), gather, seed=seed)
    op = get_op(spec.op)
    module = build_op(spec.op, c, c, grid=spec.grid, **spec.params).to(device=device, dtype=dtype)

    def forward(t: torch.Tensor) -> torch.Tensor:
        out = op.apply(module, t)
        return out[0] if isinstance(out, tuple) else out

    return Workload(forward, _input(shape, dtype, device, generator), module, seed=seed)


def _run_row(spec: RowSpec, settings: Settings, device: torch.device, generator: torch.Generator) -> dict[str, Any]:
    values: dict[str, Any] = {
        "group": spec.group,
        "label": spec.label,
        "role": spec.role,
        "op": spec.op,
        "grid": spec.grid,
        "padding_mode": spec.padding_mode or "",
        "size": _size_text(spec.grid, spec.size),
        "shape": "x".join(map(str, _shape(spec.grid, spec.size, settings.batch, settings.channels))),
        "pixels": math.prod(_spatial(spec.grid, spec.size)),
        "params": "",
        "reason": "",
    }
    if spec.skip:
        return values | {"status": "skipped", "reason": spec.skip}
    work = None
    try:
        work = build_workload(spec, settings, device, generator)
        if work.module is not None:
            work.fwd()  # lazy parameters exist after a first call
            values["params"] = sum(p.numel() for p in work.module.parameters())
        values.update(measure(work, settings, device))
        values["status"] = "ok"
    except Exception as err:
        message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
        values.update(status="oom" if _is_oom(err) else "failed", reason=message)
    del work  # the row's tensors go here (reference counts); after an error, also what its traceback held
    if values["status"] != "ok":
        _free(device)
    return values


def _ratios(rows: list[Row]) -> None:
    floors = {r.spec.group: r for r in rows if r.spec.role == "floor" and r.status == "ok"}
    copies = {r.spec.group: r for r in rows if r.spec.role == "copy" and r.status == "ok"}
    for row in rows:
        if row.status != "ok":
            continue
        for mine, theirs, reference in (
            ("fwd_ratio", "fwd_ms", floors),
            ("fwdbwd_ratio", "fwdbwd_ms", floors),
            ("mem_ratio", "peak_bytes", floors),
        ):
            ref = reference.get(row.spec.group)
            if ref is not None and row[theirs] is not None and ref[theirs]:
                row.values[mine] = row[theirs] / ref[theirs]
        copy = copies.get(row.spec.group)
        if row.spec.role == "pad" and copy is not None:
            for mine, theirs in (("pad_over_copy", "fwd_ms"), ("pad_over_copy_fwdbwd", "fwdbwd_ms")):
                if row[theirs] is not None and copy[theirs]:
                    row.values[mine] = row[theirs] / copy[theirs]


def run_sweep(
    settings: Settings,
    device: torch.device,
    generator: torch.Generator,
    report: Callable[[str], None] = lambda message: None,
) -> list[Row]:
    """Run every row of :func:`plan`; a row that fails or runs out of memory does not stop the sweep."""
    specs = plan(settings)
    rows = []
    for i, spec in enumerate(specs, 1):
        values = _run_row(spec, settings, device, generator)
        rows.append(Row(spec, values))
        report(f"[{i}/{len(specs)}] {spec.group_grid} {_size_key(spec.group_size)}: {_row_summary(values)}")
    _ratios(rows)
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    """Three significant digits, without exponents from 0.001 up (1234.4 -> "1234")."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:.0f}"
        return f"{value:.{digits}g}" if value == 0 or abs(value) < 1e-3 else f"{value:#.{digits}g}".rstrip(".")
    return str(value)


def _row_summary(values: dict[str, Any]) -> str:
    text = f"{values['label']} on {values['grid']} {values['size']}"
    if values["status"] != "ok":
        return f"{text}: {values['status']} ({values['reason']})"
    parts = [f"{p} {_fmt(values.get(f'{p}_ms'))} ms" for p in PASSES if f"{p}_ms" in values]
    if "peak_mb" in values:
        parts.append(f"peak {_fmt(values['peak_mb'])} MB")
    return f"{text}: " + ", ".join(parts)


# -- metrics --------------------------------------------------------------------------------


_ROW_METRICS = (
    "pixels",
    "fwd_ms",
    "fwdbwd_ms",
    "peak_mb",
    "fwd_ratio",
    "fwdbwd_ratio",
    "mem_ratio",
    "pad_over_copy",
    "pad_over_copy_fwdbwd",
)


def _prefix(spec: RowSpec) -> str:
    return f"{spec.label}/{spec.group_grid}/{_size_key(spec.group_size)}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def sweep_metrics(rows: list[Row]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Flat metrics of the rows (see the module doc), and the slopes by (label, grid) for the report."""
    metrics: dict[str, float] = {}
    for row in rows:
        if row.status != "ok":
            continue
        for field in _ROW_METRICS:
            if _finite(row[field]):
                metrics[f"{_prefix(row.spec)}/{field}"] = row[field]
    # Speedups of each case over each op baseline that ran on the case's own grid and size.
    for case in (r for r in rows if r.spec.role == "case" and r.status == "ok" and _finite(r["fwdbwd_ms"])):
        for other in rows:
            if (
                other.spec.role == "baseline"
                and other.status == "ok"
                and other.spec.group == case.spec.group
                and other.spec.grid == case.spec.grid
                and _finite(other["fwdbwd_ms"])
            ):
                metrics[f"{_prefix(case.spec)}/speedup_over_{other.spec.label}"] = (
                    other["fwdbwd_ms"] / case["fwdbwd_ms"]
                )
    slopes: dict[str, dict[str, float]] = {}
    series: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.status == "ok":
            series.setdefault((row.spec.label, row.spec.group_grid), []).append(row)
    for (label, grid), members in series.items():
        for field, name in (("fwdbwd_ms", "slope"), ("fwd_ms", "slope_fwd")):
            points = [(r["pixels"], r[field]) for r in members if _finite(r[field]) and r[field] > 0]
            if len({p for p, _ in points}) >= 2:
                value = pixel_slope([p for p, _ in points], [t for _, t in points])
                metrics[f"{label}/{grid}/{name}"] = value
                slopes.setdefault(f"{label}/{grid}", {})[name] = value
    for status in STATUSES:
        metrics[f"rows/{status}"] = sum(r.status == status for r in rows)
    metrics["rows/total"] = len(rows)
    return metrics, slopes


def evaluate_targets(targets: Sequence[Target], metrics: dict[str, float]) -> tuple[dict[str, float], list[dict]]:
    """``target/<name>`` (1/0) and ``target/<name>/worst`` for each target with matching metrics."""
    out: dict[str, float] = {}
    table = []
    names = [n for n in metrics if not n.startswith(("target/", "targets/", "rows/"))]
    for target in targets:
        matched = sorted({n for p in target.patterns for n in fnmatch.filter(names, p)})
        entry: dict[str, Any] = {"target": target, "matched": matched}
        if not matched:
            table.append(entry)
            continue
        values = [metrics[n] for n in matched]

        def margin(v: float, target: Target = target) -> float:  # negative: outside the bounds
            below = v - target.minimum if target.minimum is not None else math.inf
            above = target.maximum - v if target.maximum is not None else math.inf
            return min(below, above)

        worst_name = min(matched, key=lambda n: margin(metrics[n]))
        passed = all(margin(v) >= 0 for v in values)
        out[f"target/{target.name}"] = int(passed)
        out[f"target/{target.name}/worst"] = metrics[worst_name]
        entry.update(passed=passed, worst=metrics[worst_name], worst_name=worst_name)
        table.append(entry)
    out["targets/evaluated"] = sum("passed" in e for e in table)
    out["targets/passed"] = sum(bool(e.get("passed")) for e in table)
    return out, table


# -- machine and files ----------------------------------------------------------------------


def machine_description(device: torch.device | None = None) -> str:
    """The CPU model, core count, torch version, threads and the CUDA device (if used), in one line."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    parts = [
        f"{cpu} ({os.cpu_count()} logical CPUs)",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} thread{'' if torch.get_num_threads() == 1 else 's'}",
    ]
    if device is not None and device.type == "cuda":
        parts.append(f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(device)}")
    else:
        parts.append("CPU run" + (f" (CUDA: {torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    return "; ".join(parts)


def _settings_line(settings: Settings, device: torch.device) -> str:
    return (
        f"device {device}, batch {settings.batch}, channels {settings.channels}→{settings.channels}, "
        f"kernel {settings.kernel_size}×{settings.kernel_size}, {settings.dtype}, "
        f"median of {settings.repeats} runs after {settings.warmup} warm-up"
    )


def render_csv(rows: list[Row], settings: Settings, device: torch.device, machine: str) -> str:
    """Every row, every field (exact numbers: ``repr`` of floats), the settings and the machine."""
    extra = {
        "device": str(device),
        "batch": settings.batch,
        "channels": settings.channels,
        "kernel_size": settings.kernel_size,
        "dtype": settings.dtype,
        "repeats": settings.repeats,
        "warmup": settings.warmup,
        "machine": machine,
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*FIELDS, *extra], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({f: ("" if row[f] is None else row[f]) for f in FIELDS} | extra)
    return buffer.getvalue()


def _md_table(header: Sequence[str], align: str, body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append(
        "|"
        + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for a, w in zip(align, widths, strict=True))
        + "|"
    )
    for r in body:
        cells = [c.rjust(w) if a == "r" else c.ljust(w) for c, a, w in zip(r, align, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    rows: list[Row],
    settings: Settings,
    device: torch.device,
    machine: str,
    slopes: dict[str, dict[str, float]],
    metrics: dict[str, float],
    targets: list[dict],
    seconds: float,
) -> str:
    """The Markdown report: machine, settings, the table, slopes, speedups and targets."""
    lines = [
        "# geoconv benchmark",
        "",
        f"- machine: {machine}",
        f"- settings: {_settings_line(settings, device)}; {seconds:.0f} s in all",
        "- ratio to floor: fwd+bwd time over the floor's (torch's `nn.Conv2d` with zero padding on the same "
        "pixels); mem ratio: peak memory of one fwd+bwd over the floor's",
        "",
    ]
    body = []
    for row in rows:
        status = row.status if not row["reason"] else f"{row.status}: {row['reason']}"
        label = row.spec.label if row.spec.grid == row.spec.group_grid else f"{row.spec.label} (≈ pixels)"
        body.append(
            [
                label,
                row.spec.grid,
                row["size"],
                str(row["pixels"]),
                _fmt(row["fwd_ms"]),
                _fmt(row["fwdbwd_ms"]),
                _fmt(row["fwdbwd_ratio"]),
                _fmt(row["peak_mb"]),
                _fmt(row["mem_ratio"]),
                status.replace("|", "\\|"),
            ]
        )
    header = ["op", "grid", "size", "pixels", "fwd ms", "fwd+bwd ms", "ratio to floor", "peak MB", "mem ratio"]
    header.append("status")
    lines += _md_table(header, "lllrrrrrrl", body)
    if slopes:
        lines += ["", "Log-log slope of time against pixels (1: linear):", ""]
        body = [[key, _fmt(v.get("slope")), _fmt(v.get("slope_fwd"))] for key, v in slopes.items()]
        lines += _md_table(["op/grid", "fwd+bwd", "fwd"], "lrr", body)
    speedups = {k: v for k, v in metrics.items() if "/speedup_over_" in k}
    overs = {k: v for k, v in metrics.items() if k.endswith("/pad_over_copy")}
    if speedups or overs:
        lines += ["", "Speedups (baseline fwd+bwd time over the case's) and pad over copy (forward):", ""]
        lines += _md_table(["metric", "value"], "lr", [[k, _fmt(v)] for k, v in {**speedups, **overs}.items()])
    if targets:
        lines += ["", "Targets:", ""]
        body = []
        for entry in targets:
            target = entry["target"]
            if "passed" not in entry:
                body.append([target.name, ", ".join(target.patterns), target.describe(), "", "not evaluated (no row)"])
                continue
            body.append(
                [
                    target.name,
                    ", ".join(target.patterns),
                    target.describe(),
                    f"{_fmt(entry['worst'])} ({entry['worst_name']})",
                    "pass" if entry["passed"] else "FAIL",
                ]
            )
        lines += _md_table(["target", "metrics", "bound", "worst", "result"], "lllll", body)
    counts = ", ".join(f"{int(metrics[f'rows/{s}'])} {s}" for s in STATUSES)
    lines += ["", f"Rows: {counts}.", ""]
    return "\n".join(lines)


def plot(path: Path, rows: list[Row], title: str) -> Path:
    """fwd+bwd time against pixels, log-log, one panel per grid, the floor dashed."""

    grids = list(dict.fromkeys(r.spec.group_grid for r in rows))

    def draw(figure) -> None:
        axes = figure.subplots(1, max(len(grids), 1), squeeze=False)[0]
        for ax, grid in zip(axes, grids, strict=False):
            labels = list(dict.fromkeys(r.spec.label for r in rows if r.spec.group_grid == grid))
            for label in labels:
                points = [
                    (r["pixels"], r["fwdbwd_ms"])
                    for r in rows
                    if r.spec.group_grid == grid
                    and r.spec.label == label
                    and r.status == "ok"
                    and _finite(r["fwdbwd_ms"])
                ]
                if not points:
                    continue
                style = {"color": "black", "linestyle": "--"} if label == "floor" else {"linestyle": "-"}
                matched = any(r.spec.label == label and r.spec.grid != grid for r in rows if r.spec.group_grid == grid)
                name = f"{label} (equirect, ≈ pixels)" if matched else label
                ax.loglog(*zip(*points, strict=True), marker="o", label=name, **style)
            ax.set_xlabel("pixels per channel")
            ax.set_ylabel("fwd+bwd time (ms)")
            ax.set_title(grid)
            ax.legend(fontsize="small")
        figure.suptitle(title, fontsize="small")

    return figure(path, draw, size=(4.6 * max(len(grids), 1), 4.0))


def _write(path: Path, text: str) -> None:

    atomic_write(path, text)


def _write_plot(path: Path, rows: list[Row], title: str) -> None:
    plot(path, rows, title)  # atomic: experiments._figure writes through geoconv._io.atomic_write


# -- the probe ------------------------------------------------------------------------------


@register_job("benchmark")
def benchmark_job(plain: Plain, device: torch.device, generator: torch.Generator, out_dir: Path) -> dict[str, float]:
    """Run the benchmark sweep of ``plain["job"]``; write ``benchmark.csv/.md/.png``; return the metrics."""

    settings = Settings.from_probe(plain["job"])  # every size and name is checked before any timing
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device} was asked for, but CUDA is not available")
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        machine = machine_description(device)
        log.info(f"benchmark on {machine}")
        log.info(f"benchmark settings: {_settings_line(settings, device)}; {len(plan(settings))} rows")
        start = time.perf_counter()
        rows = run_sweep(settings, device, generator, log.info)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    metrics, slopes = sweep_metrics(rows)
    target_metrics, table = evaluate_targets(settings.targets, metrics)
    metrics.update(target_metrics)
    metrics["seconds"] = seconds
    _write(out_dir / "benchmark.csv", render_csv(rows, settings, device, machine))
    text = render_markdown(rows, settings, device, machine, slopes, metrics, table, seconds)
    _write(out_dir / "benchmark.md", text)
    _write_plot(out_dir / "benchmark.png", rows, f"{machine}\n{_settings_line(settings, device)}")
    print(text, flush=True)
    return metrics
