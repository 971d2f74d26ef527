"""How the C allocator treats large tensors while the benchmark runs.

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB at start, raised
dynamically after a large block is freed) with a fresh ``mmap``; the first write to each of
its pages is a page fault. A conv on 4 x 32 x 64 x 64 floats allocates tens of MB per
call, so whether those blocks come fresh from the kernel or from the heap decides much of
its time, and which one happens depends on what ran before. Measured here (torch 2.13, 2
threads): ``nn.ConvTranspose2d`` from 24 x 32 x 32 x 32 took 17 ms per forward with fresh
pages and 4.4 ms with reused ones, in the same process, depending on whether a backward
pass had run first. ``"reuse"`` (the benchmark's default) sets the threshold to 1 GiB and
the trim threshold to 2 GiB with ``mallopt``, so every row and its floor run with reused
heap memory (as a long training loop does, and as jemalloc or tcmalloc would give);
``"system"`` leaves the allocator alone. Other C libraries: nothing is changed and the
report says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
from collections.abc import Iterator

__all__ = ["ALLOCATORS", "allocator"]

ALLOCATORS = ("reuse", "system")
"""The values of ``job.allocator``."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_REUSE = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: (1 << 31) - 1}
_DEFAULTS = {_M_MMAP_THRESHOLD: 128 * 1024, _M_TRIM_THRESHOLD: 128 * 1024}


def _mallopt(settings: dict[int, int]) -> bool:
    libc = ctypes.CDLL(None)
    return all(libc.mallopt(ctypes.c_int(key), ctypes.c_int(value)) == 1 for key, value in settings.items())


@contextlib.contextmanager
def allocator(name: str) -> Iterator[str]:
    """Run the block under allocator policy ``name`` (:data:`ALLOCATORS`); yields a line for the report.

    After ``"reuse"`` glibc's thresholds go back to their initial values (128 KiB; the
    dynamic raising of the mmap threshold stays off for the rest of the process).
    """
    if name == "system":
        yield "system default (large blocks mmapped fresh or reused, as the C library decides)"
        return
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not _mallopt(_REUSE):
        yield "system default (job.allocator=reuse needs glibc's mallopt; not available here)"
        return
    try:
        yield "glibc malloc, large blocks reused (mallopt: mmap threshold 1 GiB, trim threshold 2 GiB)"
    finally:
        _mallopt(_DEFAULTS)
