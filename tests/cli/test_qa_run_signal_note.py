"""colo run stopped by a signal still gives the note a finished run gives about its
recording's limits (here: where it stopped to stay within what readers take)."""
from __future__ import annotations

import os
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
                         stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env=dict(os.environ, COLO_MAX_RECORDING_MIB="1"))
    try:
        deadline = time.monotonic() + 60
        # (until the writer has stopped at the 1 MiB limit: its stop line is written)
        while (not rec.exists() or b'{"stop":' not in rec.read_bytes()[-4096:]) and \
                time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in err, err
    # the recording stopped at the readers' size limit: the note says where and which
    # setting records further, and it replays (with that same limit) up to there
    assert "stops at step" in err and "COLO_MAX_RECORDING_MIB higher" in err, err
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(rec)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=dict(os.environ, COLO_MAX_RECORDING_MIB="1"))
    assert r.returncode == 0, r.stderr
