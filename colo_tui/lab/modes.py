"""`colo compare-modes --real`: periodic against hybrid on the lab's real QEMU
7.2 pair, one seeded client workload, and a no-COLO baseline from the same run.

QEMU 7.2's colo-compare has no periodic (Remus) mode of its own: every
mismatch it sees asks for a checkpoint.  So the two modes are phases of one
pair:

- periodic: x-checkpoint-delay = the periodic interval and a workload whose
  outputs are identical on both VMs (the echo service): colo-compare releases
  every packet on a match and never forces a checkpoint, so the timer alone
  checkpoints;
- hybrid: a long x-checkpoint-delay and the same echo workload plus seeded
  connections to the guest's random service (a different answer on each VM:
  a real colo-compare mismatch, which forces a checkpoint);
- baseline: the secondary is killed and COLO-FT.txt's "Primary Failover"
  steps leave the primary alone without filters; the same echo workload's
  round trip is the no-COLO figure.

Output delay per packet: the client's median round trip in a phase minus the
baseline's, and colo-compare's own hold time (the lab relay sees a packet on
primary-in and again on compare-out).
"""
from __future__ import annotations

import asyncio
import random
import re
import statistics
import threading
import time
from pathlib import Path

from colo_tui.lab import LabError
from colo_tui.lab.pair import Pair
from colo_tui.lab.run import checkpoint_times, forced, wait_guest
from colo_tui.lab.traffic import Echo, random_probe
from protocol.net import netcompare as nc

LONG_DELAY_MS = 60000


def echo_rtts(target, seconds: float, seed: int) -> dict:
    """One echo connection for `seconds`: the round trips (ms) and any error."""
    e = Echo(target, seed)
    rtts: list[float] = []
    err = None
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            rtts.append(e.request() * 1000)
    except OSError as exc:
        err = str(exc)
    finally:
        e.close()
    return {"rtts": rtts, "error": err}


def probe_schedule(seed: int, seconds: float, every_s: float) -> list[float]:
    """Seeded offsets (s) of the mismatching connections: exponential gaps."""
    rng = random.Random(seed)
    out, t = [], rng.expovariate(1 / every_s)
    while t < seconds and len(out) < 10000:
        out.append(t)
        t += rng.expovariate(1 / every_s)
    return out


def probes(target, offsets: list[float], t0: float, stop: threading.Event) -> dict:
    done, answered, errors = 0, 0, []
    for off in offsets:
        if stop.wait(max(0.0, t0 + off - time.monotonic())):
            break
        r = random_probe(target, 1, timeout=8.0)
        done += 1
        answered += r["answers"]
        errors += r["errors"]
    return {"connections": done, "answers": answered, "errors": errors[:3]}


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


async def _phase(pair: Pair, name: str, delay_ms: int, seconds: float, seed: int,
                 probe_every_s: float | None) -> dict:
    trace = pair.work / "primary.trace.log"
    before = len(checkpoint_times(trace))
    if delay_ms != pair.delay:
        await pair.primary.ex("migrate-set-parameters", {"x-checkpoint-delay": delay_ms})
        pair.delay = delay_ms
        # 7.2 checkpoints at once when the delay changes (colo_checkpoint_notify): let
        # that one pass, bounded, so the phase counts only its own
        deadline = time.monotonic() + 10
        while len(checkpoint_times(trace)) <= before and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    t_start = time.time()
    t_mono = time.monotonic()
    stop = threading.Event()
    job = None
    if probe_every_s:
        offs = probe_schedule(seed, seconds, probe_every_s)
        job = asyncio.ensure_future(asyncio.to_thread(probes, pair.addr("random"), offs,
                                                      t_mono, stop))
    echo = await asyncio.to_thread(echo_rtts, pair.addr("echo"), seconds, seed)
    stop.set()
    probe = await job if job is not None else None
    t_end = time.time()
    return {"name": name, "x_checkpoint_delay_ms": delay_ms, "t0": t_start, "t1": t_end,
            "echo": echo, "probe": probe}


