r"""Clocks and memory meters of the benchmark, and the log-log slope of time against pixels.

- :func:`time_ms`: CUDA events on a GPU, :func:`time.perf_counter` on the CPU.
- :func:`peak_memory_bytes`: the CUDA allocator's peak on a GPU, :func:`cpu_peak_bytes`
  (traced allocations of torch's CPU allocator) on the CPU.
- :func:`pixel_slope`: the exponent :math:`a` of :math:`t \propto P^a`.

>>> round(pixel_slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]), 6)
1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from geoconv.errors import ParameterError

__all__ = ["cpu_peak_bytes", "peak_memory_bytes", "pixel_slope", "time_ms"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], *, repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn``, after ``warmup`` calls.

    CUDA: a pair of ``torch.cuda.Event`` around each call, read after synchronising; CPU:
    :func:`time.perf_counter` around each call.

    Returns
    -------
    list of float
        ``repeats`` times, in call order.

    Examples
    --------
    >>> times = time_ms(lambda: sum(range(100)), repeats=3, warmup=1, device=torch.device("cpu"))
    >>> len(times), all(t >= 0 for t in times)
    (3, True)
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
    their running sum, or 0. Allocations outside torch's allocator (e.g. oneDNN's scratch
    space) are not traced.

    >>> cpu_peak_bytes(lambda: torch.empty(1000, dtype=torch.float64)) >= 8000
    True
    """
    from torch.profiler import ProfilerActivity, profile  # imported here: the profiler is slow to import

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

    >>> peak, method = peak_memory_bytes(lambda: torch.zeros(256, 256), torch.device("cpu"))
    >>> peak >= 256 * 256 * 4, method
    (True, 'profiler')
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

    >>> round(pixel_slope([100, 400], [1.0, 2.0]), 6)  # time doubles as pixels quadruple
    0.5
    """
    x = np.asarray(pixels, dtype=np.float64)
    y = np.asarray(times, dtype=np.float64)
    if x.shape != y.shape or x.size < 2 or np.unique(x).size < 2:
        raise ParameterError(f"pixel_slope needs >= 2 distinct pixel counts with one time each, got {x} and {y}")
    if not (np.all(x > 0) and np.all(y > 0)):
        raise ParameterError("pixel_slope needs positive pixel counts and times for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
