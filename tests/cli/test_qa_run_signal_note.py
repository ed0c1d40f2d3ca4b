"""colo run stopped by a signal still says when its recording is beyond what readers
take by default (the note a finished run gives)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_stopped_by_sigterm_says_how_to_read_its_recording(tmp_path):
    rec = tmp_path / "long.colo.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "colo_tui", "run", "--checkpoints", "5000",
                          "--record", str(rec)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while (not rec.exists() or rec.stat().st_size < 100_000) and \
                time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in err, err
    # the recording says it was set to run 5,000 checkpoints: `colo replay` refuses it
    # by default, and the note gives the setting that reads it
    assert "COLO_MAX_CHECKPOINTS=5000 colo replay" in err, err
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(rec)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1 and "above the limit" in r.stderr