def _stats(pair: Pair, ph: dict, baseline_rtt: float | None) -> dict:
    t0, t1 = ph["t0"], ph["t1"]
    minutes = (t1 - t0) / 60
    allcps = checkpoint_times(pair.work / "primary.trace.log")
    cps = [t for t in allcps if t0 <= t <= t1]
    # forced: a gap shorter than the timer allows, measured from the previous checkpoint
    prev = max((t for t in allcps if t < t0), default=t0)
    gaps = forced(cps, prev, ph["x_checkpoint_delay_ms"])
    pk = [p for p in pair.packets.data_packets() if t0 <= p.t <= t1 + 5]
    prim_t = {p.n: p.t for p in pk if p.channel == nc.PRIMARY_IN}
    vs = [v for v in nc.verdicts(pk, allcps) if t0 <= prim_t[v.primary_n] <= t1]
    mism = [v for v in vs if v.verdict == "mismatch"]
    held = [v.held_ms for v in vs if v.held_ms is not None]
    held_match = [v.held_ms for v in vs if v.held_ms is not None and v.verdict == "match"]
    rtts = ph["echo"]["rtts"]
    rtt = _median(rtts)
    return {"seconds": round(t1 - t0, 1), "x_checkpoint_delay_ms": ph["x_checkpoint_delay_ms"],
            "checkpoints": len(cps),
            "checkpoints_per_min": round(len(cps) / minutes, 1) if minutes else None,
            "forced_checkpoints": len(gaps),
            "mismatches": len(mism),
            "mismatches_per_min": round(len(mism) / minutes, 1) if minutes else None,
            "verdicts": nc.summary(vs)["verdicts"],
            "echo_requests": len(rtts), "echo_error": ph["echo"]["error"],
            "rtt_ms_median": rtt,
            "added_delay_ms_median": (round(rtt - baseline_rtt, 2)
                                      if rtt is not None and baseline_rtt is not None
                                      else None),
            "compare_hold_ms_median": _median(held),
            "compare_hold_ms_median_matched": _median(held_match),
            "probe": ph["probe"],
            "model_agreement": _agreement(pk, prim_t, t0, t1,
                                          flush_times(pair.work / "primary.trace.log")),
            "secondary_guest_panics_by_end": ph["panics"]}


_FLUSH = re.compile(r"@(\d+\.\d+):colo_receive_message Receive 'vmstate-received'")


def flush_times(trace: Path) -> list[float]:
    """When colo-compare flushed its queues at each checkpoint: 7.2's primary
    sends COLO_EVENT_CHECKPOINT to the compares (colo_notify_compares_event,
    which waits until each has flushed) right after it receives
    'vmstate-received' and before 'vmstate-loaded' (colo_do_checkpoint_transaction;
    moved there from before 'vmstate-send' in QEMU 5.1, "migration/colo.c: Move
    colo_notify_compares_event to the right place").  The trace line of that
    receive is the earliest the flush can be; both VMs are stopped by then.  The
    replay once flushed at 'vmstate-send': a primary packet the relay logged
    after it (a loaded host) was then replayed after the flush, though real
    colo-compare flushed it, and blocked its connection (docs/lab-modes.md)."""
    try:
        return [float(m.group(1)) for m in _FLUSH.finditer(trace.read_text(errors="replace"))]
    except OSError:
        return []


def _agreement(pk, prim_t, t0: float, t1: float, cps: list[float]) -> dict:
    """The simulator's colo-compare on this phase's packets against real QEMU's
    verdicts (protocol/sim/compare_replay.py): counts and the first differences."""
    from protocol.sim.compare_replay import agreement
    window = [p for p in pk if p.channel != nc.PRIMARY_IN or t0 <= prim_t[p.n] <= t1]
    a = agreement(window, cps)
    return {**a, "differ": a["differ"][:20], "differ_total": len(a["differ"])}


