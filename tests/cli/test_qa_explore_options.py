"""colo explore: an option of the other exploration is refused, not silently ignored
(the matrix ran with --seed/--workers/--time-budget given; a swarm ran every dialect
with --dialect v11 given)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def colo(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("args,named", [
    (["--seed", "5"], "--seed needs --swarm N"),
    (["--workers", "4", "--time-budget", "1"], "--workers and --time-budget need --swarm"),
    (["--matrix", "--no-shrink"], "--no-shrink needs --swarm"),
    (["--repro-dir", "/tmp"], "--repro-dir needs --swarm"),
    (["--swarm", "2", "--dialect", "v11"], "--dialect is the matrix's, not for --swarm"),
    (["--swarm", "2", "--guest", "null"], "--guest is the matrix's, not for --swarm"),
    (["--swarm", "2", "--workers", "2", "--cluster", "tcp://127.0.0.1:1"],
     "with --cluster the cluster's workers run the seeds"),
])
def test_an_option_of_the_other_exploration_is_a_usage_error(args, named):
    r = colo("explore", *args)
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr)
    assert named in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""                  # refused before any case or seed ran


def test_each_exploration_still_runs_with_its_own_options(tmp_path):
    r = colo("explore", "--dialect", "v11", "--guest", "null")
    assert r.returncode == 0 and r.stdout.startswith("cases "), r.stderr
    r = colo("explore", "--swarm", "2", "--seed", "7", "--workers", "1", "--no-shrink",
             "--repro-dir", str(tmp_path))
    assert r.returncode in (0, 1) and r.stdout.startswith("seeds 2 "), r.stderr
