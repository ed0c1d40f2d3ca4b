"""Protocol events -> view objects (plain Python: no Textual API, no I/O).

`Ladder` turns the event stream into ladder rows incrementally (and tracks
fault windows and commit times), `LogModel` is the filterable event log,
a guest's panel fields come from the session's GuestView (protocol.core.session).
"""
from __future__ import annotations

import bisect

from colo_tui.present.models import SIDE_NAMES, LadderRow
from colo_tui.present.sentences import clean, line, plain, sentence
from protocol.core.events import EventKind as K

LADDER_CAP = 4000
LADDER_BURST = 800          # a bigger batch (full speed) keeps only its tail's rows
_TRACKED = frozenset((K.CHECKPOINT, K.CLOSED, K.PARTITION, K.PROCESS))
_ARROW_POINTS = {"send-ram": "ram", "send-device-state": "device-state",
                 "send-initial": "initial",
                 "ram": "ram", "device-state": "device-state"}   # an imported capture's


class Ladder:
    """Events -> ladder rows, incrementally; tracks fault windows and commits."""

    def __init__(self, *, flight: bool = False) -> None:
        #: the source reports receptions (a simulation): a message is drawn in flight
        #: until its recv; playbacks of captures and live feeds report sends only
        self.flight = flight
        self._flying: list[LadderRow] = []
        self.rows: list[LadderRow] = []
        self.version = 0
        self.last_commit: dict[str, float] = {}
        self.in_flight = {s: 0 for s in SIDE_NAMES}
        self._closed = False
        self._partition_until = -1.0
        self._down: set[str] = set()
        self._last_recv: dict[str, str] = {}     # side -> the last message it received
        self._initial = False                    # the initial migration has its row

    def _shaded(self, t_ms: float) -> bool:
        return self._closed or bool(self._down) or t_ms < self._partition_until

    def _add(self, ev, kind: str, **kw) -> None:
        self.rows.append(LadderRow(ev.seq, ev.t_ms, kind, shaded=self._shaded(ev.t_ms), **kw))

    def _note(self, ev, label: str, side: str | None = None) -> None:
        self._add(ev, "note", side=ev.side if side is None else side, label=label)

    def _landed(self, side: str, msg: str) -> None:
        """`side` received `msg`: the oldest such message in flight towards it lands."""
        direction = "P>S" if side == "secondary" else "S>P"
        for row in self._flying:
            if row.point == msg and row.direction == direction:
                row.flying = False
                self._flying.remove(row)
                self.version += 1
                return

    def _mark_lost(self, ev, why: str) -> None:
        for row in reversed(self.rows[-200:]):
            if row.kind in ("msg", "payload") and row.direction == ev.dir and \
                    row.point == ev.point and not row.lost:
                row.lost = why
                if row.flying:       # it never lands: the next such message is not it
                    row.flying = False
                    self._flying.remove(row)
                return
        self._add(ev, "lost", direction=ev.dir or "", point=ev.point or "",
                  label=f"{plain(ev.point or '?')} {why}", checkpoint=ev.n or 0)

    def _release(self, ev, packets) -> None:
        """Output commit.  When the primary releases on vmstate-received (QEMU), the note
        goes right under that message's arrow, where the primary's lifeline meets it:
        with a load of 0 ms the secondary sends vmstate-loaded before the primary has
        read vmstate-received, and drawing by send time would put the release after
        vmstate-loaded, which is the v11 order, not QEMU's."""
        label = f"release packets ({plain(packets)})"
        trigger = self._last_recv.get(ev.side, "")
        at = None
        if trigger:
            for i in range(len(self.rows) - 1, max(-1, len(self.rows) - 40), -1):
                r = self.rows[i]
                if r.kind == "msg" and r.point == trigger:
                    at = i + 1
                    break
        row = LadderRow(ev.seq, ev.t_ms, "note", side=ev.side, label=label,
                        shaded=self._shaded(ev.t_ms))
        if at is None or at == len(self.rows):
            self.rows.append(row)
        else:
            self.rows.insert(at, row)

    def _packet(self, ev, d: dict) -> None:
        """A frame on a colo-compare channel: an arrow where it crosses between the hosts
        (mirror P>S, compare-in S>P), a note on the primary's host otherwise; a fault
        that hit it is marked as a loss (dropped) or in the label."""
        label = _packet_label(d)
        if d.get("fault"):
            label += f" ⚡{plain(d['fault'])}"
        direction = _CHANNEL_ARROWS.get(d.get("channel", ""))
        if direction:
            self._add(ev, "payload", side=ev.side, direction=direction, label=label,
                      point=d.get("channel", ""),
                      lost="dropped" if d.get("copies") == 0 else "")
        else:
            self._note(ev, label)

    def track(self, events) -> None:
        """What feed() remembers, without building rows (for events that would
        scroll out of the capped ladder anyway: a full-speed burst)."""
        for ev in events:
            kind = ev.kind
            if kind not in _TRACKED:
                continue
            if kind is K.CHECKPOINT:
                if ev.phase == "begin":
                    self.in_flight[ev.side] = ev.n
                elif ev.phase == "commit":
                    self.last_commit[ev.side] = ev.t_ms
            elif kind is K.CLOSED:
                self._closed = True
            elif kind is K.PARTITION:
                self._partition_until = _num(ev.until)
            elif kind is K.PROCESS and ev.what in ("killed", "stalled", "exit"):
                self._down.add(ev.side)
        self.rows.clear()
        # the rows in flight went with them, and their receptions were not looked at:
        # left here, each would land in place of the next such message drawn
        self._flying.clear()
        self.version += 1

    def feed(self, events) -> None:
        if len(events) > LADDER_BURST:
            self.track(events[: len(events) - LADDER_BURST])
            events = events[len(events) - LADDER_BURST:]
        for ev in events:
            kind, side, d = ev.kind, ev.side, clean(ev.payload())
            if kind == "recv":
                self._last_recv[side] = d.get("msg", "")
                self._landed(side, d.get("msg", ""))
                continue
            if kind == "deliver" or kind == "state":
                continue
            if kind == "send":
                val = d.get("value", 0)
                label = plain(d.get("msg") or "?") + (
                    f" {plain(val)}" if val or d.get("msg") == "vmstate-size" else "")
                self._add(ev, "msg", side=side, direction="P>S" if side == "primary" else "S>P",
                          label=label, hex=d.get("hex") or "", point=d.get("msg") or "",
                          checkpoint=self.in_flight.get(side, 0))
                if self.flight:
                    self.rows[-1].flying = True
                    self._flying.append(self.rows[-1])
                    del self._flying[:-64]            # bounded: lost ones never land
            elif kind == "recv-initial" and not self._initial:
                # an imported capture has only the secondary's side of the migration
                self._initial = True
                size = f" {plain(d['bytes'])} B" if d.get("bytes") is not None else ""
                self._add(ev, "payload", side="primary", direction="P>S", point="initial",
                          label=f"initial migration{size}")
            elif kind in _ARROW_POINTS:
                if kind == "send-initial":
                    self._initial = True
                what = {"ram": "RAM", "device-state": "device state",
                        "initial": "initial migration"}[_ARROW_POINTS[kind]]
                pages = f" {plain(d['pages'])} pages" if d.get("pages") is not None else ""
                size = f" {plain(d['bytes'])} B" if d.get("bytes") is not None else ""
                self._add(ev, "payload", side=side, label=f"{what}{pages}{size}",
                          direction="P>S" if side == "primary" else "S>P",
                          point=_ARROW_POINTS[kind], checkpoint=self.in_flight.get(side, 0))
            elif kind == "checkpoint":
                n = d.get("n") or 0
                if d.get("phase") == "begin":
                    self.in_flight[side] = n
                    if side == "primary":
                        why = f" ({plain(d['reason'])})" if d.get("reason") else ""
                        self._add(ev, "note", side="", label=f"checkpoint {plain(n)}{why}")
                elif d.get("phase") == "commit":
                    self.last_commit[side] = ev.t_ms
            elif kind in ("lost", "dropped"):
                self._mark_lost(ev, plain(d.get("why") or kind) if kind == "lost" else "dropped")
            elif kind == "fault":
                self._add(ev, "fault", side="", label=f"fault {plain(d.get('spec') or '')}")
            elif kind == "partition":
                self._partition_until = _num(d.get("until"))
                self._add(ev, "fault", label=f"partition until {self._partition_until:.0f} ms")
            elif kind == "closed":
                self._closed = True
                self._add(ev, "fault", label=_closed_label(ev))
            elif kind == "held":
                self._note(ev, "held " + sentence(ev).split(" is held")[0], side="")
            elif kind in ("error", "qmp-error"):
                self._add(ev, "error", side=side if side in SIDE_NAMES else d.get("side", ""),
                          label=plain(d.get("message") or d.get("error") or kind))
            elif kind == "vm":
                run = plain(d.get("run") or "")
                icon = {"running": "▶", "shutdown": "⏻"}.get(run, "⏸")
                self._note(ev, f"{icon} {run}")
            elif kind == "action" and d.get("name") in ("release-output", "flush-cache"):
                n = d.get("packets", d.get("pages")) or 0
                if d["name"] == "release-output":
                    self._release(ev, n)
                else:
                    self._note(ev, f"flush RAM cache ({n} pages)")
            elif kind == "load" and d.get("phase") == "begin":
                self._note(ev, f"load state #{plain(d.get('n') or '')}")
            elif side == "arbiter":
                self._note(ev, _arbiter_label(kind, d), side="")
            elif kind == "failover":
                self._note(ev, f"failover {plain(d.get('from') or '')}→{plain(d.get('to') or '')}")
            elif kind == "colo-exit":
                self._note(ev, f"COLO_EXIT {plain(d.get('reason') or '')}")
            elif kind == "process":
                if d.get("what") in ("killed", "stalled", "exit"):
                    self._down.add(side)
                self._note(ev, {"stalled": "⏸ stalled (SIGSTOP)", "killed": "☠ killed",
                                "exit": "☠ exited"}.get(d.get("what"), sentence(ev)))
            elif kind == "input":
                self._note(ev, "operator " + sentence(ev), side="")
            elif kind == "end":
                self._note(ev, f"end: {plain(d.get('outcome'))}", side="")
            elif kind == "packet":
                self._packet(ev, d)
            elif kind == "verdict":
                self._add(ev, "note" if d.get("verdict") == "match" else "fault", side="",
                          label=_verdict_label(d))
            else:
                continue
            self.version += 1
        if len(self.rows) > LADDER_CAP * 3 // 2:
            del self.rows[: len(self.rows) - LADDER_CAP]


