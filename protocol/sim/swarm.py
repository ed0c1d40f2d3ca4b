"""Swarm exploration (VOPR, FoundationDB): one seed draws the whole world.

`draw(seed)` chooses everything a session is made of — dialect and mode, the
guest and its RAM (sparse guests above 4 GiB with writes above 4 GiB), XBZRLE,
checkpoint delays off the workload's step with jitter, load and save times,
the arbiter and its delay, the session length, client traffic, a plan of
0-4 faults, and the migration link's latency and bandwidth — from
``random.Random`` seeded by the seed alone, so a seed is the same run on any
worker.  `run_seed` runs it with the invariants checked on every event, then a
liveness phase: after the last fault, checkpoints must resume
(``liveness_checkpoints`` more commit) or a defined end (failover, split brain
the premise allows, shutdown, QEMU's own error stop without an arbiter) must be
reached within the simulator's bound; anything else is a hang.  `summarize` folds the per-seed results into the report (violations by
invariant, hangs, outcomes, coverage of (state, input) pairs and faults).
"""
from __future__ import annotations

import random
from collections import Counter

from protocol.core import dialects
from protocol.core import faults as fl
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

#: what a seed chooses from
DIALECTS = ("qemu", "v11", "prototype")
WORKLOADS = ("toggle", "hot", "sweep", "uniform", "idle")
BIG_RAM_MIB = (4608, 6144)          # sparse guests above 4 GiB (B7's ground)
SMALL_RAM_MIB = (16, 24, 64)
ARBITER_MS = (20.0, 250.0, 1000.0, 2600.0, 5000.0)   # also beyond v11's 2000 ms failover
MAX_FAULTS = 4
#: the migration link when it is not the simulator's default LAN (50 µs, 1 GB/s): a
#: slow or distant one, whose transfers interleave with the timers, the arbiter,
#: the client traffic and the faults
LINK_LATENCY_MS = (0.5, 2.0, 10.0, 30.0)
LINK_BYTES_PER_MS = (1.25e5, 1.25e4)     # 1 Gbit/s, 100 Mbit/s (small guests only)
MAX_FAILURES_KEPT = 50


def _step_ms(workload: str, rate: float | None) -> int:
    if workload == "toggle":
        return max(1, round(1000.0 / (rate or 10.0)))
    return 100


def _fault_points(dialect) -> list[str]:
    return [p for p in dialect.ids if p not in ("invalid", "guest-shutdown")] + \
        [st for st in fl.STAGES if st != "ram" or dialect.ram_outside_blob]


def _draw_fault(rng: random.Random, dialect, n_max: int, step_ms: int, delay_ms: int,
                arbiter: bool) -> str:
    points = _fault_points(dialect)
    process = [k for k in fl.PROCESS_KINDS if arbiter or not k.startswith("stall-")]
    while True:                       # bounded in practice: most (kind, point) pairs are valid
        # a side dying, stalling or told to fail over is what COLO exists for: 45 %
        kind = rng.choice(process if rng.random() < 0.45 else fl.LINK_KINDS)
        # ... and often while the secondary loads (the relaunch path, §5.5) or holds a
        # partly received checkpoint (to be discarded)
        roll = rng.random() if kind in process else 1.0
        if roll < 0.3:
            point = "load"
        elif roll < 0.55:
            point = rng.choice([p for p in points if p in ("ram", "vmstate-size",
                                                           "device-state")])
        else:
            point = rng.choice(points)
        if point == "load" and kind in fl.LINK_KINDS:
            continue
        if kind in ("unexpected", "value", "opcode") and point in fl.STAGES:
            continue
        break
    n = 1 if point == "checkpoint-ready" else rng.randint(1, n_max)
    arg = fl.KINDS[kind][0]
    if kind in ("delay", "partition"):        # at least one workload step long
        text = str(rng.randint(step_ms, max(step_ms, 3 * delay_ms)))
    elif kind == "value":
        text = str(rng.choice((0, 1, 7, 255, 4096, 2**31, 2**64 - 1)))
    elif kind == "opcode":
        text = str(rng.choice((0, 9, 255, 2**32 - 1)))
    elif kind == "unexpected":
        text = rng.choice([x for x in dialect.ids if x not in ("invalid", point)])
    else:
        text = None
    assert (arg is None) == (text is None)
    return f"{kind}{'=' + text if text else ''}@{point}#{n}"


