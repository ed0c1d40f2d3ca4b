"""`colo bench goals`: every speed goal of the hot path in one table.

Runs the other benchmarks, each in its own process as a user would run it
(``colo bench sim|engine|checkpoint|tui --json``), plus a start-up measure of
its own, and prints one row per goal: the figure, the goal, whether it is met,
and what the same run says about the lowest figure the design allows (the
engine's floor: the same engine and wire bytes with a minimal endpoint instead
of the core; the checkpoint's three-copy bound).  Every figure is a ratio
against a baseline measured in the same run, or a time beside one.

Start-up: the wall time of ``python -m colo_tui --version`` over a bare
``python -c pass`` (fresh processes, interleaved, median of ``--startup-runs``).

The whole run takes a few minutes with the defaults; ``--soak SECONDS`` adds
the engine's memory soak (``colo bench engine --soak``).  Exit status: 0 when
every goal that ran is met, 1 when one is missed, 2 for a usage error or a
benchmark that failed to run (its error is printed).

    colo bench goals [--json] [--rounds N] [--seconds S] [--ram-mib M]
                     [--tui-runs N] [--startup-runs N] [--soak SECONDS] [--only NAMES]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from colo_tui.session.argtypes import int_in, number_in

#: the benchmarks `--only` may name, in the order they run
PARTS = ("sim", "engine", "checkpoint", "tui", "startup")
#: the engine's rows by name (`protocol.bench.engine.bench`)
CONTROL_1, CONTROL_2 = "control rate, 1 CPU", "control rate, 2 CPUs"
BULK = "bulk 64 MiB of pages per checkpoint"
CAPTURE = "capture workload latency, TCP_NODELAY"
NAGLE = "capture workload latency, Nagle on, QEMU-like writes + 1 ms device save"
#: QEMU 7.2's checkpoint time in the real capture, which the Nagle mode reproduces
QEMU_NAGLE_MS, NAGLE_RANGE_MS = 88, (75.0, 100.0)
#: how long one benchmark process may take before it is given up
TIMEOUT_S = 3600


class BenchFailed(Exception):
    """A benchmark process failed or printed no JSON: its command and its error."""


def _bench(which: str, *args: str) -> dict:
    cmd = [sys.executable, "-m", "colo_tui", "bench", which, *args, "--json"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchFailed(f"`colo bench {which}` ran past {TIMEOUT_S} s") from None
    try:
        return json.loads(r.stdout)
    except ValueError:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        raise BenchFailed(f"`colo bench {which} {' '.join(args)}` exited {r.returncode} "
                          "without its JSON: " + " | ".join(tail)) from None


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise BenchFailed(f"{' '.join(cmd)} exited {r.returncode}: "
                          f"{r.stderr.decode(errors='replace').strip()[-300:]}")
    return elapsed


def startup(runs: int) -> dict:
    """`colo --version` over `python -c pass`: medians of fresh processes, interleaved."""
    bare, colo = [], []
    for _ in range(runs):
        bare.append(_wall([sys.executable, "-c", "pass"]))
        colo.append(_wall([sys.executable, "-m", "colo_tui", "--version"]))
    b, c = statistics.median(bare), statistics.median(colo)
    return {"bare_ms": round(b * 1e3, 1), "colo_ms": round(c * 1e3, 1),
            "extra_ms": round((c - b) * 1e3, 1), "runs": runs}


def _row(name: str, value, goal: str, met: bool | None, note: str = "") -> dict:
    return {"name": name, "value": value, "goal": goal, "met": met, "note": note}


def _engine_rows(eng: dict) -> list[dict]:
    by = {r["name"]: r for r in eng["results"]}
    rows = []
    for name, label, goal, cmp in (
            (CONTROL_1, "engine control rate, 1 CPU, over raw sockets", 0.5, ">="),
            (CONTROL_2, "engine control rate, 2 CPUs, over raw sockets", 0.9, ">="),
            (BULK, "engine bulk, 64 MiB of pages, over raw sockets", 0.9, ">="),
            (CAPTURE, "engine capture latency, NODELAY, over raw peers", 1.5, "<=")):
        r = by[name]
        ratio = r["ratio"]
        met = None if ratio is None else (ratio >= goal if cmp == ">=" else ratio <= goal)
        # the floor: the same engine and bytes without the core, over the same baseline
        floor = r.get("floor_ratio")
        note = f"engine floor {floor}" if floor is not None else ""
        if name == BULK and r.get("primary_cpu_us") and r.get("baseline_primary_cpu_us"):
            # the pace is the busier side's: which one, and how far from the raw peer's
            note += ("; CPU ms per side, primary / secondary: "
                     f"{r['primary_cpu_us'] / 1e3:.1f} / {r['secondary_cpu_us'] / 1e3:.1f}, "
                     f"raw {r['baseline_primary_cpu_us'] / 1e3:.1f} / "
                     f"{r['baseline_secondary_cpu_us'] / 1e3:.1f}")
        rows.append(_row(label, ratio, f"{cmp} {goal}", met, note))
    nagle = by[NAGLE]["value"]
    lo, hi = NAGLE_RANGE_MS
    rows.append(_row("engine, QEMU-like Nagle + 1 ms save (ms)", nagle,
                     f"≈ {QEMU_NAGLE_MS} ({lo:g}–{hi:g})", lo <= nagle <= hi,
                     "QEMU 7.2 in the real capture"))
    return rows


def _checkpoint_rows(ck: dict, resident: dict) -> list[dict]:
    first, steady = ck["checkpoint_ms"], ck["steady_ms"]
    guest = f"{ck['ram_mib']} MiB" if ck["ram_mib"] != 1024 else "1 GiB"
    other = "" if ck["ram_mib"] == 1024 else " (the goal is for 1 GiB)"
    return [
        _row(f"{guest}, 10 % dirty: first checkpoint (ms)", first, "<= 150", first <= 150,
             f"{ck['first_faults']} first-touch faults at {ck['first_touch_us']} µs{other}"),
        _row("  the same, RAM cache resident as QEMU leaves it (ms)",
             resident["checkpoint_ms"], "<= 150", resident["checkpoint_ms"] <= 150,
             "--resident-cache"),
        _row(f"{guest}, 10 % dirty: steady checkpoint (ms)", steady, "<= 150",
             steady <= 150),
        _row("  steady over scan + one copy", ck["steady_x"], "<= 1.3",
             ck["steady_x"] <= 1.3,
             f"the protocol copies each page three times: {ck['steady_x3']}x of that bound"),
    ]


def run(args) -> dict:
    only = args.only
    rounds = str(args.rounds)
    rows: list[dict] = []
    raw: dict = {}
    if "sim" in only:
        sim = raw["sim"] = _bench("sim", "--rounds", rounds, "--no-matrix")
        s = sim["simulator_checkpoints_per_s"]
        rows.append(_row("simulator, null guest, over a struct loop", s["ratio"],
                         f">= {s['goal_ratio']}", s["ratio"] >= s["goal_ratio"],
                         f"{s['value']} checkpoints/s"))
    if "engine" in only:
        raw["engine"] = _bench("engine", "--rounds", rounds, "--seconds", str(args.seconds))
        rows += _engine_rows(raw["engine"])
    if "checkpoint" in only:
        size = ("--rounds", rounds, "--ram-mib", str(args.ram_mib))
        raw["checkpoint"] = _bench("checkpoint", *size)
        raw["checkpoint_resident"] = _bench("checkpoint", *size, "--resident-cache")
        rows += _checkpoint_rows(raw["checkpoint"], raw["checkpoint_resident"])
    if "tui" in only:
        tui = raw["tui"] = _bench("tui", "--runs", str(args.tui_runs),
                                  "--seconds", str(args.seconds))
        su, fs = tui["startup"], tui["full_speed"]
        rows.append(_row("TUI start to first paint over a minimal Textual app",
                         su["ratio"], "<= 1.2", su["ratio"] <= 1.2))
        rows.append(_row("TUI at full speed, share of the bare rate", fs["kept"],
                         f">= {fs['target']}", fs["kept"] >= fs["target"]))
    if "startup" in only:
        st = raw["startup"] = startup(args.startup_runs)
        rows.append(_row("`colo --version` over `python -c pass` (ms)", st["extra_ms"],
                         "<= 100", st["extra_ms"] <= 100, f"bare {st['bare_ms']} ms"))
    if args.soak:
        soak = raw["soak"] = _bench("engine", "--soak", str(args.soak))["soak"]
        growth = max(soak[r]["growth_pct"] for r in ("primary", "secondary"))
        rows.append(_row(f"soak {args.soak:g} s: RSS growth (%)", growth, "< 5", growth < 5,
                         f"{soak['checkpoints']} checkpoints"))
    return {"rows": rows, "all_met": all(r["met"] for r in rows if r["met"] is not None),
            "benchmarks": raw}


def _parts(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in PARTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(bad) or '(none given)'}; "
            f"choose from {', '.join(PARTS)}")
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="colo bench goals", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--rounds", type=int_in(1, 1000), default=3,
                    help="rounds of sim, engine and checkpoint (medians; default 3)")
    ap.add_argument("--seconds", type=number_in(0.1, 600.0), default=2.0,
                    help="the engine's control-rate and the TUI's full-speed windows")
    ap.add_argument("--ram-mib", type=int_in(1, 65536), default=1024,
                    help="the checkpoint benchmark's guest (the goal is for 1024)")
    ap.add_argument("--tui-runs", type=int_in(1, 100), default=7)
    ap.add_argument("--startup-runs", type=int_in(1, 1000), default=10)
    ap.add_argument("--soak", type=number_in(1.0, 86_400.0), metavar="SECONDS", default=0,
                    help="also the engine's memory soak for this long (the goal's is 600)")
    ap.add_argument("--only", type=_parts, default=PARTS, metavar="NAMES",
                    help=f"comma-separated, from: {', '.join(PARTS)} (default all)")
    args = ap.parse_args(argv)
    try:
        out = run(args)
    except BenchFailed as exc:
        print(f"colo bench goals: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'measure':58} {'value':>9}  {'goal':>16}  met   note")
        for r in out["rows"]:
            met = "—" if r["met"] is None else ("yes" if r["met"] else "NO")
            print(f"{r['name']:58} {str(r['value']):>9}  {r['goal']:>16}  {met:4}  {r['note']}")
    return 0 if out["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
