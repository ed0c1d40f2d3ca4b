"""Processes that die with another one: with their parent (Linux's PR_SET_PDEATHSIG), or
with any process (a pidfd); here beside the swarm's process pool, which uses it.

For children that must not outlive the process that started them, however it ends,
SIGKILL included: QEMUs and helpers of the lab and the fuzzer, the swarm's workers.
Call it in the child (between fork and exec, or first thing in a worker)."""
from __future__ import annotations

import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel for `sig` when this process's parent dies; False where there is
    no prctl (not Linux).  A parent already gone (re-parented to init before the
    call) ends this process at once."""
    import ctypes
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)
    return True


def exit_when_gone(pid: int, poll_s: float = 0.5) -> None:
    """End this process (exit 1) as soon as process `pid` is gone, which need not be
    its parent: a pool worker forked by multiprocessing's forkserver, whose server
    outlives the pool's owner as long as its workers live.  A daemon thread waits on
    a pidfd (Linux ≥ 5.3), or else checks every `poll_s` seconds."""
    import threading

    def wait_pidfd(fd: int) -> None:
        import select
        select.select([fd], [], [])
        os._exit(1)

    def poll() -> None:
        import time
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:     # alive, another user's
                pass
            time.sleep(poll_s)
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        threading.Thread(target=poll, name="exit-when-gone", daemon=True).start()
        return
    threading.Thread(target=wait_pidfd, args=(fd,), name="exit-when-gone",
                     daemon=True).start()
