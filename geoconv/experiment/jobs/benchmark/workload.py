"""What one row runs (:class:`Workload`), how it is built from its :class:`RowSpec`, and how it is measured.

A workload is ``forward(x)`` on a fixed input ``x``; the backward pass reaches ``x`` and the
module's parameters, with a fixed random cotangent. Everything is built through the grid
and op registries, so a plugin grid or op is benchmarked like a built-in one. A row is
measured interleaved with its partner (:func:`measure`, :func:`~.timing.paired_times`), or
alone when it has none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from geoconv.experiment.jobs.benchmark.baselines import path_context, reference_path
from geoconv.experiment.jobs.benchmark.rows import RowSpec, tensor_shape
from geoconv.experiment.jobs.benchmark.settings import DTYPES, PASSES, Settings
from geoconv.experiment.jobs.benchmark.sht import ducc0_round_trip, geoconv_round_trip
from geoconv.experiment.jobs.benchmark.timing import paired_times, peak_memory_bytes, ratio_summary, time_ms
from geoconv.grids import get_grid
from geoconv.ops.registry import build_op, get_op

__all__ = [
    "Workload",
    "build_workload",
    "free_memory",
    "is_oom",
    "measure",
    "measure_alone",
    "ratio_fields",
    "row_device",
    "time_fields",
]


@dataclasses.dataclass
class Workload:
    """What one row runs: ``forward(x)``; the backward pass reaches ``x`` and ``module``'s parameters.

    Examples
    --------
    >>> layer = torch.nn.Linear(4, 2)
    >>> work = Workload(layer, torch.randn(3, 4, requires_grad=True), layer)
    >>> work.fwdbwd()
    >>> work.x.grad.shape, layer.weight.grad.shape
    (torch.Size([3, 4]), torch.Size([2, 4]))
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    module: nn.Module | None = None
    cotangent: torch.Tensor | None = None
    seed: int = 0
    context: Callable[[], contextlib.AbstractContextManager] | None = None
    """Entered around every pass (e.g. ``geoconv.ops.conv_path("halo")``); ``None``: none."""
    passes: tuple[str, ...] = PASSES
    """The passes it has (the spectral-transform rows have no backward pass)."""
    trace_memory: bool = True
    """Whether its peak memory is measured (not for the spectral-transform rows)."""

    def _context(self) -> contextlib.AbstractContextManager:
        return self.context() if self.context is not None else contextlib.nullcontext()

    def _reset(self) -> None:
        self.x.grad = None
        if self.module is not None:
            for p in self.module.parameters():
                p.grad = None

    def fwd(self) -> None:
        """One forward pass under :func:`torch.no_grad` (inference)."""
        with torch.no_grad(), self._context():
            self.forward(self.x)

    def fwdbwd(self) -> None:
        """One forward pass with autograd, then ``y.backward(g)``; the gradients are reset first."""
        self._reset()
        with self._context():
            y = self.forward(self.x)
            if self.cotangent is None or self.cotangent.shape != y.shape:
                generator = torch.Generator().manual_seed(self.seed)
                self.cotangent = torch.randn(y.shape, generator=generator).to(device=y.device, dtype=y.dtype)
            y.backward(self.cotangent)

    def memory(self, device: torch.device) -> tuple[int, str]:
        """Peak bytes of one :meth:`fwdbwd` above what is held before it, and the meter's name."""
        if self.cotangent is None:  # the first pass creates it (and lazy parameters): not part of the peak
            self.fwdbwd()
        self._reset()
        return peak_memory_bytes(self.fwdbwd, device)


def row_device(spec: RowSpec, device: torch.device) -> torch.device:
    """Where a row runs: ``device``, except the spectral-transform rows, on the CPU (ducc0 is a CPU library)."""
    return torch.device("cpu") if spec.role in ("sht", "sht_ref") else device