def _draw_reprotects(seed: int, faults: list[str]) -> list[str]:
    """Plan steps after the faults: re-protect the survivor of the 1st (and 2nd) failover.
    Their own random stream, so the rest of a seed's world is what it was without them."""
    sides = sum(f.startswith(("kill-", "stall-", "heartbeat-")) for f in faults)
    rng = random.Random(f"colo-swarm/{seed}/reprotect")
    if not sides or rng.random() >= 0.4:
        return []
    return [f"reprotect@failover#{n}" for n in range(1, min(sides, 2) + 1)]


def draw(seed: int) -> SimConfig:
    """The whole configuration of swarm seed `seed` (deterministic)."""
    rng = random.Random(f"colo-swarm/{seed}")
    dname = rng.choice(DIALECTS)
    d = dialects.get(dname)
    mode = rng.choice(("periodic", "hybrid"))
    guest = "model" if rng.random() < 0.85 else "null"
    if guest == "model" and rng.random() < 0.08:
        ram_mib, workload = rng.choice(BIG_RAM_MIB), rng.choice(("uniform", "hot"))
    else:
        ram_mib, workload = rng.choice(SMALL_RAM_MIB), rng.choice(WORKLOADS)
    rate = None if rng.random() < 0.5 else float(rng.choice((2, 5, 10, 40, 200)))
    if workload == "idle":
        rate = None
    step = _step_ms(workload, rate)
    delay = rng.randint(30, 2500)
    if delay % step == 0:
        delay += rng.randint(1, step - 1) if step > 1 else 1
    long_session = rng.random() < 0.04
    checkpoints = rng.randint(300, 340) if long_session else rng.randint(1, 25)
    if long_session:
        delay = min(delay, 151)       # 300 checkpoints at most ~60 virtual s
    jitter = 0.0 if rng.random() < 0.4 else round(rng.uniform(0, delay / 3), 3)
    roll = rng.random()
    load_ms = 0.0 if roll < 0.45 else round(rng.uniform(1, delay) if roll < 0.85
                                            else rng.uniform(delay, 3 * delay + 4000), 3)
    save_ms = 0.0 if not d.saves_devices_after_ram or rng.random() < 0.6 else round(rng.uniform(1, 60), 3)
    arbiter = rng.random() < 0.85
    arbiter_ms = rng.choice(ARBITER_MS)
    client_every_ms = 0.0 if rng.random() < 0.2 else float(rng.choice((7, 25, 60, 150, 400)))
    divergence = 0.0 if mode == "periodic" or rng.random() < 0.3 else \
        rng.choice((0.01, 0.05, 0.3))
    xbzrle = rng.random() < 0.35
    n_faults = rng.choice((0, 1, 1, 2, 2, 3, 4))
    n_max = min(checkpoints, 30) if not long_session else checkpoints
    faults = [_draw_fault(rng, d, n_max, step, delay, arbiter) for _ in range(n_faults)]
    faults += _draw_reprotects(seed, faults)
    # drawn last: the draws above are the same as before the link was drawn
    latency, bandwidth = SimConfig.latency_ms, SimConfig.bytes_per_ms
    if rng.random() < 0.35:
        latency = rng.choice(LINK_LATENCY_MS)
        if ram_mib <= max(SMALL_RAM_MIB) and rng.random() < 0.5:
            bandwidth = rng.choice(LINK_BYTES_PER_MS)
    return SimConfig(dialect=dname, mode=mode, seed=seed, checkpoints=checkpoints,
                     faults=faults, checkpoint_delay_ms=delay, load_ms=load_ms,
                     save_ms=save_ms, jitter_ms=jitter, arbiter=arbiter,
                     arbiter_ms=arbiter_ms, guest=guest, ram_mib=ram_mib,
                     workload=workload, rate=rate, divergence=divergence,
                     client_every_ms=client_every_ms, xbzrle=xbzrle,
                     liveness_checkpoints=2 if faults else 0,
                     latency_ms=latency, bytes_per_ms=bandwidth)


def _watch_dispatch(sim: Simulation, pairs: Counter, eps=None) -> None:
    """Count the (role, state, input) pairs the machines are handed (a re-protect's
    new endpoints too)."""
    if eps is None:
        sim.on_new_endpoints = lambda new: _watch_dispatch(sim, pairs, new)
    for ep in (eps or sim.eps).values():
        mach = ep.machine
        dispatch, role = mach._dispatch, mach.role

        def watched(kind, item=None, _m=mach, _dispatch=dispatch, _role=role):
            pairs[f"{_role}:{_m.state}:{kind}"] += 1
            return _dispatch(kind, item)
        mach._dispatch = watched


