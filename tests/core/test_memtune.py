"""protocol.drivers.memtune: large freed buffers stay in the heap (glibc), so the next
checkpoint's buffer does not fault in page by page again."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from protocol.drivers.memtune import keep_large_buffers

CODE = """
import sys
from protocol.drivers.memtune import keep_large_buffers
if sys.argv[1] == "keep":
    assert keep_large_buffers()
def rss_kib():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:"))
base = rss_kib()
buf = b"\\x01" * (96 << 20)          # 96 MiB, every page touched
del buf
print(rss_kib() - base)
"""


def _rss_growth_after_free(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    return int(out.stdout.strip())


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc() or not os.path.exists("/proc/self/status"),
                    reason="needs glibc and /proc")
def test_a_freed_checkpoint_sized_buffer_stays_in_the_heap():
    kept = _rss_growth_after_free("keep")
    default = _rss_growth_after_free("default")
    assert kept >= 90 << 10, kept          # the 96 MiB are still resident, for reuse
    assert default < 16 << 10, default    # glibc's default: unmapped on free


def test_keep_large_buffers_refuses_a_nonsense_size():
    with pytest.raises(ValueError, match="max_bytes must be between 1 and 1073741824, not 0"):
        keep_large_buffers(0)
    with pytest.raises(ValueError, match="not 4294967296"):
        keep_large_buffers(1 << 32)


def test_tune_process_relaxes_the_collector_in_a_colo_process():
    code = ("import gc, sys; from colo_tui.cli.main import main; "
            "sys.argv = ['colo', 'faults']; main(['faults']); print(gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    from protocol.drivers.memtune import GC_THRESHOLDS
    assert out.stdout.strip().splitlines()[-1] == str(GC_THRESHOLDS)


def test_a_dropped_session_frees_its_guest_memory_under_the_relaxed_gc():
    """Time travel and restarts replace the simulation; its mapped guest RAM must
    go at once, not whenever the relaxed collector gets round to the cycles."""
    code = """
import weakref
from protocol.drivers.memtune import relax_gc
relax_gc()
from protocol.sim.config import SimConfig
from colo_tui.session.control import Controller
c = Controller(SimConfig(guest="model", ram_mib=64))
c.run(checkpoints=3)
refs = []
for _ in range(5):
    refs.append(weakref.ref(c.session))
    c.back(1)
refs.append(weakref.ref(c.session))
c.restart(seed=2)
print(sum(r() is not None for r in refs))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert out.stdout.strip() == "0"
