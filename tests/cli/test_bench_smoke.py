"""The benchmarks run end to end on small sizes (their figures are not checked
here: speed lives in `colo bench`, never in a timed test)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert out["second_ms"] > 0 and out["scan_ms"] > 0 and out["copy_ms"] > 0
    assert abs(out["bound_ms"] - out["scan_ms"] - out["copy_ms"]) < 0.02
    # ratios of one round's timings: measured and reported, not judged here (CI saw
    # steady_x 0.79 once: a lower bound timed once can come out above a checkpoint)
    assert out["first_x"] > 0 and out["steady_x"] > 0 and out["bound_target_x"] == 1.3
    assert out["first_x"] == pytest.approx(out["checkpoint_ms"] / out["bound_ms"], rel=0.05)
    assert out["bound3_ms"] > out["bound_ms"] and out["steady_x3"] > 0 and out["loopback_ms"] > 0
    stages = ("scan", "encode", "receive", "cache", "flush", "digest", "checks", "other")
    for which in ("first_stages_ms", "steady_stages_ms"):
        assert tuple(out[which]) == stages and all(v >= 0 for v in out[which].values())
        assert out[which]["encode"] > 0 and out[which]["flush"] > 0
    assert not out["cache_resident"]
    # the first checkpoint faults in each dirty page twice: in the cache, in SVM RAM
    assert out["first_faults"] == 2 * out["dirty_pages"] and out["first_touch_us"] > 0


def test_checkpoint_bench_resident_cache():
    out = _bench("checkpoint", "--ram-mib", "32", "--rounds", "1", "--resident-cache")
    assert out["invariants_ok"] and out["checkpoint_ms"] > 0
    assert out["cache_resident"] in (True, False)      # False: a kernel without the madvise
    # a resident cache leaves only the flush into SVM RAM to fault
    want = out["dirty_pages"] * (1 if out["cache_resident"] else 2)
    assert out["first_faults"] == want and out["first_touch_us"] > 0


def test_tui_startup_is_measured_from_process_start():
    """`bench tui`'s start-up row spawns both apps and times them to their first
    painted frame: a fresh process each, so the interpreter's start is in it."""
    import pytest
    pytest.importorskip("textual")
    from colo_tui.cli.bench_tui import _start_to_paint, startup
    bare = _start_to_paint("minimal")
    assert 0.02 < bare < 60                   # at least an interpreter's start-up
    out = startup(1)
    assert out["colo_ms"] > 0 and out["minimal_ms"] > 0
    assert abs(out["ratio"] - out["colo_ms"] / out["minimal_ms"]) < 0.01


def test_sim_bench_small():
    out = _bench("sim", "--rounds", "1", "--checkpoints", "200", "--no-matrix")
    s = out["simulator_checkpoints_per_s"]
    assert s["value"] > 0 and s["baseline"] > 0 and s["ratio"] > 0
    c = out["compiled_vs_pure"]       # a child forced to the .py core, when this one is compiled
    assert c["core"] in ("c", "py") and (c["ratio"] > 0 if c["core"] == "c" else c["ratio"] is None)


def test_pagediff_bench_small():
    out = _bench("pagediff", "--size-mib", "8", "--py-size-mib", "1", "--rounds", "1",
                 "--xbzrle-pages", "64")
    figs = out["figures"]
    twins = ("c", "py") if out["implementation"] == "c" else ("py",)
    for tag in twins:
        for scenario in ("1%", "10%", "50%", "10% clustered"):
            for suffix in ("", " hot"):       # streaming and cache-hot, both vs QEMU
                f = figs[f"{tag}.xbzrle_encode.{scenario}{suffix}"]
                assert f["unit"] == "GB/s" and f["value"] > 0 and f["ratio"] > 0
        assert figs[f"{tag}.xbzrle_decode.1% hot"]["baseline"] == 8.7
        assert figs[f"{tag}.xbzrle_decode_into.10% hot"]["value"] > 0
        assert figs[f"{tag}.changed_pages.10%"]["ratio"] > 0


