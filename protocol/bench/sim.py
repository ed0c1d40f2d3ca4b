"""`colo bench sim`: simulator speed (checkpoints/s with empty RAM) and the matrix time.

The rates are CPU time (time.process_time), best of interleaved rounds, so a
machine busy with other work does not distort them (another process's load
stretches wall time, not this process's CPU time). The headline baseline is
issue 11's: a plain ``struct`` loop that exchanges the same six messages between
two byte buffers with a state check per message and no objects.  A second
baseline moves them through the codec (no machines, no events), so its ratio
says what the machines, the event stream and the invariants cost.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

#: issue 11: the simulator at ≥ 0.055 of the plain struct loop
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
    """The issue's baseline: the same six qemu-dialect messages exchanged between two
    byte buffers with plain ``struct`` calls and one state check per message — no
    objects, no events, no machines.  What a checkpoint costs with nothing but the
    wire and the order of the handshake."""
    import struct
    be32, be32q = struct.Struct(">I"), struct.Struct(">IQ")
    pack, unpack, pack_size, unpack_size = be32.pack, be32.unpack_from, be32q.pack, \
        be32q.unpack_from
    request, reply, send, size, received, loaded = 1, 2, 3, 4, 5, 6
    t = time.process_time()
    for _ in range(checkpoints):
        p2s = bytearray()                    # the primary writes, the secondary reads
        s2p = bytearray()
        p2s += pack(request)
        state = "running"
        (got,) = unpack(p2s, 0)
        if got != request or state != "running":
            raise AssertionError("out of order")
        state = "requested"
        s2p += pack(reply)
        (got,) = unpack(s2p, 0)
        if got != reply or state != "requested":
            raise AssertionError("out of order")
        p2s += pack(send)
        (got,) = unpack(p2s, 4)
        if got != send:
            raise AssertionError("out of order")
        state = "loading"
        p2s += pack_size(size, 0)
        got, value = unpack_size(p2s, 8)
        if got != size or state != "loading" or value:
            raise AssertionError("out of order")
        s2p += pack(received)
        (got,) = unpack(s2p, 4)
        if got != received:
            raise AssertionError("out of order")
        s2p += pack(loaded)
        (got,) = unpack(s2p, 8)
        if got != loaded:
            raise AssertionError("out of order")
        state = "running"
    return checkpoints / _elapsed(t)


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
    sims, codecs, structs = [], [], []
    for _ in range(max(1, args.rounds)):
        sims.append(_sim_rate(args.checkpoints))
        codecs.append(_codec_rate(args.checkpoints))
        structs.append(_struct_rate(args.checkpoints * 10))
    sim, codec, plain = max(sims), max(codecs), max(structs)  # best round: least disturbed
    out = {"simulator_checkpoints_per_s": {
        "value": round(sim), "baseline": round(plain),
        "baseline_what": "plain struct loop, same six messages, a state check each, "
                         "no objects (issue 11's baseline)",
        "ratio": round(sim / plain, 4), "goal_ratio": GOAL_RATIO,
        "codec_baseline": round(codec), "codec_baseline_what": "codec-only loop, same messages",
        "codec_ratio": round(sim / codec, 3),
        "timing": f"CPU time, best of {len(sims)}",
        "median": round(statistics.median(sims)),
        "median_ratio": round(statistics.median(sims) / statistics.median(structs), 4)}}
    if not args.no_matrix:
        secs, cases = _matrix_seconds()
        out["fault_matrix"] = {"value": round(secs, 3), "cases": cases, "goal_s": 10.0,
                               "unit": "CPU s"}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        s = out["simulator_checkpoints_per_s"]
        print(f"simulator: {s['value']} checkpoints/s ({s['timing']}; median "
              f"{s['median']}/s); plain struct loop {s['baseline']}/s; ratio {s['ratio']} "
              f"(goal ≥ {s['goal_ratio']}); codec-only loop {s['codec_baseline']}/s, "
              f"ratio {s['codec_ratio']}")
        if "fault_matrix" in out:
            m = out["fault_matrix"]
            print(f"fault matrix: {m['cases']} cases in {m['value']} CPU s (goal < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
