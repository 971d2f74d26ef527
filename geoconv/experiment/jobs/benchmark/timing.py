r"""Clocks and memory meters of the benchmark, paired timing, and the log-log slope of time against pixels.

- :func:`time_ms`: one callable alone; CUDA events on a GPU, :func:`time.perf_counter` on the CPU.
- :func:`paired_times`: two callables interleaved repeat by repeat, the order alternating
  (A, B, then B, A, ...), so slow drift of the machine (other processes, clock boost, the
  allocator's state) hits both alike; :func:`ratio_summary` turns the pairs into the median
  of the per-pair ratios and its interquartile range.
- :func:`peak_memory_bytes`: the CUDA allocator's peak on a GPU, :func:`cpu_peak_bytes`
  (traced allocations of torch's CPU allocator) on the CPU; the profiler's own log lines are
  dropped (:func:`kineto_log_dropped`), nothing else.
- :func:`pixel_slope`: the exponent :math:`a` of :math:`t \propto P^a`.

>>> round(pixel_slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]), 6)
1.0
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from geoconv.errors import ParameterError

__all__ = [
    "cpu_peak_bytes",
    "kineto_log_dropped",
    "paired_times",
    "peak_memory_bytes",
    "pixel_slope",
    "ratio_summary",
    "time_ms",
]

Clock = Callable[[], float]

KINETO_LINE = re.compile(rb"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ [\w.]+:\d+\] ")
"""A line of Kineto's own log (``USDT:2026-01-01 10:00:00 12:12 SyncActivityProfilerHandler.cpp:52]
profiler_start``): two per profiled call in torch 2.13, written to file descriptor 2."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device, clock: Clock) -> float:
    """Milliseconds of one call: CUDA events read after synchronising, else ``clock`` (seconds) around it."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return float(start.elapsed_time(end))
    start_s = clock()
    fn()
    return 1000.0 * (clock() - start_s)


def time_ms(
    fn: Callable[[], object], *, repeats: int, warmup: int, device: torch.device, clock: Clock = time.perf_counter
) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn``, after ``warmup`` calls.

    CUDA: a pair of ``torch.cuda.Event`` around each call, read after synchronising; CPU:
    ``clock`` (:func:`time.perf_counter`, seconds) around each call.

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
    return [_time_once(fn, device, clock) for _ in range(repeats)]


def paired_times(
    first: Callable[[], object],
    second: Callable[[], object],
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
    clock: Clock = time.perf_counter,
) -> tuple[list[float], list[float]]:
    """Milliseconds of ``first`` and ``second``, interleaved: ``repeats`` pairs after ``warmup`` calls of each.

    Repeat ``i`` runs ``first`` then ``second`` for even ``i`` and ``second`` then ``first``
    for odd ``i``: whichever runs second in a pair finds the caches and the allocator as the
    other left them, and alternating cancels that, as it cancels a linear drift of the machine.
    Each call is timed as :func:`time_ms` times it.

    Returns
    -------
    (list of float, list of float)
        The times of ``first`` and of ``second``; entry ``i`` of both is pair ``i``.

    Examples
    --------
    >>> order = []
    >>> a, b = paired_times(lambda: order.append("A"), lambda: order.append("B"), repeats=3, warmup=1,
    ...                     device=torch.device("cpu"))
    >>> "".join(order), len(a), len(b)
    ('ABABBAAB', 3, 3)
    """
    for _ in range(warmup):
        first()
        second()
    _sync(device)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeats):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            times[which].append(_time_once((first, second)[which], device, clock))
    return times


def ratio_summary(times: Sequence[float], partner: Sequence[float]) -> dict[str, float | int]:
    """The median and quartiles of the per-pair ratios ``times[i] / partner[i]``, and how many pairs.

    Pairs whose partner time is not positive (a clock too coarse for it) are left out.
    Quartiles are :func:`numpy.percentile`'s (linear interpolation).

    Returns
    -------
    dict
        ``median``, ``q25``, ``q75`` (NaN when no pair is left) and ``pairs``.

    Examples
    --------
    >>> ratio_summary([2.0, 3.0, 4.0, 10.0], [1.0, 1.0, 2.0, 2.0])
    {'median': 2.5, 'q25': 2.0, 'q75': 3.5, 'pairs': 4}
    """
    a = np.asarray(times, dtype=np.float64)
    b = np.asarray(partner, dtype=np.float64)
    if a.shape != b.shape:
        raise ParameterError(f"ratio_summary needs one partner time per time, got {a.size} and {b.size}")
    keep = b > 0
    ratios = a[keep] / b[keep]
    if ratios.size == 0:
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan"), "pairs": 0}
    q25, median, q75 = np.percentile(ratios, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75), "pairs": int(ratios.size)}


@contextlib.contextmanager
def kineto_log_dropped() -> Iterator[None]:
    """Drop Kineto's log lines (:data:`KINETO_LINE`) written to file descriptor 2 inside the block.

    Kineto, the profiler's C++ core, logs ``profiler_start``/``profiler_stop`` on every
    profiled call, straight to descriptor 2; the level (``KINETO_LOG_LEVEL``) is read once,
    when torch loads, so it cannot be raised from here. Descriptor 2 is therefore routed to
    an unnamed temporary file for the block, and every line that is not Kineto's is written
    back to the original descriptor afterwards: warnings and errors of the measured code stay
    visible, in their order. Without a descriptor 2 the block runs as it is.
    """
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(AttributeError, ValueError, OSError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                kept = b"".join(line for line in sink.read().splitlines(True) if not KINETO_LINE.match(line))
                if kept:
                    os.write(saved, kept)
    finally:
        os.close(saved)


def cpu_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of the traced CPU allocations of one call of ``fn``, above the level at its start (bytes).

    Runs ``fn`` under ``torch.profiler.profile(activities=[ProfilerActivity.CPU],
    profile_memory=True)`` and takes the ``[memory]`` events of the Kineto results on the CPU
    (``nbytes``: + for an allocation, - for a free), sorted by time; returns the maximum of
    their running sum, or 0. Allocations outside torch's allocator (e.g. oneDNN's scratch
    space) are not traced. Prints nothing: no table is asked of the profiler, and its log
    lines are dropped (:func:`kineto_log_dropped`).

    >>> cpu_peak_bytes(lambda: torch.empty(1000, dtype=torch.float64)) >= 8000
    True
    """
    from torch.profiler import ProfilerActivity, profile  # imported here: the profiler is slow to import

    with kineto_log_dropped(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
