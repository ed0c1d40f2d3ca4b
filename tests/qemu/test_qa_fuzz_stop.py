"""`colo fuzz-secondary` stopped in the middle of a case leaves no QEMU behind:
a SIGTERM ended the fuzzer at once (no handler), and the case's real QEMU
secondary ran on, re-parented to init; a SIGKILL did the same.  Now SIGTERM goes
through the case's cleanup (exit 143, the logs' directory named) and every child
dies with the fuzzer (PR_SET_PDEATHSIG).  Skips like the other real-QEMU tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol.record.template_source import save_template, template_from_capture
from tests.qemu._qemu import REAL_QEMU, kill_leftovers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = REAL_QEMU


def _qemu_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "qemu-system"], capture_output=True,
                         text=True)
    return [int(p) for p in out.stdout.split()]


def _gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":      # dead, not yet reaped
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_fuzzer_leaves_no_qemu(tmp_path, run1, artifacts, sig):
    tpl = save_template(template_from_capture(run1), tmp_path / "run1.colotpl")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    fuzz = subprocess.Popen([sys.executable, "-m", "colo_tui", "fuzz-secondary", "--template",
                             str(tpl), "--kernel", str(artifacts["guest"]), "--shim",
                             str(artifacts["shim"]), "--case", "baseline", "--checkpoints",
                             "1000", "--bound-s", "120"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    qemus: list[int] = []
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not qemus and fuzz.poll() is None:
            qemus = _qemu_children(fuzz.pid)
            time.sleep(0.1)
        assert qemus, "no QEMU started"
        time.sleep(1.5)                   # into the case: QMP up, the node connecting
        fuzz.send_signal(sig)
        out, err = fuzz.communicate(timeout=60)
        left = [q for q in qemus if not _gone(q, 10)]
        assert left == [], f"QEMU {left} outlived colo fuzz-secondary ({sig.name})"
        if sig == signal.SIGTERM:
            assert fuzz.returncode == 128 + sig, (fuzz.returncode, err)
            assert "Traceback" not in err, err
            assert "stopped; the logs of the cases so far are in" in err, err
    finally:
        kill_leftovers(fuzz, qemus)
