"""Replay: re-run a recording's session from its header and inputs; compare events.

A recording that cannot be re-run (``imported: true``) is checked against its
own facts instead (`protocol.record.facts`); that flag never turns checking off.
A cut recording (its writer was killed) is compared as far as it goes.  The
re-run stops at the first difference, so a recording cannot make a replay run
longer than the session it claims to hold.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from protocol.errors import ColoError, RecordingError
from protocol.record import facts
from protocol.record.eventjson import from_json, to_json
from protocol.record.format import Recording
from protocol.sim.core import Simulation

#: the sides a simulated session's events come from: the endpoints' roles and what the
#: simulator itself names (Simulation.emit in protocol/sim/core.py and reprotect.py;
#: tests/recordings/test_sides.py holds it to every writer)
SIMULATED_SIDES = ("primary", "secondary", "link", "operator", "arbiter", "sim", "client")
#: a recording of a real session (imported: `colo import`, a live session's `r`) adds
#: the live source's own notes (colo_tui/session/live_sources.py, colo_tui/lab/feed.py)
RECORDED_SIDES = (*SIMULATED_SIDES, "live")


@dataclass
class ReplayResult:
    ok: bool
    events: int
    first_difference: dict | None
    sim: Simulation | None
    #: why the recording ends early (compared only as far as it goes), or None
    cut: str | None = None


def rerun(rec: Recording | None = None, *, config=None, inputs=None,
          until_step: int | None = None, on_event=None, stop=None) -> Simulation:
    """Run a session again from its config and its operator inputs.

    ``stop(sim)``, if given, is asked after every step; True ends the run there.
    """
    try:
        sim = Simulation(config if config is not None else rec.config, on_event=on_event)
    except (ColoError, ValueError) as exc:      # e.g. a fault this dialect cannot carry
        raise RecordingError(f"the recording's header is not a session this simulator runs:"
                             f" {exc}") from None
    pending = sorted(inputs if inputs is not None else rec.inputs, key=lambda i: i["step"])
    i = 0
    while True:
        while i < len(pending) and (pending[i]["step"] <= sim.steps or sim.finished):
            if until_step is not None and pending[i]["step"] > until_step:
                break
            try:
                sim.apply_input({k: v for k, v in pending[i].items() if k != "step"})
            except (ColoError, ValueError) as exc:
                raise RecordingError(f"the recording's input at step {pending[i]['step']} "
                                     f"cannot be applied: {exc}") from None
            i += 1
            if stop is not None and stop(sim):
                return sim
        if until_step is not None and sim.steps >= until_step:
            break
        if sim.finished or (stop is not None and stop(sim)):
            break
        sim.step()
    return sim


def _norm(ev: dict) -> str:
    return json.dumps({"seq": ev.get("seq"), "t": round(float(ev.get("t", 0)), 6),
                       "side": ev.get("side"), "kind": ev.get("kind"),
                       "data": ev.get("data", {})}, sort_keys=True)


def verify(rec: Recording) -> ReplayResult:
    if rec.imported:
        return verify_facts(rec)
    want = rec.events
    done = [0]
    diff: list[dict] = []
    # stopped in the middle of a step: the first events of step stop_step + 1 are in
    # (the writer counted them); exactly those are compared
    counted = rec.stop_events is not None
    until = rec.stop_step + 1 if counted else rec.stop_step

    def compare(sim) -> bool:
        got = sim.events
        while done[0] < len(got):
            k = done[0]
            if k >= len(want):
                # more than was recorded: a difference, or (a cut file) enough; either
                # way stop (a cut file went on to the end of its whole session)
                return True
            a, b = _norm(want[k]), _norm(to_json(got[k]))
            if a != b:
                bad_event(rec, k)      # a line this tool never writes: a bad file
                diff.append({"seq": want[k].get("seq"), "recorded": json.loads(a),
                             "replayed": json.loads(b)})
                return True
            done[0] += 1
        return (bool(rec.cut) or counted) and done[0] >= len(want)

    sim = rerun(rec, until_step=until, stop=compare)
    compare(sim)
    got = len(sim.events)
    if diff:
        return ReplayResult(False, got, diff[0], sim, rec.cut)
    if rec.cut or counted:
        if got < len(want):
            bad_event(rec, got)       # the first event the re-run did not reach
            return ReplayResult(False, got, _count_diff(want, sim), sim, rec.cut)
        return ReplayResult(True, len(want), None, sim, rec.cut)
    if got != len(want):
        if got < len(want):
            bad_event(rec, got)
        return ReplayResult(False, got, _count_diff(want, sim), sim)
    return ReplayResult(True, got, None, sim)


def _where(rec: Recording, k: int) -> str:
    lines = rec.event_lines
    return f"{rec.name}: line {lines[k]}" if k < len(lines) else f"{rec.name}: event {k}"


def bad_event(rec: Recording, k: int) -> None:
    """RecordingError naming the file's line when event `k` is not an event line this
    tool writes (its seq out of order, a side no simulated session has, an unknown
    kind, fields its kind does not have): a bad file, not a session that replays
    differently."""
    where = _where(rec, k)
    seq = rec.events[k].get("seq")
    if seq != k:
        raise RecordingError(f"{where}: seq {seq} where {k} was expected (a recording "
                             "numbers its events 0, 1, 2, ... in file order)")
    _check_side(rec.events[k], where, SIMULATED_SIDES, "a simulated session's")
    from_json(rec.events[k], where=where)


def _check_side(ev: dict, where: str, sides: tuple[str, ...], whose: str) -> None:
    side = ev.get("side")
    if side not in sides:
        raise RecordingError(f"{where}: unknown side {side!r} ({whose} events come from "
                             f"{', '.join(sides)})")


def _count_diff(want: list[dict], sim) -> dict:
    got = sim.events
    n = min(len(want), len(got))
    return {"seq": n, "recorded": want[n] if len(want) > n else None,
            "replayed": to_json(got[n]) if len(got) > n else None,
            "why": f"recorded {len(want)} events, replay produced {len(got)}"
                   + (" (and stopped there)" if len(got) > len(want) else "")}


def verify_facts(rec: Recording) -> ReplayResult:
    """An imported recording: no re-run; its events must agree with each other."""
    for k, ev in enumerate(rec.events):
        _check_side(ev, _where(rec, k), RECORDED_SIDES, "a recorded session's")
    bad = facts.check(rec)
    if bad is None:
        return ReplayResult(True, len(rec.events), None, None, rec.cut)
    ev, why = bad
    return ReplayResult(False, len(rec.events), {"seq": ev.get("seq"), "recorded": ev,
                                                 "replayed": None, "why": why}, None, rec.cut)