#: colo-compare's channels that cross between the two hosts, as ladder arrows (the
#: other two, primary-in and compare-out, stay on the primary's host: notes there)
_CHANNEL_ARROWS = {"mirror": "P>S", "compare-in": "S>P"}


def _packet_label(d: dict) -> str:
    what = plain(d.get("proto") or "frame")
    if d.get("flags") and d.get("flags") != "-":
        what += f" {plain(d['flags'])}"
    if d.get("tcp_seq") is not None:
        what += f" seq {plain(d['tcp_seq'])}"
    if d.get("payload_len"):
        what += f" {plain(d['payload_len'])} B"
    return f"{plain(d.get('channel', '?'))} #{plain(d.get('n', '?'))} {what}"


def _verdict_label(d: dict) -> str:
    v = d.get("verdict", "?")
    text = {"match": "✓ match", "mismatch": "✗ mismatch",
            "no-secondary": "✗ no secondary packet"}.get(v, plain(v))
    text += f" seq {plain(d.get('tcp_seq', '?'))}"
    if d.get("forced_checkpoint") is not None:
        text += f" → forced checkpoint {plain(d['forced_checkpoint'])}"
    if d.get("held_ms") is not None:
        text += f", held {plain(d['held_ms'])} ms"
    return text


def _arbiter_label(kind: str, d: dict) -> str:
    who = plain(d.get("side") or "?")
    return {"failover": f"arbiter: {who}, take over", "fence": f"arbiter: fence the {who}",
            "watchdog": "arbiter: watchdog"}.get(kind, f"arbiter: {plain(kind)}")


