"""`colo explore --swarm` as a user runs it: bounded in time (a budget, an unreachable
cluster), real subprocesses."""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol.sim.cluster import CONNECT_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]


def colo(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]      # nothing listens there once it is closed


def test_an_unreachable_cluster_fails_fast_naming_it():
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    r = colo("explore", "--swarm", "2", "--cluster", address)
    took = time.monotonic() - start
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot reach the Dask scheduler at {address}" in r.stderr, r.stderr
    assert took < CONNECT_TIMEOUT_S + 8, f"{took:.1f} s (Dask's default waits 30 s)"


def test_a_time_budget_is_kept_to_about_one_seed():
    # 4 workers, chunks of 16 seeds: the chunks in flight once held 128 seeds, and
    # the run went on for 6 s past its budget.  The budget covers the workers'
    # start too: 1 s once ran no seed on a loaded machine, so 3 s
    budget = 3.0
    r = colo("explore", "--swarm", "100000", "--time-budget", str(budget), "--workers", "4",
             "--no-shrink", "--json")
    report = json.loads(r.stdout)
    assert report["budget_stopped"] and report["seeds"] > 0, report
    assert report["elapsed_s"] < budget + 2.5, report["elapsed_s"]


@pytest.mark.parametrize("seed,n", [("18446744073709551615", "2"), ("18446744073709551000", "617")])
def test_a_swarm_past_the_last_seed_is_a_usage_error(seed, n, tmp_path):
    """Each seed is one `colo run --seed`, which ends at 2^64 - 1."""
    r = colo("explore", "--swarm", n, "--seed", seed, "--repro-dir", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "past the last seed 18446744073709551615" in r.stderr, r.stderr
    assert f"start at {(1 << 64) - int(n)} at most" in r.stderr, r.stderr


def test_a_swarm_may_end_at_the_last_seed(tmp_path):
    r = colo("explore", "--swarm", "1", "--seed", "18446744073709551615", "--no-shrink",
             "--json", "--repro-dir", str(tmp_path), timeout=300)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["seeds"] == 1


def _explore(*argv):
    """`colo explore ARGV` parsed (not run): the Namespace, or SystemExit's code."""
    from colo_tui.cli.main import build_parser
    try:
        return build_parser().parse_args(["explore", *argv])
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("n", ["10000000000", "1000001"])
def test_a_swarm_is_bounded_like_the_other_counts(n, capsys):
    # (unbounded, a typo ran for days, its results growing ~3.5 KB a seed)
    from colo_tui.cli.swarm import MAX_SWARM
    assert _explore("--swarm", n) == 2
    err = capsys.readouterr().err
    assert f"colo explore: error: argument --swarm: the value must be between 1 and " \
           f"{MAX_SWARM:,}, not {int(n):,}" in err, err
    assert _explore("--swarm", str(MAX_SWARM)).swarm == MAX_SWARM


def test_the_swarm_bound_is_in_the_help(capsys):
    from colo_tui.cli.swarm import MAX_SWARM
    assert _explore("--help") == 0
    assert f"1 … {MAX_SWARM:,}" in " ".join(capsys.readouterr().out.split())


def test_a_repro_dir_that_does_not_exist_is_named_as_missing(tmp_path):
    # it said "not a directory" of a path that does not exist
    r = colo("explore", "--swarm", "1", "--repro-dir", str(tmp_path / "new"))
    assert r.returncode == 2 and "no such directory" in r.stderr, r.stderr
    (tmp_path / "file").write_text("x")
    r = colo("explore", "--swarm", "1", "--repro-dir", str(tmp_path / "file"))
    assert r.returncode == 2 and "not a directory" in r.stderr, r.stderr
