"""`colo repl --lab` on a real QEMU 7.2 COLO pair: a script waits for
colo-compare's first verdict, corrupts a primary packet on the primary-in
channel, kills the primary and runs COLO-FT.txt's failover onto the secondary,
whose query-colo-status then says it left COLO on request (its next polled
status: in our runs 7.2 sent no COLO_EXIT event on the secondary when the
primary had died first); the REPL's end stops both QEMUs.  The same script
on the fake lab is tests/repl/test_lab.py.  Skips where QEMU or the lab's guest
packages are missing."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.qemu._qemu import REAL_QEMU
from tests.qemu.test_lab import ROOT, _guest_missing
from tests.repl.test_lab import SCRIPT  # the same experiment as on the fake lab

pytestmark = [*REAL_QEMU, pytest.mark.skipif(_guest_missing() is not None,
                                             reason=str(_guest_missing()))]


def _qemus(mark: str) -> set[int]:
    """The QEMUs whose environment holds `mark` (they inherit the REPL's): this
    test's, not those of another run on the same machine."""
    r = subprocess.run(["pgrep", "-f", "qemu-system-x86_64"], capture_output=True, text=True)
    found = set()
    for pid in (int(x) for x in r.stdout.split()):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:                       # it ended meanwhile
            continue
        if mark.encode() in env.split(b"\0"):
            found.add(pid)
    return found


@pytest.mark.timeout(500)
def test_a_repl_script_runs_an_experiment_on_real_qemu():
    mark = f"COLO_TEST_MARK={uuid.uuid4().hex}"
    p = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--lab", "--net", "user",
                        "--checkpoint-delay", "2000", "--client-every", "0.3"],
                       input=SCRIPT, capture_output=True, text=True, timeout=450, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT),
                                COLO_TEST_MARK=mark.partition("=")[2]))
    out = p.stdout
    assert p.returncode == 0, (p.stderr[-2000:], out[-3000:])
    assert "stopped at verdict" in out and "stopped at fault" in out, out[-3000:]
    assert "stopped at status" in out, out[-3000:]
    assert "query-colo-status (mode none, last-mode secondary, reason request)" in out, \
        out[-2000:]
    deadline = time.monotonic() + 20          # bounded: the QEMUs were stopped at exit
    while _qemus(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _qemus(mark), "a QEMU outlived `colo repl --lab`"
