"""Replay: re-run a recording's session from its header and inputs; compare events."""
from __future__ import annotations

from dataclasses import dataclass

from ..sim.core import Simulation
from .format import Recording


@dataclass
class ReplayResult:
    ok: bool
    events: int
    first_difference: dict | None
    sim: Simulation


def rerun(rec: Recording | None = None, *, config=None, inputs=None,
          until_step: int | None = None, on_event=None) -> Simulation:
    """Run a session again from its config and its operator inputs."""
    sim = Simulation(config if config is not None else rec.config, on_event=on_event)
    pending = sorted(inputs if inputs is not None else rec.inputs, key=lambda i: i["step"])
    i = 0
    while True:
        while i < len(pending) and (pending[i]["step"] <= sim.steps or sim.finished):
            if until_step is not None and pending[i]["step"] > until_step:
                break
            sim.apply_input({k: v for k, v in pending[i].items() if k != "step"})
            i += 1
        if until_step is not None and sim.steps >= until_step:
            break
        if sim.finished:
            break
        sim.step()
    return sim


def _norm(ev: dict) -> dict:
    return {"seq": ev.get("seq"), "t": round(float(ev.get("t", 0)), 6), "side": ev.get("side"),
            "kind": ev.get("kind"), "data": ev.get("data", {})}


def verify(rec: Recording) -> ReplayResult:
    sim = rerun(rec, until_step=rec.stop_step)
    got = [_norm(e.to_json()) for e in sim.events]
    want = [_norm(e) for e in rec.events]
    import json
    for a, b in zip(want, got, strict=False):
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            return ReplayResult(False, len(got), {"seq": a["seq"], "recorded": a,
                                                  "replayed": b}, sim)
    if len(want) != len(got):
        n = min(len(want), len(got))
        extra = (want + [None])[n] if len(want) > len(got) else None
        return ReplayResult(False, len(got), {
            "seq": n, "recorded": extra, "replayed": got[n] if len(got) > n else None,
            "why": f"recorded {len(want)} events, replay produced {len(got)}"}, sim)
    return ReplayResult(True, len(got), None, sim)