def dump_packets(pair: Pair, path: Path) -> None:
    """The compare channels' TCP data packets (payloads in hex) and the primary's
    checkpoint times, one JSON object per line: the input of compare_replay."""
    import json
    with open(path, "w") as f:
        trace = pair.work / "primary.trace.log"
        f.write(json.dumps({"checkpoints": checkpoint_times(trace),
                            "flushes": flush_times(trace),
                            "flushes_at": "vmstate-received"}) + "\n")
        for p in pair.packets.data_packets():
            f.write(json.dumps({"channel": p.channel, "n": p.n, "t": p.t, "flow": p.flow,
                                "seq": p.seq, "payload": p.payload.hex()}) + "\n")


def load_packets(path: Path) -> tuple[list[nc.DataPacket], list[float]]:
    import json
    lines = Path(path).read_text().splitlines()
    head = json.loads(lines[0])
    cps = head.get("flushes", head["checkpoints"])
    pk = [nc.DataPacket(d["channel"], d["n"], d["t"], d["flow"], d["seq"],
                        bytes.fromhex(d["payload"])) for d in map(json.loads, lines[1:])]
    return pk, cps


def _panics(pair: Pair) -> int:
    try:
        return (pair.work / "secondary.serial").read_text(errors="replace").count(
            "Kernel panic")
    except OSError:
        return 0


async def primary_alone(pair: Pair) -> dict:
    """Kill the secondary, then COLO-FT.txt's "Primary Failover" on the primary:
    the replication child and every COLO filter go, x-colo-lost-heartbeat."""
    pri = pair.primary
    pair.secondary.proc.kill()
    await asyncio.to_thread(pair.secondary.proc.wait, 10)
    t = time.monotonic()
    steps = []
    for cmd, args in (("x-colo-lost-heartbeat", None),
                      ("x-blockdev-change", {"parent": "colo-disk0", "child": "children.1"}),
                      ("human-monitor-command", {"command-line": "drive_del replication0"}),
                      ("object-del", {"id": "comp0"}), ("object-del", {"id": "iothread1"}),
                      ("object-del", {"id": "m0"}), ("object-del", {"id": "redire0"}),
                      ("object-del", {"id": "redire1"})):
        try:
            r = await pri.ex(cmd, args)
            steps.append({"cmd": cmd, "ok": True, **({"out": r} if r else {})})
        except LabError as exc:
            steps.append({"cmd": cmd, "ok": False, "error": str(exc)})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = await pri.ex("query-status")
        if st["status"] == "running" and (await pri.ex("query-colo-status"))["mode"] == "none":
            break
        await asyncio.sleep(0.05)
    return {"steps": steps, "qmp_ms": round((time.monotonic() - t) * 1000, 1),
            "colo": await pri.ex("query-colo-status"),
            "status": (await pri.ex("query-status"))["status"],
            "colo_exit": [e["data"] for e in pri.events if e["event"] == "COLO_EXIT"]}


