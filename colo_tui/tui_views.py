"""Protocol events -> view objects (plain Python: no Textual API, no I/O).

`Ladder` turns the event stream into ladder rows incrementally (and tracks
fault windows and commit times), `LogModel` is the filterable event log,
`guest_summary` reads a guest model's RAM heat map, packets and disk layers.
"""
from __future__ import annotations

from .widgets.models import SIDE_NAMES, LadderRow

HEAT_BUCKETS = 40
LADDER_CAP = 4000
LADDER_BURST = 800          # a bigger batch (full speed) keeps only its tail's rows
_TRACKED = frozenset(("checkpoint", "closed", "partition", "process"))
_ARROW_POINTS = {"send-ram": "ram", "send-device-state": "device-state",
                 "send-initial": "initial"}


class Ladder:
    """Events -> ladder rows, incrementally; tracks fault windows and commits."""

    def __init__(self) -> None:
        self.rows: list[LadderRow] = []
        self.version = 0
        self.last_commit: dict[str, float] = {}
        self.in_flight = {s: 0 for s in SIDE_NAMES}
        self._closed = False
        self._partition_until = -1.0
        self._down: set[str] = set()

    def _shaded(self, t_ms: float) -> bool:
        return self._closed or bool(self._down) or t_ms < self._partition_until

    def _add(self, ev, kind: str, **kw) -> None:
        self.rows.append(LadderRow(ev.seq, ev.t_ms, kind, shaded=self._shaded(ev.t_ms), **kw))

    def _note(self, ev, label: str, side: str | None = None) -> None:
        self._add(ev, "note", side=ev.side if side is None else side, label=label)

    def _mark_lost(self, ev, why: str) -> None:
        d = ev.data
        for row in reversed(self.rows[-200:]):
            if row.kind in ("msg", "payload") and row.direction == d.get("dir") and \
                    row.point == d.get("point") and not row.lost:
                row.lost = why
                return
        self._add(ev, "lost", direction=d.get("dir", ""), point=d.get("point", ""),
                  label=f"{d.get('point', '?')} {why}", checkpoint=d.get("n", 0))

    def track(self, events) -> None:
        """What feed() remembers, without building rows (for events that would
        scroll out of the capped ladder anyway: a full-speed burst)."""
        for ev in events:
            kind = ev.kind
            if kind not in _TRACKED:
                continue
            d = ev.data
            if kind == "checkpoint":
                if d.get("phase") == "begin":
                    self.in_flight[ev.side] = d.get("n", 0)
                elif d.get("phase") == "commit":
                    self.last_commit[ev.side] = ev.t_ms
            elif kind == "closed":
                self._closed = True
            elif kind == "partition":
                self._partition_until = float(d.get("until", 0))
            elif kind == "process" and d.get("what") in ("killed", "stalled", "exit"):
                self._down.add(ev.side)
        self.rows.clear()
        self.version += 1

    def feed(self, events) -> None:
        if len(events) > LADDER_BURST:
            self.track(events[: len(events) - LADDER_BURST])
            events = events[len(events) - LADDER_BURST:]
        for ev in events:
            kind, side, d = ev.kind, ev.side, ev.data
            if kind == "deliver" or kind == "state" or kind == "recv":
                continue
            if kind == "send":
                val = d.get("value", 0)
                label = d["msg"] + (f" {val}" if val or d["msg"] == "vmstate-size" else "")
                self._add(ev, "msg", side=side, direction="P>S" if side == "primary" else "S>P",
                          label=label, hex=d.get("hex", ""), point=d["msg"],
                          checkpoint=self.in_flight.get(side, 0))
            elif kind in _ARROW_POINTS:
                what = {"ram": "RAM", "device-state": "device state",
                        "initial": "initial migration"}[_ARROW_POINTS[kind]]
                pages = f" {d['pages']} pages" if "pages" in d else ""
                self._add(ev, "payload", side=side, label=f"{what}{pages} {d.get('bytes', 0)} B",
                          direction="P>S" if side == "primary" else "S>P",
                          point=_ARROW_POINTS[kind], checkpoint=self.in_flight.get(side, 0))
            elif kind == "checkpoint":
                n = d.get("n", 0)
                if d.get("phase") == "begin":
                    self.in_flight[side] = n
                    if side == "primary":
                        self._add(ev, "note", side="", label=f"checkpoint {n} "
                                  f"({d.get('reason', '')})".replace(" ()", ""))
                elif d.get("phase") == "commit":
                    self.last_commit[side] = ev.t_ms
            elif kind in ("lost", "dropped"):
                self._mark_lost(ev, d.get("why", kind) if kind == "lost" else "dropped")
            elif kind == "fault":
                self._add(ev, "fault", side="", label=f"fault {d.get('spec', '')}")
            elif kind == "partition":
                self._partition_until = float(d.get("until", 0))
                self._add(ev, "fault", label=f"partition until {self._partition_until:.0f} ms")
            elif kind == "closed":
                self._closed = True
                self._add(ev, "fault", label=f"connection closed: {d.get('why', '')}")
            elif kind == "held":
                self._note(ev, f"held {d.get('point', '')}: {d.get('why', '')}", side="")
            elif kind in ("error", "qmp-error"):
                self._add(ev, "error", side=side if side in SIDE_NAMES else d.get("side", ""),
                          label=d.get("message") or d.get("error") or kind)
            elif kind == "vm":
                run = d.get("run", "")
                icon = {"running": "▶", "shutdown": "⏻"}.get(run, "⏸")
                self._note(ev, f"{icon} {run}")
            elif kind == "action" and d.get("name") in ("release-output", "flush-cache"):
                n = d.get("packets", d.get("pages", 0))
                label = (f"release packets ({n})" if d["name"] == "release-output"
                         else f"flush RAM cache ({n} pages)")
                self._note(ev, label)
            elif kind == "load" and d.get("phase") == "begin":
                self._note(ev, f"load state #{d.get('n', '')}")
            elif side == "arbiter":
                self._note(ev, f"arbiter: {kind} {d.get('side', '')}", side="")
            elif kind == "failover":
                self._note(ev, f"failover {d.get('from', '')}→{d.get('to', '')}")
            elif kind == "colo-exit":
                self._note(ev, f"COLO_EXIT {d.get('reason', '')}")
            elif kind == "process":
                if d.get("what") in ("killed", "stalled", "exit"):
                    self._down.add(side)
                self._note(ev, f"☠ {d.get('what')}" if d.get("what") != "stalled"
                           else "⏸ stalled (SIGSTOP)")
            elif kind == "input":
                args = " ".join(str(v) for k, v in d.items() if k != "cmd")
                self._note(ev, f"operator: {d.get('cmd')} {args}".rstrip(), side="")
            elif kind == "end":
                self._note(ev, f"end: {d.get('outcome')}", side="")
            else:
                continue
            self.version += 1
        if len(self.rows) > LADDER_CAP * 3 // 2:
            del self.rows[: len(self.rows) - LADDER_CAP]