@pytest.mark.parametrize(("option", "value", "why"), [
    ("--runs", "0", "between 1 and 100, not 0"),      # the median of no runs: a traceback
    ("--runs", "-2", "between 1 and 100, not -2"),
    ("--seconds", "nan", "must be a decimal number"),  # no steps in no time: ZeroDivision
    ("--seconds", "0", "between 0.1 and 600, not 0"),
    ("--seconds", "inf", "must be a decimal number"),
])
def test_bench_tui_bounds_are_usage_errors_naming_the_option(option, value, why):
    argv = ["--runs", "1", option, value] if option == "--seconds" else [option, value]
    r = subprocess.run([sys.executable, "-m", "colo_tui", "bench", "tui", *argv],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert f"colo bench tui: error: argument {option}: the value " in r.stderr, r.stderr
    assert why in r.stderr and "Traceback" not in r.stderr, r.stderr



@pytest.mark.parametrize(("argv", "option", "why"), [
    (["checkpoint", "--every", "0"], "--every", "between 1 and"),          # range step 0
    (["checkpoint", "--ram-mib", "0"], "--ram-mib", "between 1 and 65,536"),
    (["checkpoint", "--rounds", "0"], "--rounds", "between 1 and 1,000"),
    (["checkpoint", "--target-ms", "nan"], "--target-ms", "must be a decimal number"),
    (["pagediff", "--rounds", "0"], "--rounds", "between 1 and 1,000"),    # no median
    (["pagediff", "--size-mib", "0"], "--size-mib", "between 1 and 65,536"),
    (["pagediff", "--xbzrle-pages", "0"], "--xbzrle-pages", "between 1 and"),
    (["pagediff", "--seed", "0x10"], "--seed", "decimal ASCII digits"),
    (["engine", "--seconds", "inf"], "--seconds", "must be a decimal number"),
    (["engine", "--rounds", "0"], "--rounds", "between 1 and 1,000"),
    (["sim", "--checkpoints", "0"], "--checkpoints", "between 1 and"),
    (["goals", "--rounds", "0"], "--rounds", "between 1 and 1,000"),
    (["goals", "--seconds", "inf"], "--seconds", "must be a decimal number"),
    (["goals", "--ram-mib", "0"], "--ram-mib", "between 1 and 65,536"),
])
def test_bench_bounds_are_usage_errors_naming_the_option(argv, option, why):
    r = subprocess.run([sys.executable, "-m", "colo_tui", "bench", *argv],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert f"colo bench {argv[0]}: error: argument {option}: the value " in r.stderr, r.stderr
    assert why in r.stderr and "Traceback" not in r.stderr, r.stderr


def _goals(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colo_tui", "bench", "goals", *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_goals_bench_runs_each_benchmark_and_judges_each_goal():
    r = _goals("--json", "--rounds", "1", "--seconds", "0.2", "--ram-mib", "16",
               "--tui-runs", "1", "--startup-runs", "2")
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    rows = {row["name"]: row for row in out["rows"]}
    assert set(out["benchmarks"]) == {"sim", "engine", "checkpoint", "checkpoint_resident",
                                      "tui", "startup"}
    assert len(rows) == 13, list(rows)      # 1 sim, 5 engine, 4 checkpoint, 2 tui, 1 startup
    # each verdict is the row's figure against its goal, and the exit status says all
    for row in out["rows"]:
        goal = row["goal"]
        if goal.startswith(("<=", ">=", "<")):
            op, _, limit = goal.partition(" ")
            v, lim = row["value"], float(limit)
            want = {"<=": v <= lim, ">=": v >= lim, "<": v < lim}[op]
            assert row["met"] is want, row
    assert out["all_met"] is all(row["met"] for row in out["rows"])
    assert r.returncode == (0 if out["all_met"] else 1)
    # the figures are the benchmarks' own
    sim = out["benchmarks"]["sim"]["simulator_checkpoints_per_s"]
    assert rows["simulator, null guest, over a struct loop"]["value"] == sim["ratio"]
    bulk = {r["name"]: r for r in out["benchmarks"]["engine"]["results"]}[
        "bulk 64 MiB of pages per checkpoint"]
    note = rows["engine bulk, 64 MiB of pages, over raw sockets"]["note"]
    assert (f"primary / secondary: {bulk['primary_cpu_us'] / 1e3:.1f} / "
            f"{bulk['secondary_cpu_us'] / 1e3:.1f}, raw ") in note, note
    ck = out["benchmarks"]["checkpoint"]
    assert rows["16 MiB, 10 % dirty: first checkpoint (ms)"]["value"] == ck["checkpoint_ms"]
    st = out["benchmarks"]["startup"]
    assert st["colo_ms"] > 0 and st["bare_ms"] > 0 and st["runs"] == 2
    assert not out["benchmarks"]["checkpoint"]["cache_resident"]


def test_goals_bench_only_and_its_errors():
    r = _goals("--only", "startup", "--startup-runs", "1")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert "`colo --version` over `python -c pass` (ms)" in r.stdout
    assert "simulator" not in r.stdout
    r = _goals("--only", "sim,warp")
    assert r.returncode == 2 and r.stdout == ""
    assert "argument --only: unknown benchmark warp; choose from sim, engine" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_benchmark_that_fails_is_named_with_its_error():
    from colo_tui.cli.bench_goals import BenchFailed, _bench
    with pytest.raises(BenchFailed, match=r"`colo bench sim --rounds 0` exited 2 without "
                                          r"its JSON: .*--rounds"):
        _bench("sim", "--rounds", "0")