async def session(work: Path, seed: int, seconds: float, periodic_ms: int,
                  probe_every_s: float, baseline_s: float, net: str,
                  on_status=None) -> dict:
    """Each mode on a pair of its own (under TCG the secondary's Linux may panic
    some checkpoints in, and sends nothing after: "no-secondary" verdicts; a
    fresh pair keeps one mode's panic out of the other's figures), hybrid
    first; the baseline on the periodic pair's primary after Primary Failover."""
    say = on_status or (lambda s: None)
    rep: dict = {"seed": seed, "net": net, "qemu": "real"}
    for name, delay, every in (("hybrid", LONG_DELAY_MS, probe_every_s),
                               ("periodic", periodic_ms, None)):
        sub = work / name
        sub.mkdir(exist_ok=True)
        # the first checkpoint only once both guests have booted: a checkpoint during
        # the boot crashes the secondary's Linux under TCG (docs/lab-modes.md)
        pair = Pair(sub, LONG_DELAY_MS, (), net)
        try:
            await pair.start()
            await wait_guest(pair, 180)
            say(f"COLO running; {name} phase ({seconds:g} s)")
            ph = await _phase(pair, name, delay, seconds, seed, every)
            ph["panics"] = _panics(pair)
            rep[name] = _stats(pair, ph, None)
            dump_packets(pair, sub / "compare-data.jsonl")
            if name == "periodic":
                say("baseline: the primary alone (Primary Failover)")
                rep["primary_failover"] = await primary_alone(pair)
                base = await asyncio.to_thread(echo_rtts, pair.addr("echo"), baseline_s, seed)
                rep["baseline"] = {"echo_requests": len(base["rtts"]),
                                   "rtt_ms_median": _median(base["rtts"]),
                                   "echo_error": base["error"]}
        finally:
            await pair.close()
    brtt = rep["baseline"]["rtt_ms_median"]
    for name in ("hybrid", "periodic"):
        rtt = rep[name]["rtt_ms_median"]
        rep[name]["added_delay_ms_median"] = (round(rtt - brtt, 2) if None not in (rtt, brtt)
                                              else None)
    rep["hybrid"]["probe_every_s"] = probe_every_s
    rep["ok"] = (rep["periodic"]["echo_requests"] > 0 and rep["hybrid"]["echo_requests"] > 0
                 and rep["baseline"]["echo_requests"] > 0)
    return rep


def run(seed: int = 1, seconds: float = 30.0, periodic_ms: int = 2000,
        probe_every_s: float = 3.0, baseline_s: float = 5.0, net: str = "auto",
        keep: bool = False, on_status=None) -> dict:
    from colo_tui.lab import procs
    from colo_tui.lab.run import _run_stoppable
    procs.install()
    if net == "auto":
        from colo_tui.lab.netns import unavailable
        net = "user" if unavailable() else "tap"
    from colo_tui.lab import workdir
    if keep:
        work = workdir.make(True, "colo-modes-")
        return _run_stoppable(session(work, seed, seconds, periodic_ms, probe_every_s,
                                      baseline_s, net, on_status))
    with workdir.temporary("colo-modes-") as d:
        return _run_stoppable(session(d, seed, seconds, periodic_ms, probe_every_s,
                                      baseline_s, net, on_status))


def cmd_real(args) -> int:
    """`colo compare-modes --real`: exit 0 ok, 1 the lab could not run."""
    import json
    import sys

    from protocol.errors import ColoError
    say = None if args.json else (lambda s: print(f"lab: {s}", file=sys.stderr, flush=True))
    try:
        rep = run(seed=args.seed, seconds=args.seconds, periodic_ms=args.periodic_delay,
                  probe_every_s=args.probe_every, on_status=say)
    except KeyboardInterrupt:
        print("lab: stopped", file=sys.stderr)
        return 130
    except (ColoError, OSError) as exc:
        print(f"colo compare-modes --real: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rep, indent=1))
        return 0 if rep["ok"] else 1
    rows = ("x_checkpoint_delay_ms", "seconds", "checkpoints_per_min", "forced_checkpoints",
            "mismatches_per_min", "echo_requests", "rtt_ms_median", "added_delay_ms_median",
            "compare_hold_ms_median", "secondary_guest_panics_by_end")
    print(f"{'real QEMU 7.2':28s}{'periodic':>14s}{'hybrid':>14s}")
    for k in rows:
        print(f"{k.replace('_', ' '):28s}{rep['periodic'][k]!s:>14}{rep['hybrid'][k]!s:>14}")
    print(f"no-COLO baseline (the primary alone after Primary Failover): round trip "
          f"{rep['baseline']['rtt_ms_median']} ms median, "
          f"{rep['baseline']['echo_requests']} requests")
    return 0 if rep["ok"] else 1
