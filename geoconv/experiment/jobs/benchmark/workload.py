"""What one row runs (:class:`Workload`), how it is built from its :class:`RowSpec`, and how it is measured.

A workload is ``forward(x)`` on a fixed input ``x``; the backward pass reaches ``x`` and the
module's parameters, with a fixed random cotangent. Everything is built through the grid
and op registries, so a plugin grid or op is benchmarked like a built-in one.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from geoconv.experiment.jobs.benchmark.baselines import reference_path
from geoconv.experiment.jobs.benchmark.rows import RowSpec, tensor_shape
from geoconv.experiment.jobs.benchmark.settings import DTYPES, Settings
from geoconv.experiment.jobs.benchmark.timing import peak_memory_bytes, time_ms
from geoconv.grids import get_grid
from geoconv.ops.registry import build_op, get_op

__all__ = ["Workload", "build_workload", "free_memory", "is_oom", "measure"]


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

    def _reset(self) -> None:
        self.x.grad = None
        if self.module is not None:
            for p in self.module.parameters():
                p.grad = None

    def fwd(self) -> None:
        """One forward pass under :func:`torch.no_grad` (inference)."""
        with torch.no_grad():
            self.forward(self.x)

    def fwdbwd(self) -> None:
        """One forward pass with autograd, then ``y.backward(g)``; the gradients are reset first."""
        self._reset()
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


def build_workload(spec: RowSpec, settings: Settings, device: torch.device, generator: torch.Generator) -> Workload:
    """Build the module and the input of one row (on ``device``, in the settings' dtype).

    ``floor``: ``nn.Conv2d(C, C, k, padding=k // 2)`` on the grid's folded faces
    (:meth:`~geoconv.grids.Grid.to_planes`); ``copy``: ``clone`` of a tensor shaped like the
    padded input; ``pad``: the grid's padding alone; otherwise the op (or its reference
    path) built by :func:`geoconv.build_op` on the row's grid.
    """
    dtype = DTYPES[settings.dtype]
    b, c, k = settings.batch, settings.channels, settings.kernel_size
    grid = get_grid(spec.grid)
    shape = tensor_shape(spec.grid, spec.size, b, c)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    if spec.role == "floor":
        planes = grid.to_planes(torch.zeros(shape, device="meta"))
        module = nn.Conv2d(c, c, k, padding=k // 2).to(device=device, dtype=dtype)
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
    if method is not None:
        return Workload(getattr(module, method), _input(shape, dtype, device, generator), module, seed=seed)

    def forward(t: torch.Tensor) -> torch.Tensor:
        out = op.apply(module, t)
        return out[0] if isinstance(out, tuple) else out

    return Workload(forward, _input(shape, dtype, device, generator), module, seed=seed)
