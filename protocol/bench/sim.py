"""`colo bench sim`: simulator speed (checkpoints/s with empty RAM) and the matrix time.

The rates are CPU time (time.process_time), best of interleaved rounds, so a
machine busy with other work does not distort them (another process's load
stretches wall time, not this process's CPU time).  Two baselines, measured in
the same run:

* the headline ``ratio`` (issue 11's): a plain-Python ``struct`` loop that
  exchanges the same six control messages (with vmstate-size's value and a
  one-byte device blob) between two byte buffers, each side checking its state
  per message, with no objects at all: what the bytes cost in Python;
* ``codec_ratio``: a loop that moves the same messages through the codec (no
  machines, no events): what the machines, the event stream and the invariants
  cost on top of decoding.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from protocol.argtypes import int_in

#: issue 11's goal for the headline ratio (against the struct loop)
GOAL_RATIO = 0.055


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


def _struct_rate(checkpoints: int) -> float:
    """Issue 11's baseline: the six qemu-dialect messages of a checkpoint with an
    empty RAM part and a one-byte device blob, each packed with ``struct`` into the
    byte buffer of its direction; the other side reads whatever the buffer holds,
    message by message, and checks each against the state it is in (the state it
    expects next); no objects, no events, no codec."""
    import struct
    be32, be32_64 = struct.Struct(">I"), struct.Struct(">IQ")
    pack32, pack3264 = be32.pack, be32_64.pack
    unpack32, unpack3264 = be32.unpack_from, be32_64.unpack_from
    request, reply, send, received, loaded = (pack32(i) for i in (1, 2, 3, 5, 6))
    p2s, s2p = bytearray(), bytearray()
    # the opcode each side expects next, by its state
    s_want, p_want = (1, 3, 4), (2, 5, 6)
    t = time.process_time()
    p_state = s_state = 0
    for _ in range(checkpoints):
        for out, data in ((p2s, request), (s2p, reply), (p2s, send), (p2s, None),
                          (s2p, received), (s2p, loaded)):
            if data is None:
                out += pack3264(4, 1)                      # vmstate-size 1
                out += b"\x00"                             # and the 1-byte blob
            else:
                out += data
            if out is p2s:                                 # the secondary reads
                pos = 0
                while pos < len(p2s):
                    (op,) = unpack32(p2s, pos)
                    if op != s_want[s_state]:
                        raise AssertionError(f"secondary: unexpected message {op}")
                    if op == 4:
                        op, n = unpack3264(p2s, pos)
                        pos += 12 + n
                    else:
                        pos += 4
                    s_state = (s_state + 1) % 3
                del p2s[:pos]
            else:                                          # the primary reads
                pos = 0
                while pos < len(s2p):
                    (op,) = unpack32(s2p, pos)
                    if op != p_want[p_state]:
                        raise AssertionError(f"primary: unexpected message {op}")
                    pos += 4
                    p_state = (p_state + 1) % 3
                del s2p[:pos]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colo bench sim")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int_in(1, 1000), default=5, help="interleaved rounds (best)")
    ap.add_argument("--checkpoints", type=int_in(1, 10 ** 9), default=5000)
    ap.add_argument("--no-matrix", action="store_true")
    args = ap.parse_args(argv)
    sims, codecs, structs = [], [], []
    for _ in range(max(1, args.rounds)):
        sims.append(_sim_rate(args.checkpoints))
        codecs.append(_codec_rate(args.checkpoints))
        structs.append(_struct_rate(args.checkpoints * 10))
    # best round: the least disturbed
    sim, codec, base = max(sims), max(codecs), max(structs)
    out = {"simulator_checkpoints_per_s": {
        "value": round(sim), "baseline": round(base),
        "baseline_what": "plain-Python struct loop, same six messages, no objects",
        "ratio": round(sim / base, 4), "goal_ratio": GOAL_RATIO,
        "codec_baseline": round(codec),
        "codec_baseline_what": "codec-only loop, same messages",
        "codec_ratio": round(sim / codec, 3), "goal": 10000,
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
              f"{s['median']}/s); struct loop {s['baseline']}/s: ratio {s['ratio']} "
              f"(goal >= {s['goal_ratio']}); codec-only loop {s['codec_baseline']}/s: "
              f"ratio {s['codec_ratio']}")
        c = out["compiled_vs_pure"]
        print(f"compiled core: {c['ratio']}x the pure-Python core (medians)" if c["ratio"]
              else f"compiled core: not in use ({c['why']})")
        if "fault_matrix" in out:
            m = out["fault_matrix"]
            print(f"fault matrix: {m['cases']} cases in {m['value']} CPU s (goal < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