def liveness(sim: Simulation) -> str | None:
    """None when the session ended in a defined way after its faults, else why not."""
    if sim.hung:
        return sim.hung
    if sim.invariants.violations:
        return None                    # stopped at the violation: reported as such
    p, s = sim.eps["primary"], sim.eps["secondary"]
    if sim._watchdog_fired and not sim.fired and not sim.premise_broken:
        return ("COLO stopped making progress although no fault fired: the manager's "
                f"watchdog had to fence the secondary (states {p.state}/{s.state}, "
                f"{p.checkpoint}/{s.checkpoint} checkpoints committed)")
    if sim.both_in_colo() and min(p.checkpoint, s.checkpoint) < sim.target:
        return (f"checkpoints did not resume after the faults: {p.checkpoint}/{s.checkpoint} "
                f"committed of {sim.target} at {sim.now:.0f} ms "
                f"(states {p.state}/{s.state})")
    return None


def run_config(cfg: SimConfig) -> dict:
    """Run one drawn world; a plain dict (picklable, JSON-able)."""
    pairs: Counter = Counter()
    sim = Simulation(cfg, keep_events=False)
    _watch_dispatch(sim, pairs)
    try:
        sim.run()
        crash = None
    except Exception as exc:           # a crash is a finding, not the end of the swarm
        crash = f"{type(exc).__name__}: {exc}"
    hang = None if crash else liveness(sim)
    outcome = "crash" if crash else sim.outcome()
    blocked = None
    if hang and not cfg.arbiter:
        # no external manager: a silent peer or an error leaves COLO blocked for good,
        # as QEMU does (B13, B14) -- a defined end of that world, not a hang of the code
        blocked, hang, outcome = hang, None, "blocked-no-arbiter"
    fired = Counter(f"{sim.faults[i].point}:{sim.faults[i].kind}" for i in sim.fired)
    violations = [{"invariant": v["invariant"], "text": v["text"]}
                  for v in sim.invariants.violations if v["invariant"] != "termination"]
    return {"seed": cfg.seed, "config": cfg.to_dict(), "outcome": outcome,
            "crash": crash, "hang": hang, "blocked": blocked, "violations": violations,
            "checkpoints": min(sim.eps["primary"].checkpoint, sim.eps["secondary"].checkpoint),
            "steps": sim.steps, "virtual_ms": round(sim.now, 3),
            "pairs": dict(pairs), "faults_hit": dict(fired)}


def run_seed(seed: int) -> dict:
    return run_config(draw(seed))


def run_chunk(seeds) -> list[dict]:
    """The unit of work a worker (process or Dask) is handed."""
    return [run_seed(s) for s in seeds]


def failure_of(result: dict) -> str | None:
    """The signature a shrink keeps: an invariant's name, "hang" or "crash"."""
    if result["crash"]:
        return "crash"
    if result["violations"]:
        return result["violations"][0]["invariant"]
    if result["hang"]:
        return "hang"
    return None


def summarize(results: list[dict], elapsed_s: float | None = None) -> dict:
    results = sorted(results, key=lambda r: r["seed"])
    by_inv: Counter = Counter()
    outcomes: Counter = Counter()
    pairs: Counter = Counter()
    faults: Counter = Counter()
    failures = []
    for r in results:
        outcomes[r["outcome"]] += 1
        pairs.update(r["pairs"])
        faults.update(r["faults_hit"])
        for v in r["violations"]:
            by_inv[v["invariant"]] += 1
        if failure_of(r):
            if len(failures) < MAX_FAILURES_KEPT:
                failures.append({"seed": r["seed"], "failure": failure_of(r),
                                 "text": r["crash"] or (r["violations"][0]["text"]
                                                        if r["violations"] else r["hang"]),
                                 "config": r["config"]})
    out = {"seeds": len(results),
           "checkpoints": sum(r["checkpoints"] for r in results),
           "violations": sum(1 for r in results if r["violations"]),
           "violations_by_invariant": dict(sorted(by_inv.items())),
           "hangs": sum(1 for r in results if r["hang"] and not r["violations"]),
           "crashes": sum(1 for r in results if r["crash"]),
           "outcomes": dict(sorted(outcomes.items())),
           "coverage": {"state_input": dict(sorted(pairs.items())),
                        "faults": dict(sorted(faults.items()))},
           "failures": failures}
    if elapsed_s is not None:
        out["elapsed_s"] = round(elapsed_s, 3)
        out["seeds_per_s"] = round(len(results) / elapsed_s, 2) if elapsed_s > 0 else None
    return out