class LogModel:
    """The event log as a filterable, lazily formatted list over the event stream."""

    def __init__(self, events: list) -> None:
        self.events = events
        self.filter = ""
        self._matches: list[int] = []
        self._scanned = 0

    def set_filter(self, text: str) -> None:
        self.filter = text.strip().lower()
        self._matches, self._scanned = [], 0

    def _scan(self) -> None:
        if not self.filter:
            return
        evs, f = self.events, self.filter
        for i in range(self._scanned, len(evs)):
            if f in self.text(evs[i]).lower():
                self._matches.append(i)
        self._scanned = len(evs)

    @property
    def count(self) -> int:
        self._scan()
        return len(self._matches) if self.filter else len(self.events)

    def event(self, i: int):
        self._scan()
        return self.events[self._matches[i] if self.filter else i]

    @staticmethod
    def text(ev) -> str:
        d, kind = ev.data, ev.kind
        if kind in ("send", "recv"):
            body = f"{kind} {d.get('msg')}" + (f" {d['value']}" if d.get("value") else "")
        elif kind == "state":
            body = f"{d.get('from')}→{d.get('to')}"
        elif kind == "vm":
            body = f"vm {d.get('run')}"
        elif kind == "action":
            rest = " ".join(f"{k}={v}" for k, v in d.items() if k != "name")
            body = f"{d.get('name')} {rest}"
        else:
            rest = " ".join(f"{k}={v}" for k, v in d.items() if k not in ("hex", "why"))
            body = f"{kind} {rest}" + (f" ({d['why']})" if "why" in d else "")
        body = body.strip()
        return body if ev.side in SIDE_NAMES else f"{ev.side}: {body}"

    def line(self, i: int) -> tuple[int, float, str, str]:
        ev = self.event(i)
        return ev.seq, ev.t_ms, ev.side, self.text(ev)


def guest_summary(guest, role: str) -> dict:
    """RAM heat map, buffered packets and disk layers of a guest model ({} for none)."""
    ram = getattr(guest, "ram", None)
    if ram is None:
        return {}
    out: dict = {}
    try:
        block = getattr(guest, "main_block", None) or next(iter(ram.blocks))
        npages = ram.blocks[block].npages
        if hasattr(guest, "heat_view"):          # a mirror of a real guest
            return _mirror_summary(guest, block, npages)
        if role == "secondary" and getattr(guest, "cache", None) is not None:
            bitmap, out["heat_label"] = guest.cache.bitmaps[block], "RAM cache pending"
        else:
            bitmap, out["heat_label"] = ram.blocks[block].dirty, "RAM dirty (epoch)"
        out["heat"], out["heat_count"] = _heat(bitmap, npages)
        filt, comp = getattr(guest, "filter", None), getattr(guest, "compare", None)
        if filt is not None:
            out["packets"] = f"{len(filt)} held, {filt.released_total} out"
        elif comp is not None:
            p, s = comp.queued()
            out["packets"] = f"compare: {p} P / {s} S queued"
        else:
            out["packets"] = f"{getattr(guest, 'svm_dropped', 0)} dropped"
        disk = guest.disk
        if hasattr(disk, "active"):
            out["disk"] = (f"active {len(disk.active)} hidden {len(disk.hidden)} "
                           f"base {len(disk.base)}")
        else:
            out["disk"] = f"local {len(disk.local)} fwd {len(disk.outbox)}"
    except (AttributeError, KeyError, TypeError) as exc:     # a guest model mid-change
        out["disk"] = f"? ({type(exc).__name__})"
    return out


def _heat(bitmap, npages: int) -> tuple[tuple[float, ...], int]:
    counts = [0] * HEAT_BUCKETS
    per = max(1, -(-npages // HEAT_BUCKETS))
    for index in bitmap.indices():
        counts[min(HEAT_BUCKETS - 1, index // per)] += 1
    return tuple(c / per for c in counts), bitmap.count


def _mirror_summary(guest, block: str, npages: int) -> dict:
    """The mirror of a real guest: pages the last checkpoint flushed, its VGA text."""
    heat, count = _heat(guest.heat_view(block), npages)
    return {"heat": heat, "heat_count": count,
            "heat_label": f"{block}: flushed by ckpt #{guest.checkpoints}",
            "screen": guest.screen_line() or "—",
            "packets": "— (a real guest: not modelled)", "disk": "—"}

