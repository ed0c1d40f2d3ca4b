"""The fault matrix: every (point × kind × side × dialect × mode × checkpoint 1|2),
plus slow loads (1.5 s, longer than the checkpoint delay) with every process fault
at the load stage and around it, plus a side dying at checkpoint 1|2 and the survivor
re-protected (reprotect@failover#1), plus (guest model) XBZRLE runs of every
workload, fault-free, over 8 checkpoints, and across a re-protect, and a slow
checkpoint-reply (the PVM runs on after the SVM stopped) in a checkpoint the
primary then dies or stalls in.

"side" is the side a process fault hits (kill/stall/heartbeat come in a
primary and a secondary flavour); link faults act on the piece named by the
point, whichever side sends it.  Each case runs in the simulator with the
arbiter on; a case is a violation when an invariant breaks, a hang when it
does not end in a defined way after its faults: it does not terminate, or COLO
runs on without committing its checkpoints (the swarm's liveness check,
`protocol.sim.swarm.liveness`).
"""
from __future__ import annotations

from collections import Counter

from protocol.core import dialects
from protocol.core.faults import KINDS, LINK_KINDS, PROCESS_KINDS, STAGES, STEP_KINDS
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation
from protocol.sim.swarm import liveness

ARGS = {"delay": "5", "partition": "50", "value": "7", "opcode": "4294967295",
        "unexpected": None}


#: slow loads: the checkpoint timer (1000 ms) fires during the load, and a side that
#: dies, stalls or is told to fail over meets the other side loading
SLOW_LOAD_MS = 1500.0
SLOW_LOAD_POINTS = ("load", "vmstate-received", "vmstate-loaded", "checkpoint-request")
SIDE_KINDS = tuple(k for k in PROCESS_KINDS if k.startswith(("kill-", "stall-", "heartbeat-")))


#: XBZRLE runs (model guest): each workload long enough that pages go out again as
#: deltas, fall back to full pages, and change again after a fallback
XBZRLE_WORKLOADS = ("toggle", "hot", "sweep", "uniform")
XBZRLE_CHECKPOINTS = 8


def cases(dialect_names=None, modes=("periodic", "hybrid"), checkpoints=(1, 2),
          guest: str = "null"):
    yield from _fast_cases(dialect_names, modes, checkpoints, guest)
    yield from _slow_load_cases(dialect_names, modes, checkpoints, guest)
    yield from _reprotect_cases(dialect_names, modes, checkpoints, guest)
    if guest == "model":
        yield from _xbzrle_cases(dialect_names, modes)
        yield from _reprotect_xbzrle_cases(dialect_names, modes)
        yield from _slow_reply_cases(dialect_names, modes)


def _xbzrle_cases(dialect_names, modes):
    """XBZRLE on, no fault: the encoder's and decoder's page caches must stay in step
    over many checkpoints (every other case sends full pages only)."""
    for dname in dialect_names or tuple(dialects.DIALECTS):
        for mode in modes:
            for workload in XBZRLE_WORKLOADS:
                yield SimConfig(dialect=dname, mode=mode, seed=1,
                                checkpoints=XBZRLE_CHECKPOINTS, faults=[],
                                checkpoint_delay_ms=1000, guest="model", ram_mib=16,
                                workload=workload, xbzrle=True,
                                divergence=0.02 if mode == "hybrid" else 0.0)


def _reprotect_xbzrle_cases(dialect_names, modes):
    """XBZRLE across a re-protect: the survivor starts a new migration, so its page
    cache must start empty, as the new secondary's does (a side dies at checkpoint 3,
    the survivor is re-protected, 5 more checkpoints go out as deltas)."""
    for dname in dialect_names or tuple(dialects.DIALECTS):
        for mode in modes:
            for workload in XBZRLE_WORKLOADS:
                for kind in ("kill-primary", "kill-secondary"):
                    yield SimConfig(dialect=dname, mode=mode, seed=1,
                                    checkpoints=XBZRLE_CHECKPOINTS,
                                    faults=[f"{kind}@checkpoint-request#3",
                                            "reprotect@failover#1"],
                                    checkpoint_delay_ms=1000, guest="model", ram_mib=16,
                                    workload=workload, xbzrle=True,
                                    divergence=0.02 if mode == "hybrid" else 0.0)


#: a slow checkpoint-reply: the PVM runs on (and writes its disk, forwarded to the
#: secondary) after the secondary stopped for the checkpoint; then the primary dies or
#: stalls in the same checkpoint, which the secondary drops
SLOW_REPLY = "delay=300@checkpoint-reply#{n}"
SLOW_REPLY_POINTS = ("vmstate-send", "ram", "vmstate-size", "device-state")


