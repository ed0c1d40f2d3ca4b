"""Step through a recording's events without re-simulating them.

A recording imported from a real QEMU capture (header ``imported: true``)
cannot be re-run: there is no seed that makes QEMU.  `Playback` is a
`protocol.core.session.Session` over the recorded events: stepping reads the next
one, each side's status is what the events so far tell (`CaptureTracker`), and
every input is refused, since the past of a real capture cannot be changed.

`CaptureTracker` is also what the live proxy and the peer of a real QEMU use
for a side they only see through its messages.
"""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from protocol.core import dialects
from protocol.core.events import Checkpoint, Closed, Event, Failover, RecvInitial, Send
from protocol.core.failover import COMPLETED, NONE
from protocol.core.session import PLAYBACK, SIDES, GuestReport, GuestView, SessionError, SideStatus
from protocol.record.eventjson import from_json
from protocol.record.format import Recording
from protocol.sim.config import SimConfig

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


class PlaybackError(SessionError):
    """A recorded real session cannot be changed."""


class _Track:
    """One side as the events tell it (mutable: the tracker's own bookkeeping)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.state = "INIT"
        self.run_state = "running" if role == "primary" else "inmigrate"
        self.migration = "setup"
        self.checkpoint = 0
        self.in_flight = 0
        self.error: str | None = None
        self.failover = NONE
        self.history: list[tuple[str, str]] = []


class CaptureTracker:
    """Both sides' status from a stream of events, for sides that are only seen."""

    def __init__(self, dialect) -> None:
        self.dialect = dialect
        self.sides = {s: _Track(s) for s in SIDES}
        self.ended: str | None = None

    def apply(self, ev: Event) -> None:
        side, kind = ev.side, type(ev)
        view = self.sides.get(side)
        if kind is RecvInitial:
            for v in self.sides.values():
                v.migration = "colo"
            # the primary has sent its initial migration: it waits for checkpoint-ready
            pri = self.sides["primary"]
            if pri.state == "INIT":
                pri.state = "WAIT_READY"
        elif kind is Send and view is not None:
            state, run = _AFTER_SEND.get((side, ev.msg), (view.state, None))
            view.state = state
            if run:
                view.run_state = run
            if ev.msg == "checkpoint-ready" and \
                    self.sides["primary"].state in ("INIT", "WAIT_READY"):
                # the primary reads it and enters COLO (colo_process_checkpoint): it is
                # IDLE until its first checkpoint-request, not INIT for a whole delay
                self.sides["primary"].state = "IDLE"
            n = ev.n if ev.n is not None else view.checkpoint + 1
            if ev.msg == "checkpoint-request":
                view.in_flight = n
            if ev.msg == "vmstate-loaded":
                view.checkpoint, view.in_flight = n, 0
        elif kind is Checkpoint and view is not None and ev.phase == "commit":
            view.checkpoint, view.in_flight = ev.n, 0
            view.state, view.run_state = "IDLE", "running"
        elif kind is Closed:
            self.ended = ev.how or "closed"
            for v in self.sides.values():
                v.error = f"connection ended ({self.ended})"
        elif kind is Failover and view is not None and ev.to is not None:
            if ev.to != view.failover:
                view.history.append((view.failover, ev.to))
            view.failover = ev.to

    def set_error(self, side: str, text: str) -> None:
        self.sides[side].error = text

    def side(self, side: str) -> SideStatus:
        v = self.sides[side]
        mode = v.role if v.migration == "colo" else "none"
        reason = {NONE: "none", COMPLETED: "request"}.get(v.failover, "processing")
        return SideStatus(
            role=v.role, state=v.state, run_state=v.run_state, migration=v.migration,
            colo_mode=mode, last_mode="none", reason=reason, failover=v.failover,
            failover_state=self.dialect.failover_name(v.failover),
            failover_history=tuple(v.history), checkpoint=v.checkpoint,
            in_flight=v.in_flight, error=v.error)

    def outcome(self) -> str:
        if self.ended:
            return "error" if self.ended not in ("clean",) else "ok"
        return "ok"


class Playback:
    """A recording's events, stepped one at a time (a protocol.core.session.Session)."""

    capabilities = PLAYBACK
    hint = ""

    def __init__(self, rec: Recording, *, on_event=None) -> None:
        head = rec.header
        self.recording = rec
        self.config = SimConfig(dialect=head.get("dialect", "qemu"),
                                mode=head.get("mode", "periodic"),
                                seed=int(head.get("seed", 0) or 0))
        self.dialect = dialects.get(self.config.dialect)
        self._recorded = [self._typed(raw, i) for i, raw in enumerate(rec.events)]
        self.tracker = CaptureTracker(self.dialect)
        self.on_event = on_event
        self.events: list[Event] = []
        if self._recorded and self._recorded[0].seq > 0:
            # started late in a long live session: events[seq] is still event #seq
            from protocol.core.eventwindow import EventWindow
            self.events = EventWindow(len(self._recorded) + 1, 1,
                                      start=self._recorded[0].seq)
        self.steps = 0
        self.now = 0.0

    @property
    def ended(self) -> str | None:
        return self.tracker.ended

    @property
    def finished(self) -> bool:
        return self.steps >= len(self._recorded)

    def step(self) -> list[Event]:
        if self.finished:
            return []
        ev = self._recorded[self.steps]
        self.steps += 1
        self.now = max(self.now, ev.t_ms)
        self.tracker.apply(ev)
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

    # -- the session's views -------------------------------------------------------
    def side(self, side: str) -> SideStatus:
        return self.tracker.side(side)

    def outcome(self) -> str:
        return self.tracker.outcome()

    def checks(self):
        return MappingProxyType({})

    def guest(self, side: str) -> GuestView:
        return GuestView()

    def guest_report(self) -> GuestReport:
        return GuestReport()

    def armed_faults(self) -> tuple:
        return ()

    def rewound(self, step: int) -> Playback:
        """A fresh playback of the same recording at ``step`` (stepping back)."""
        pb = Playback(self.recording, on_event=None)
        pb.run(step)
        return pb

    def recording_header(self) -> dict:
        """A re-recording of a playback is the same playback (imported, same facts)."""
        return dict(self.recording.header)

    def close(self) -> None:
        """Nothing to release."""

    # -- inputs: a real capture cannot be changed -----------------------------------
    def _refuse(self, *_a, **_k):
        raise PlaybackError("this is an imported real session: it can be stepped through "
                            "(step, run, back), not changed; `set seed` starts a simulation")

    send = check_fault = _refuse