def _num(value) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _closed_label(ev) -> str:
    """Why the connection closed: a simulated close says why, an imported capture how."""
    why = ev.why
    if why:
        return f"connection closed: {plain(why)}"
    text = sentence(ev).removeprefix("the connection closes")
    return "connection closed" + text


class LogModel:
    """The event log as a filterable, lazily formatted list over the event stream.

    A long live session drops its oldest events from memory (protocol/core/eventwindow.py):
    the log then starts with a row that says so (its seq is the last dropped event's),
    and `offset` counts the rows that left the top, so that a view scrolled back
    keeps its place."""

    def __init__(self, events: list) -> None:
        self.events = events
        self.filter = ""
        self._matches: list[int] = []       # the seqs of the matching events in memory
        self._scanned = 0                   # the seqs below it were scanned
        self._gone = 0                      # matches dropped from memory since set_filter

    def set_filter(self, text: str) -> None:
        self.filter = text.strip().lower()
        self._matches, self._scanned, self._gone = [], 0, 0

    @property
    def dropped(self) -> int:
        """How many of the oldest events were dropped from memory (a live session)."""
        return getattr(self.events, "base", 0)

    def _scan(self) -> None:
        if not self.filter:
            return
        evs, f, base = self.events, self.filter, self.dropped
        end = len(evs)
        start = max(self._scanned, base)
        if start < end:
            matches, text = self._matches, self.text
            for seq, ev in enumerate(evs[start:end], start):
                if f in ev.kind or f in text(ev).lower():
                    matches.append(seq)
        self._scanned = end
        if base and self._matches and self._matches[0] < base:
            cut = bisect.bisect_left(self._matches, base)
            del self._matches[:cut]         # at a trim, once: amortized as the trim is
            self._gone += cut

    @property
    def count(self) -> int:
        self._scan()
        base = self.dropped
        n = len(self._matches) if self.filter else len(self.events) - base
        return n + (1 if base else 0)

    @property
    def offset(self) -> int:
        """How many rows have left the top of the log (events dropped from memory, less
        the row that says so): a row's index is its place among all rows minus this."""
        base = self.dropped
        if not base:
            return 0
        return (self._gone if self.filter else base) - 1

    def event(self, i: int):
        """The event on row i (the row that says older events were dropped: IndexError)."""
        self._scan()
        base = self.dropped
        if base:
            if i == 0:
                raise IndexError("row 0 says that older events were dropped from memory")
            i -= 1
        return self.events[self._matches[i] if self.filter else base + i]

    @staticmethod
    def text(ev) -> str:
        """The event's plain sentence (colo_tui.present.sentences); other actors than the two
        sides are named in front."""
        return sentence(ev) if ev.side in SIDE_NAMES else line(ev)

    def dropped_line(self) -> str:
        """Row 0 once older events were dropped: what and why, and what keeps them."""
        words = self.events.dropped_text()
        if self.filter:
            words += "; the filter looks at the events in memory"
        return "⋯ " + words

    def line(self, i: int) -> tuple[int, float, str, str]:
        base = self.dropped
        if base and i == 0:
            return base - 1, 0.0, "", self.dropped_line()
        ev = self.event(i)
        return ev.seq, ev.t_ms, ev.side, self.text(ev)
