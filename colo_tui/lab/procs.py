"""Child processes that cannot outlive the lab.

Each child gets PR_SET_PDEATHSIG=SIGKILL (the kernel kills it when the lab's
process dies, even by SIGKILL) and its own process group (a ctrl+c on the
terminal reaches the lab, which then stops its children in order).  `reap_all`
runs at exit and on SIGTERM/SIGHUP (turned into SystemExit by `install`)."""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading

from protocol.sim.pdeath import die_with_parent

_children: list[subprocess.Popen] = []
_lock = threading.Lock()


def _child_setup() -> None:  # runs in the child between fork and exec
    die_with_parent()         # (the lab died before it: the child does not linger)
    os.setpgid(0, 0)


def spawn(cmd: list[str], **kw) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, preexec_fn=_child_setup, **kw)  # noqa: PLW1509
    with _lock:
        _children.append(proc)
    return proc


def reap(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always waited for."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:   # D state: the kernel will reap it
        pass


def reap_all() -> None:
    with _lock:
        procs = list(_children)
        _children.clear()
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        reap(p, 0)


def _to_exit(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def install() -> None:
    """Stop every child at exit and on SIGTERM / SIGHUP (ctrl+c is
    KeyboardInterrupt already)."""
    atexit.register(reap_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _to_exit)