def _passes(work: Workload, settings: Settings) -> tuple[str, ...]:
    """The job's passes that ``work`` has; all of its own when it has none of them."""
    return tuple(p for p in settings.passes if p in work.passes) or work.passes


def time_fields(name: str, times: Sequence[float]) -> dict[str, float]:
    """``<name>_ms`` (the median) and ``<name>_ms_min`` of one pass's times."""
    return {f"{name}_ms": statistics.median(times), f"{name}_ms_min": min(times)}


def ratio_fields(name: str, times: Sequence[float], partner: Sequence[float]) -> dict[str, float]:
    """``<name>`` (median of the per-pair ratios), ``<name>_q25`` and ``<name>_q75`` (:func:`~.timing.ratio_summary`).

    >>> ratio_fields("fwd_ratio", [2.0, 4.0], [1.0, 1.0])
    {'fwd_ratio': 3.0, 'fwd_ratio_q25': 2.5, 'fwd_ratio_q75': 3.5}
    """
    summary = ratio_summary(times, partner)
    return {name: summary["median"], f"{name}_q25": summary["q25"], f"{name}_q75": summary["q75"]}


def _memory_fields(work: Workload, settings: Settings, device: torch.device) -> dict[str, Any]:
    if not (settings.memory and work.trace_memory):
        return {}
    peak, method = work.memory(device)
    return {"peak_bytes": peak, "peak_mb": peak / 2**20, "memory": method}


