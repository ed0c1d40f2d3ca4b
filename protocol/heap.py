"""Keep large freed buffers in the process heap (glibc), for processes that
allocate and free a checkpoint's worth of memory at every checkpoint.

A checkpoint's wire image, the pages gathered out of guest RAM and the pages
received are each tens or hundreds of MiB, allocated and freed once per
checkpoint.  glibc serves any allocation over its mmap threshold (at most
32 MiB) with a fresh mmap and unmaps it on free, so every page of the next
checkpoint's buffer faults on first touch: here ≈ 40 ms per 64 MiB, most of
the cost of encoding 64 MiB of pages.  Raising the mmap threshold (and the trim
threshold above it) keeps those buffers in the heap, reused checkpoint after
checkpoint; the price is that the heap keeps its peak size.

Elsewhere than glibc this does nothing (and says so).
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_MAX = 256 << 20


def keep_large_buffers(max_bytes: int = DEFAULT_MAX) -> bool:
    """Serve allocations up to `max_bytes` from the heap and keep up to twice
    that free in it; True if the allocator took it (glibc), False otherwise."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trim = min(2 * max_bytes, 2**31 - 1)
    return bool(mallopt(M_MMAP_THRESHOLD, max_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
