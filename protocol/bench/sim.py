"""`colo bench sim`: simulator speed (checkpoints/s with empty RAM) and the matrix time.

The rates are CPU time (time.process_time), best of interleaved rounds, so a
machine busy with other work does not distort them (another process's load
stretches wall time, not this process's CPU time). The baseline is a bare
Python loop that moves the same six control messages through the codec (no
machines, no events), so the ratio says what the machines, the event stream and
the invariants cost.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def _sim_rate(checkpoints: int) -> float:
    from protocol.sim.config import SimConfig
    from protocol.sim.core import Simulation
    sim = Simulation(SimConfig(checkpoints=checkpoints, checkpoint_delay_ms=1000),
                     keep_events=False)
    t = time.process_time()
    sim.run()
    return sim.eps["primary"].checkpoint / _elapsed(t)


def _elapsed(t0: float) -> float:
    """CPU seconds since t0 (never 0: the clock's resolution is a few µs)."""
    return max(time.process_time() - t0, 1e-6)


def _codec_rate(checkpoints: int) -> float:
    from protocol.core import dialects
    from protocol.core import messages as m
    from protocol.core.codec import Decoder
    d = dialects.QEMU
    p2s = d.encode(m.CHECKPOINT_REQUEST) + d.encode(m.VMSTATE_SEND)
    size = d.encode(m.VMSTATE_SIZE, 1) + b"\x00"
    s2p = d.encode(m.CHECKPOINT_REPLY) + d.encode(m.VMSTATE_RECEIVED) + \
        d.encode(m.VMSTATE_LOADED)
    dp, ds = Decoder(d, "primary"), Decoder(d, "secondary")
    t = time.process_time()
    for _ in range(checkpoints):
        dp.feed(d.encode(m.CHECKPOINT_REQUEST))
        list(dp.items())
        ds.feed(s2p)
        list(ds.items())
        dp.feed(size)
        list(dp.items())
    del p2s
    return checkpoints / _elapsed(t)


def _compiled_vs_pure(rounds: int, checkpoints: int, median: float) -> dict:
    """The compiled core against its .py: the same bench in a child forced to the .py
    (COLO_NO_EXTENSIONS=1), ratio of the medians. Only when this process runs compiled."""
    import os
    import subprocess
    import sys

    from protocol import compiled
    impl = compiled.implementation("protocol.sim.core")
    if impl != "c" or os.environ.get(compiled.NO_EXTENSIONS_ENV) == "1":
        return {"core": impl, "ratio": None, "why": compiled.choices().get(
            "protocol.sim.core", ("py", "not built"))[1]}
    r = subprocess.run([sys.executable, "-m", "protocol.bench.sim", "--json", "--no-matrix",
                        "--rounds", str(rounds), "--checkpoints", str(checkpoints)],
                       capture_output=True, text=True, check=True,
                       env={**os.environ, compiled.NO_EXTENSIONS_ENV: "1"})
    pure = json.loads(r.stdout)["simulator_checkpoints_per_s"]["median"]
    return {"core": "c", "compiled_median": round(median), "pure_median": pure,
            "ratio": round(median / max(pure, 1), 3)}


def _matrix_seconds() -> tuple[float, int]:
    from protocol.sim.explore import explore
    t = time.process_time()
    res = explore()
    return _elapsed(t), res["cases"]


def _positive(text: str) -> int:
    from protocol.core.grammar import parse_decimal
    try:
        return parse_decimal(text, "the value", 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colo bench sim")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=_positive, default=5, help="interleaved rounds (best)")
    ap.add_argument("--checkpoints", type=_positive, default=5000)
    ap.add_argument("--no-matrix", action="store_true")
    args = ap.parse_args(argv)
    sims, codecs = [], []
    for _ in range(max(1, args.rounds)):
        sims.append(_sim_rate(args.checkpoints))
        codecs.append(_codec_rate(args.checkpoints))
    sim, codec = max(sims), max(codecs)         # best round: the least disturbed
    out = {"simulator_checkpoints_per_s": {"value": round(sim), "baseline": round(codec),
                                           "baseline_what": "codec-only loop, same messages",
                                           "ratio": round(sim / codec, 3), "goal": 10000,
                                           "timing": f"CPU time, best of {len(sims)}",
                                           "median": round(statistics.median(sims))}}
    out["compiled_vs_pure"] = _compiled_vs_pure(args.rounds, args.checkpoints,
                                                statistics.median(sims))
    if not args.no_matrix:
        secs, cases = _matrix_seconds()
        out["fault_matrix"] = {"value": round(secs, 3), "cases": cases, "goal_s": 10.0,
                               "unit": "CPU s"}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        s = out["simulator_checkpoints_per_s"]
        print(f"simulator: {s['value']} checkpoints/s ({s['timing']}; median "
              f"{s['median']}/s); codec-only loop {s['baseline']}/s; ratio {s['ratio']}; "
              f"goal {s['goal']}/s")
        c = out["compiled_vs_pure"]
        print(f"compiled core: {c['ratio']}x the pure-Python core (medians)" if c["ratio"]
              else f"compiled core: not in use ({c['why']})")
        if "fault_matrix" in out:
            m = out["fault_matrix"]
            print(f"fault matrix: {m['cases']} cases in {m['value']} CPU s (goal < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