def _slow_reply_cases(dialect_names, modes, checkpoints=(2,)):
    """The PVM keeps running 300 ms into a checkpoint (a slow reply: the window
    between the secondary's stop and the primary's is usually a link latency), its
    disk writes reaching the secondary's replication in that window; the checkpoint
    then breaks off and the secondary takes over from the one before."""
    for dname in dialect_names or tuple(dialects.DIALECTS):
        d = dialects.get(dname)
        for mode in modes:
            if "checkpoint-reply" not in d.ids:
                continue
            for point in SLOW_REPLY_POINTS:
                if point not in d.ids and point not in STAGES or \
                        point == "ram" and not d.ram_outside_blob:
                    continue
                for kind in ("kill-primary", "stall-primary"):
                    for n in checkpoints:
                        yield SimConfig(dialect=dname, mode=mode, seed=1, checkpoints=n + 1,
                                        faults=[f"{kind}@{point}#{n}", SLOW_REPLY.format(n=n)],
                                        checkpoint_delay_ms=1000, guest="model", ram_mib=16,
                                        rate=40.0, liveness_checkpoints=2,
                                        divergence=0.02 if mode == "hybrid" else 0.0)


def _reprotect_cases(dialect_names, modes, checkpoints, guest):
    """A side dies at checkpoint n, the survivor takes over and is re-protected (the
    plan step reprotect@failover#1): a new pair must run COLO again."""
    for dname in dialect_names or tuple(dialects.DIALECTS):
        for mode in modes:
            for kind in ("kill-primary", "kill-secondary"):
                for n in checkpoints:
                    yield SimConfig(dialect=dname, mode=mode, seed=1, checkpoints=n + 2,
                                    faults=[f"{kind}@checkpoint-request#{n}",
                                            "reprotect@failover#1"],
                                    checkpoint_delay_ms=1000, guest=guest, ram_mib=16,
                                    divergence=0.02 if guest == "model" else 0.0)


def _slow_load_cases(dialect_names, modes, checkpoints, guest):
    for dname in dialect_names or tuple(dialects.DIALECTS):
        d = dialects.get(dname)
        for mode in modes:
            for point in SLOW_LOAD_POINTS:
                if point != "load" and point not in d.ids:
                    continue
                for kind in SIDE_KINDS:
                    for n in checkpoints:
                        yield SimConfig(dialect=dname, mode=mode, seed=1, checkpoints=2,
                                        faults=[f"{kind}@{point}#{n}"],
                                        checkpoint_delay_ms=1000, load_ms=SLOW_LOAD_MS,
                                        guest=guest, ram_mib=16,
                                        divergence=0.02 if guest == "model" else 0.0)


def _fast_cases(dialect_names, modes, checkpoints, guest):
    for dname in dialect_names or tuple(dialects.DIALECTS):
        d = dialects.get(dname)
        # guest-shutdown only happens when the guest powers off: not a matrix point
        points = [p for p in d.ids if p not in ("invalid", "guest-shutdown")] + \
            [st for st in STAGES if st != "ram" or d.ram_outside_blob]
        for mode in modes:
            for point in points:
                for kind in KINDS:
                    if kind in STEP_KINDS:          # plan steps: _reprotect_cases
                        continue
                    if point == "load" and kind in LINK_KINDS:
                        continue
                    if kind in ("unexpected", "value", "opcode") and point in STAGES:
                        continue
                    for n in checkpoints:
                        if point in ("checkpoint-ready",) and n > 1:
                            continue
                        if point == "guest-shutdown" and n > 1:
                            continue
                        arg = ARGS.get(kind)
                        if kind == "unexpected":
                            arg = _other_message(d, point)
                        spec = f"{kind}{'=' + arg if arg else ''}@{point}#{n}"
                        yield SimConfig(dialect=dname, mode=mode, seed=1, checkpoints=2,
                                        faults=[spec], checkpoint_delay_ms=1000,
                                        guest=guest, ram_mib=16,
                                        divergence=0.02 if guest == "model" else 0.0)


def _other_message(d, point: str) -> str:
    names = [n for n in d.ids if n not in ("invalid", point)]
    return names[(len(point)) % len(names)]


def run_case(cfg: SimConfig) -> dict:
    sim = Simulation(cfg, keep_events=False)
    sim.run()
    violated = [k for k, ok in sim.invariants.ok.items() if not ok and k != "termination"]
    fault = cfg.faults[0] if cfg.faults else "none"
    if cfg.xbzrle:
        fault += f" (xbzrle, {cfg.workload}, {cfg.checkpoints} checkpoints)"
    return {"dialect": cfg.dialect, "mode": cfg.mode, "fault": fault,
            "load_ms": cfg.load_ms,
            # None, or why the case did not end in a defined way (a string)
            "outcome": sim.outcome(), "hang": liveness(sim), "violations": violated,
            "steps": sim.steps, "t_ms": round(sim.now, 3),
            "details": sim.invariants.violations}


def explore(dialect_names=None, modes=("periodic", "hybrid"), progress=None,
            guest: str = "null") -> dict:
    results = []
    for i, cfg in enumerate(cases(dialect_names, modes, guest=guest)):
        results.append(run_case(cfg))
        if progress is not None:
            progress(i)
    outcomes = Counter(r["outcome"] for r in results)
    return {"cases": len(results),
            "violations": sum(1 for r in results if r["violations"]),
            "hangs": sum(1 for r in results if r["hang"]),
            "outcomes": dict(sorted(outcomes.items())),
            "results": results}
