"""A swarm interrupted (ctrl+c, SIGTERM) ends at once, ends its worker processes and
reports the seeds that ran; real subprocesses, as a user runs them."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _read_pty(fd: int, buf: bytearray, wait_s: float) -> bool:
    """Append what the terminal has within `wait_s`; False once it is closed."""
    if not select.select([fd], [], [], wait_s)[0]:
        return True
    try:
        data = os.read(fd, 65536)
    except OSError:             # (EIO: every writer has closed it)
        return False
    buf += data
    return bool(data)


def _wait_for_seeds(fd: int, buf: bytearray, wait_s: float = 120.0) -> int:
    """Read the swarm's progress bar (stderr is a terminal, as a user's) until it
    shows a seed done: a fixed sleep once ended a loaded run before the first seed
    (pure-Python core, a busy machine: 0 seeds after 5 s)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and _read_pty(fd, buf, 0.2):
        done = re.findall(rb"(\d+)/100000", bytes(buf))
        if done and int(done[-1]) > 0:
            return int(done[-1])
    return 0


def _group_left(pgid: int, wait_s: float = 5.0) -> list[str]:
    deadline = time.monotonic() + wait_s
    while True:
        left = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True,
                              text=True).stdout.split()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.mark.parametrize("sig,to_group,code", [
    (signal.SIGINT, True, 130),      # ctrl+c in a terminal: the whole process group
    (signal.SIGTERM, False, 143),    # kill PID: the parent alone
])
def test_an_interrupted_swarm_reports_what_ran_and_leaves_no_worker(sig, to_group, code,
                                                                   tmp_path):
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "colo_tui", "explore", "--swarm", "100000",
                          "--workers", "2", "--json", "--repro-dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=slave, text=True,
                         cwd=ROOT, start_new_session=True)
    os.close(slave)
    tty = bytearray()
    try:
        assert _wait_for_seeds(master, tty), tty[-500:]    # the pool runs seeds
        assert p.poll() is None, p.communicate()
        sent = time.monotonic()
        if to_group:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
        # (orphaned workers would hold the pipes open: the wait is bounded)
        out, _ = p.communicate(timeout=30)
        took = time.monotonic() - sent
        left = _group_left(p.pid)
        end = time.monotonic() + 5
        while time.monotonic() < end and _read_pty(master, tty, 0.2):   # its last words
            pass
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)       # whatever of the swarm is left
        except ProcessLookupError:
            pass
        p.wait()
        os.close(master)
    err = tty.decode(errors="replace")
    assert p.returncode == code, (p.returncode, err)
    assert "Traceback" not in err, err
    assert f"stopped by {sig.name}" in err, err
    report = json.loads(out)
    assert report["interrupted"] == sig.name and report["budget_stopped"], report
    assert 0 < report["seeds"] < 100_000, report
    assert took < 5, f"{took:.1f} s to stop (it waited for the chunks in flight)"
    assert not left, f"worker processes outlived the swarm: {left}"


def test_a_swarm_killed_with_sigkill_leaves_no_worker(tmp_path):
    """SIGKILL cannot be caught: the workers (children of the pool's forkserver,
    which ends with the swarm) die through PR_SET_PDEATHSIG."""
    p = subprocess.Popen([sys.executable, "-m", "colo_tui", "explore", "--swarm", "100000",
                          "--workers", "2", "--json", "--repro-dir", str(tmp_path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd=ROOT, start_new_session=True)
    try:
        time.sleep(5)                       # the pool has started and seeds run
        assert p.poll() is None
        assert len(_group_left(p.pid, 0)) >= 3     # the swarm, a forkserver, workers
        p.kill()
        p.wait(10)
        left = _group_left(p.pid, 10)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"worker processes outlived the swarm: {left}"
