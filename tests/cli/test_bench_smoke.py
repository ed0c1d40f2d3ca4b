"""The benchmarks run end to end on small sizes (their figures are not checked
here: speed lives in `colo bench`, never in a timed test)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "colo_tui", "bench", *args, "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_checkpoint_bench_small_guest():
    out = _bench("checkpoint", "--ram-mib", "64", "--rounds", "1")
    assert out["invariants_ok"] and out["dirty_pages"] == 64 * 256 // 10 + 1
    assert out["checkpoint_ms"] > 0 and out["steady_ms"] > 0 and out["memcpy_ms"] > 0


def test_sim_bench_small():
    out = _bench("sim", "--rounds", "1", "--checkpoints", "200", "--no-matrix")
    s = out["simulator_checkpoints_per_s"]
    assert s["value"] > 0 and s["baseline"] > 0 and s["ratio"] > 0
