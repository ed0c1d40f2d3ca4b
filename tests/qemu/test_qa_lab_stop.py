"""`colo lab --headless` stopped (SIGTERM, ctrl+c) while its guest still boots
ends at once: it used to wait for the guest-ready thread's whole 180 s deadline,
since asyncio.run joins its worker threads (Pair.close now cuts the client's
sockets and ends its retries).  Its QEMUs, work directory and namespace go.
Skips as tests/qemu/test_lab.py does where QEMU or the guest's parts are missing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.qemu._qemu import REAL_QEMU, kill_leftovers
from tests.qemu.test_lab import _guest_missing

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [*REAL_QEMU, pytest.mark.skipif(_guest_missing() is not None,
                                             reason=str(_guest_missing()))]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_lab_stopped_during_the_guests_boot_ends_at_once(tmp_path, sig):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    lab = subprocess.Popen([sys.executable, "-m", "colo_tui", "lab", "--headless",
                            "--load", "5", "--probes", "0"], cwd=tmp_path, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        serial = []
        while time.monotonic() < deadline and not serial:   # the guest has begun to boot
            serial = [p for p in tmp_path.glob("colo-lab-*/primary.serial")
                      if p.stat().st_size > 0]
            time.sleep(0.1)
        assert serial and lab.poll() is None
        time.sleep(1)
        kids = _children(lab.pid)
        lab.send_signal(sig)
        t0 = time.monotonic()
        out, err = lab.communicate(timeout=120)
        took = time.monotonic() - t0
        assert took < 20, f"colo lab took {took:.0f} s to stop after {sig.name}"
        assert lab.returncode == 128 + sig, (lab.returncode, err)
        assert "Traceback" not in err, err
        assert list(tmp_path.glob("colo-lab-*")) == [], "the work directory was left"
        left = [k for k in kids if Path(f"/proc/{k}").exists()]
        assert left == [], f"children outlived the lab: {left}"
        assert list(Path("/run/netns").glob(f"colo-lab-{lab.pid}-*")) == []
    finally:
        kill_leftovers(lab, kids)
