"""The benchmark's allocator policy, checked with glibc's own accounting (mallinfo2)."""

import ctypes
import platform

import pytest
import torch

from geoconv.experiment.jobs.benchmark.allocator import allocator

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mmapped_blocks() -> int:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2().hblks


def _blocks_while_holding(nbytes: int) -> int:
    held = torch.empty(nbytes, dtype=torch.uint8)
    count = _mmapped_blocks()
    del held
    return count


@pytest.mark.skipif(not glibc, reason="mallopt and mallinfo2 are glibc's")
def test_reuse_serves_large_tensors_from_the_heap_and_restores_the_threshold() -> None:
    big = 64 << 20  # above glibc's largest dynamic mmap threshold (32 MiB): mmapped by default
    before = _mmapped_blocks()
    assert _blocks_while_holding(big) == before + 1
    with allocator("reuse") as line:
        assert "reused" in line
        assert _blocks_while_holding(big) == _mmapped_blocks()  # from the heap: no new mmapped block
    # The threshold is back (larger than the heap's free 64 MiB, so the heap cannot serve it).
    assert _blocks_while_holding(2 * big) == _mmapped_blocks() + 1


def test_system_changes_nothing() -> None:
    with allocator("system") as line:
        assert "system default" in line