def measure(
    work: Workload, settings: Settings, device: torch.device, partner: Workload | None = None
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Time ``work`` interleaved with ``partner`` (alone without one), then trace its memory.

    Returns
    -------
    (dict, dict)
        The row's measured fields (``<pass>_ms``, ``<pass>_ms_min``, and with a partner
        ``<pass>_ratio`` with its quartiles and ``pairs``; ``peak_bytes``, ``peak_mb``,
        ``memory``, ``timer``), and the partner's times by pass (empty without a partner),
        which its own row pools.
    """
    out: dict[str, Any] = {"timer": "cuda_event" if device.type == "cuda" else "perf_counter"}
    theirs: dict[str, list[float]] = {}
    for name in _passes(work, settings):
        if partner is None or name not in partner.passes:
            times = time_ms(getattr(work, name), repeats=settings.repeats, warmup=settings.warmup, device=device)
        else:
            times, theirs[name] = paired_times(
                getattr(work, name),
                getattr(partner, name),
                repeats=settings.repeats,
                warmup=settings.warmup,
                device=device,
            )
            out |= ratio_fields(f"{name}_ratio", times, theirs[name])
            out["pairs"] = ratio_summary(times, theirs[name])["pairs"]
        out |= time_fields(name, times)
    return out | _memory_fields(work, settings, device), theirs


def measure_alone(
    work: Workload, settings: Settings, device: torch.device, pooled: dict[str, list[float]]
) -> dict[str, Any]:
    """The fields of an anchor row (a floor, ducc0): its times pooled over its pairs, its ratios 1.

    A pass it was never paired in is timed alone. ``pairs`` counts the pooled times of its
    first pass.
    """
    out: dict[str, Any] = {"timer": "cuda_event" if device.type == "cuda" else "perf_counter"}
    for name in _passes(work, settings):
        times = pooled.get(name) or time_ms(
            getattr(work, name), repeats=settings.repeats, warmup=settings.warmup, device=device
        )
        out |= time_fields(name, times) | ratio_fields(f"{name}_ratio", times, times)
        out.setdefault("pairs", len(pooled.get(name, ())))
    return out | _memory_fields(work, settings, device)


def is_oom(err: BaseException) -> bool:
    """True for :class:`torch.OutOfMemoryError` or a ``RuntimeError`` whose message says out of memory."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_memory(device: torch.device) -> None:
    """Collect garbage and, on CUDA, return the cached blocks (after a row failed or ran out of memory)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _input(shape: Sequence[int], dtype: torch.dtype, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(tuple(shape), generator=generator).to(device=device, dtype=dtype)
    return x.requires_grad_(True)


def _sht_workload(spec: RowSpec, settings: Settings, generator: torch.Generator, x: torch.Tensor | None) -> Workload:
    """geoconv's or ducc0's analysis + synthesis at ``spec.params["lmax"]``, forward only, on the CPU.

    ducc0 takes float32 or float64: a half-precision job runs these rows in float32.
    """
    dtype = torch.float64 if settings.dtype == "float64" else torch.float32
    shape = tensor_shape(spec.grid, spec.size, settings.batch, settings.channels)
    if x is None:
        x = torch.randn(shape, generator=generator).to(dtype)
    lmax = spec.params["lmax"]
    round_trip = ducc0_round_trip if spec.role == "sht_ref" else geoconv_round_trip
    # No memory: it is a fwd+bwd measure, and ducc0 allocates outside torch, unseen by both meters.
    return Workload(lambda t: round_trip(t, lmax), x, passes=("fwd",), trace_memory=False)


def build_workload(
    spec: RowSpec,
    settings: Settings,
    device: torch.device,
    generator: torch.Generator,
    x: torch.Tensor | None = None,
) -> Workload:
    """Build the module and the input of one row (on ``device``, in the settings' dtype).

    ``floor``: ``nn.Conv2d(C, C, k, padding=k // 2)`` on the grid's folded faces
    (:meth:`~geoconv.grids.Grid.to_planes`), or for ``op="torch.nn.ConvTranspose2d"``
    ``nn.ConvTranspose2d(C, C, k, stride=s, padding=k // 2, output_padding=s - 1)`` (each
    face ``s`` times larger, as a "same" ``conv_transpose``); ``copy``: ``clone`` of a tensor
    shaped like the padded input; ``pad``: the grid's padding alone; ``sht``/``sht_ref``:
    geoconv's or ducc0's spherical-harmonic round trip (:mod:`.sht`; ``x``: the input, shared
    with the partner); otherwise the op (or its reference path) built by
    :func:`geoconv.build_op` on the row's grid, run under the case's conv path.
    """
    if spec.role in ("sht", "sht_ref"):
        return _sht_workload(spec, settings, generator, x)
    dtype = DTYPES[settings.dtype]
    b, c, k = settings.batch, settings.channels, settings.kernel_size
    grid = get_grid(spec.grid)
    shape = tensor_shape(spec.grid, spec.size, b, c)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    if spec.role == "floor":
        planes = grid.to_planes(torch.zeros(shape, device="meta"))
        if spec.op == "torch.nn.ConvTranspose2d":
            stride = spec.params["stride"]
            output_padding = tuple(s - 1 for s in stride)
            module = nn.ConvTranspose2d(c, c, k, stride=stride, padding=k // 2, output_padding=output_padding)
        else:
            module = nn.Conv2d(c, c, k, padding=k // 2)
        module = module.to(device=device, dtype=dtype)
        return Workload(module, _input(planes.shape, dtype, device, generator), module, seed=seed)
    if spec.role == "copy":
        padded = grid.pad(torch.zeros(tensor_shape(spec.grid, spec.size, 1, 1)), k // 2).shape
        return Workload(torch.clone, _input((b, c, *padded[2:]), dtype, device, generator), seed=seed)
    if spec.role == "pad":
        mode = spec.padding_mode
        return Workload(lambda t: grid.pad(t, k // 2, mode), _input(shape, dtype, device, generator), seed=seed)
    name, method = reference_path(spec.op)
    op = get_op(name)
    module = build_op(name, c, c, grid=spec.grid, **spec.params).to(device=device, dtype=dtype)
    context = path_context(spec.path)
    if method is not None:
        forward = getattr(module, method)
    else:

        def forward(t: torch.Tensor) -> torch.Tensor:
            out = op.apply(module, t)
            return out[0] if isinstance(out, tuple) else out

    return Workload(forward, _input(shape, dtype, device, generator), module, seed=seed, context=context)
