"""Step through a recording's events without re-simulating them.

A recording imported from a real QEMU capture (header ``imported: true``)
cannot be re-run: there is no seed that makes QEMU.  Playback offers the
simulator's read side (events, steps, per-side status, ``step``/``run``) so
the TUI and the REPL show a real session like any other; every input is
refused, since the past of a real capture cannot be changed.
"""
from __future__ import annotations

from dataclasses import replace

from .. import dialects
from ..errors import ColoError
from ..events import Event, Send
from ..events import EventKind as K
from ..failover import COMPLETED, NONE
from ..guestport import NullGuest
from ..sim.config import SimConfig
from .eventjson import from_json
from .format import Recording

SIDES = ("primary", "secondary")

#: after sending this message, a side is in this state with this run state
_AFTER_SEND = {
    ("primary", "checkpoint-request"): ("WAIT_REPLY", None),
    ("primary", "vmstate-send"): ("WAIT_RECEIVED", "colo"),
    ("primary", "vmstate-size"): ("WAIT_RECEIVED", "colo"),
    ("secondary", "checkpoint-ready"): ("IDLE", "running"),
    ("secondary", "checkpoint-reply"): ("WAIT_SEND", "colo"),
    ("secondary", "vmstate-received"): ("LOADING", "colo"),
    ("secondary", "vmstate-loaded"): ("IDLE", "running"),
}


class PlaybackError(ColoError):
    pass


class _Failover:
    def __init__(self) -> None:
        self.state = NONE


class SideView:
    """One side's status as the recorded events tell it."""

    def __init__(self, role: str, dialect) -> None:
        self.role, self.dialect = role, dialect
        self.state = "INIT"
        self.run_state = "running" if role == "primary" else "inmigrate"
        self.migration_status = "setup"
        self.checkpoint = 0
        self.in_flight = 0
        self.error: str | None = None
        self.failover = _Failover()
        self.last_mode = "none"
        self.colo_thread_alive = False
        self.checkpoint_delay_ms = 0
        self.guest = NullGuest()

    @property
    def colo_mode(self) -> str:
        return self.role if self.migration_status == "colo" else "none"

    def query_colo_status(self) -> dict:
        reason = {NONE: "none", COMPLETED: "request"}.get(self.failover.state, "processing")
        return {"mode": self.colo_mode, "last-mode": self.last_mode, "reason": reason}

    def next_deadline(self):
        return None

    def status(self) -> dict:
        return {"role": self.role, "state": self.state, "run_state": self.run_state,
                "running": self.run_state == "running", "migration": self.migration_status,
                "colo_status": self.query_colo_status(),
                "failover_state": self.dialect.failover_name(self.failover.state),
                "checkpoint": self.checkpoint, "in_flight": self.in_flight,
                "error": self.error, "checkpoint_delay_ms": self.checkpoint_delay_ms}


class ReadSide:
    """What the UIs read of a session that is not simulated here (playback, live)."""

    def _init_read_side(self, eps: dict, guests: dict, on_event) -> None:
        self.eps = eps
        self.guests = guests
        self.on_event = on_event
        self.events: list[Event] = []
        self.alive = {s: True for s in SIDES}
        self.stalled = {s: False for s in SIDES}
        self.faults: list = []
        self.fired: set = set()
        self.inputs: list = []
        self.steps = 0
        self.now = 0.0
        self.hung = None
        self.premise_broken = False
        self.invariants = type("NoInvariants", (), {"ok": {}, "violations": []})()


class Playback(ReadSide):
    def __init__(self, rec: Recording, *, on_event=None) -> None:
        head = rec.header
        self.recording = rec
        self.cfg = SimConfig(dialect=head.get("dialect", "qemu"), mode=head.get("mode",
                                                                               "periodic"),
                             seed=int(head.get("seed", 0) or 0))
        self.dialect = dialects.get(self.cfg.dialect)
        self.peer_dialect = self.dialect
        self._recorded = [self._typed(raw, i) for i, raw in enumerate(rec.events)]
        eps = {s: SideView(s, self.dialect) for s in SIDES}
        self._init_read_side(eps, {s: eps[s].guest for s in SIDES}, on_event)
        self.ended: str | None = None

    @property
    def finished(self) -> bool:
        return self.steps >= len(self._recorded)

    def step(self) -> list[Event]:
        if self.finished:
            return []
        ev = self._recorded[self.steps]
        self.steps += 1
        self.now = max(self.now, ev.t_ms)
        self._apply(ev)
        self.events.append(ev)
        if self.on_event is not None:
            self.on_event(ev)
        return [ev]

    def run(self, max_steps: int | None = None) -> None:
        while not self.finished and (max_steps is None or max_steps > 0):
            self.step()
            if max_steps is not None:
                max_steps -= 1

    def run_until(self, predicate, max_steps: int = 1_000_000) -> bool:
        for _ in range(max_steps):
            if self.finished:
                break
            self.step()
            if predicate(self):
                return True
        return bool(predicate(self))

    def _typed(self, raw: dict, i: int) -> Event:
        if "seq" not in raw:
            raw = {**raw, "seq": i}
        ev = from_json(raw, where=f"event {i}")
        if type(ev) is Send and ev.raw is None and ev.msg in self.dialect.ids:
            # the bytes are the dialect's encoding of the message (imported captures keep
            # names and values)
            ev = replace(ev, raw=self.dialect.encode(ev.msg, ev.value or 0))
        return ev

    def _apply(self, ev: Event) -> None:
        side, kind = ev.side, ev.kind
        view = self.eps.get(side)
        if kind is K.RECV_INITIAL:
            for v in self.eps.values():
                v.migration_status = "colo"
                v.colo_thread_alive = True
        elif kind is K.SEND and view is not None:
            state, run = _AFTER_SEND.get((side, ev.msg), (view.state, None))
            view.state = state
            if run:
                view.run_state = run
            n = ev.n if ev.n is not None else view.checkpoint + 1
            if ev.msg == "checkpoint-request":
                view.in_flight = n
            if ev.msg == "vmstate-loaded":
                view.checkpoint, view.in_flight = n, 0
        elif kind is K.CHECKPOINT and view is not None and ev.phase == "commit":
            view.checkpoint, view.in_flight = ev.n, 0
            view.state, view.run_state = "IDLE", "running"
        elif kind is K.CLOSED:
            self.ended = ev.how or "closed"
            for v in self.eps.values():
                v.error = f"connection ended ({self.ended})"
        elif kind is K.COLO_EXIT and view is not None:
            view.colo_thread_alive = False
        elif kind is K.FAILOVER and view is not None:
            view.failover.state = ev.to or view.failover.state

    def outcome(self) -> str:
        if self.ended:
            return "error" if self.ended not in ("clean",) else "ok"
        return "ok"

    # -- inputs: a real capture cannot be changed -----------------------------
    def _refuse(self, *_a, **_k):
        raise PlaybackError("this is a recorded real session (imported): it can be stepped "
                            "through, not changed")

    apply_input = check_fault = _refuse
