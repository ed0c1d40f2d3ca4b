"""`colo lab --pair-fault SPEC` stopped by ctrl+c or SIGTERM says so in one line, as
`colo run` does ('stopped by SIGINT …'): it exited 130 without a word.  The line says
what was stopped (both QEMUs) and what became of the work directory (removed, or
kept with --keep).  Skips as tests/qemu/test_lab.py does where QEMU or the guest's
parts are missing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.qemu._qemu import REAL_QEMU
from tests.qemu.test_lab import _guest_missing

ROOT = Path(__file__).resolve().parents[2]
SPEC = "kill-primary@checkpoint-request#2"

pytestmark = [*REAL_QEMU, pytest.mark.skipif(_guest_missing() is not None,
                                             reason=str(_guest_missing()))]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize(("sig", "keep"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                           (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-keep"])
def test_a_stopped_pair_fault_run_says_what_it_stopped_and_kept(tmp_path, sig, keep):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    lab = subprocess.Popen([sys.executable, "-m", "colo_tui", "lab", "--net", "user",
                            "--pair-fault", SPEC, *(["--keep"] if keep else [])],
                           cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(kids) < 2 and lab.poll() is None:
            kids = [k for k in _children(lab.pid)
                    if b"qemu-system" in Path(f"/proc/{k}/cmdline").read_bytes()]
            time.sleep(0.2)
        assert len(kids) == 2, "the pair's QEMUs did not start"
        time.sleep(1)
        lab.send_signal(sig)
        out, err = lab.communicate(timeout=120)
        assert lab.returncode == 128 + sig, (lab.returncode, err)
        assert out == "" and "Traceback" not in err, err
        work = list(tmp_path.glob("colo-lab-*"))
        kept = (f"the work directory is kept: {work[0]}" if keep else
                "its temporary work directory is removed")
        assert err == (f"colo lab: --pair-fault {SPEC} stopped by {sig.name} before its "
                       f"report: both QEMUs are stopped, {kept}\n"), err
        assert len(work) == (1 if keep else 0), work
        left = [k for k in kids if Path(f"/proc/{k}").exists()]
        assert left == [], f"QEMUs outlived the lab: {left}"
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait(timeout=10)
        for k in kids:
            if Path(f"/proc/{k}").exists():
                os.kill(k, signal.SIGKILL)
