"""Memory tuning for `colo` processes: large freed buffers stay in the heap, and
the cyclic garbage collector runs less often.

**Large buffers** (glibc), for processes that allocate and free a checkpoint's
worth of memory at every checkpoint.

A checkpoint's wire image, the pages gathered out of guest RAM and the pages
received are each tens or hundreds of MiB, allocated and freed once per
checkpoint.  glibc serves any allocation over its mmap threshold (at most
32 MiB) with a fresh mmap and unmaps it on free, so every page of the next
checkpoint's buffer faults on first touch: here ≈ 40 ms per 64 MiB, most of
the cost of encoding 64 MiB of pages.  Raising the mmap threshold (and the trim
threshold above it) keeps those buffers in the heap, reused checkpoint after
checkpoint; the price is that the heap keeps its peak size.  (This is the main
arena's setting: a worker thread's arena serves buffers over 64 MiB with mmap
whatever the threshold, so the TUI's live sources, which run in a thread, keep
paying the faults for bigger checkpoints.)

Elsewhere than glibc this does nothing (and returns False).

**The garbage collector.**  A session keeps every event (time travel, the
ladder, the log), and the TUI allocates many short-lived objects per frame;
with CPython's default first threshold (700 allocations) the collector keeps
re-scanning that growing heap: at full speed it cost the app a quarter of its
event rate.  A first threshold of 50,000 keeps cyclic garbage bounded (it is
still collected) at a fraction of the cost.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_MAX = 256 << 20
MAX_THRESHOLD = 1 << 30          # mallopt takes a C int; twice this must fit too


def keep_large_buffers(max_bytes: int = DEFAULT_MAX) -> bool:
    """Serve allocations up to `max_bytes` from the heap and keep up to twice
    that free in it; True if the allocator took it (glibc), False otherwise."""
    if not 0 < max_bytes <= MAX_THRESHOLD:
        raise ValueError(f"max_bytes must be between 1 and {MAX_THRESHOLD}, not {max_bytes}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, max_bytes)) and \
        bool(mallopt(M_TRIM_THRESHOLD, min(2 * max_bytes, 2**31 - 1)))


GC_THRESHOLDS = (50_000, 20, 100)


def relax_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Collect cyclic garbage less often (see the module docstring)."""
    gc.set_threshold(*thresholds)


def tune_process() -> None:
    """What every `colo` process does at start: both of the above."""
    keep_large_buffers()
    relax_gc()
