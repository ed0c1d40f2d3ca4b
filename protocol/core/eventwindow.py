"""The events of a long live session: the latest ones in memory, numbered globally.

A live session (real peers, `colo tui|repl --proxy/--attach/--peer/--transport tcp`,
`colo lab`) may run for days; keeping every event would grow without bound.  An
`EventWindow` keeps the latest `keep` to `keep + batch` events: when it holds
`keep + batch`, the oldest `batch` go at once (one list deletion, so the cost is
amortized over `batch` appends).

It reads like the list it replaces, indexed by ``seq``: ``len(w)`` counts every
event the session ever saw, ``w[seq]`` is the event numbered ``seq`` (negative
indices count from the newest), ``w[a:b]`` gives the held events among ``a … b-1``
(so ``w[len_before:]`` is what came since, across a trim), and iteration goes
over the held events only.  ``w[seq]`` of a dropped event raises `EventDropped`,
whose message says so and where the event is still kept (a recording that was
on when it happened).

A live view that fell too far behind is not given the events that arrived while its
queue was full (colo_tui/session/live.py): `skip` passes over them, and the window
starts again after them (it holds one unbroken run of seqs); what it says of the
dropped events says which of them were never shown."""
from __future__ import annotations

from collections.abc import Sequence

from protocol.core.session import SessionError

#: a live session keeps at least this many of its latest events in memory …
LIVE_KEEP_EVENTS = 250_000
#: … and drops this many of its oldest at once when it holds KEEP + BATCH
#: (an event of a live session weighs about 170 bytes: 300,000 are ~50 MB)
LIVE_TRIM_BATCH = 50_000
#: the recordings a window remembers (their event ranges), for what it says of a
#: dropped event
MAX_RECORDINGS_NOTED = 16


class EventDropped(SessionError, IndexError):
    """An event that was dropped from memory (an IndexError: it is not in the window)."""


class EventWindow(Sequence):
    """A session's events, the oldest dropped in batches (see the module docstring)."""

    __slots__ = ("_items", "base", "keep", "batch", "trims", "_recordings", "late_start",
                 "unshown", "_gaps")

    def __init__(self, keep: int = LIVE_KEEP_EVENTS, batch: int = LIVE_TRIM_BATCH, *,
                 start: int = 0) -> None:
        if keep < 1 or batch < 1 or start < 0:
            raise ValueError("an event window keeps at least one event, drops at least one")
        self._items: list = []
        #: the seq of the oldest event held: how many were dropped
        self.base = start
        #: the events before `start` were never here: the playback of a recording that
        #: was started late in a long live session (it begins at event #start)
        self.late_start = start
        self.keep, self.batch = keep, batch
        #: how many times old events were dropped
        self.trims = 0
        #: [path, first seq, last seq or None while it runs], oldest first
        self._recordings: list[list] = []
        #: how many events were never shown (the view fell behind: `skip`) …
        self.unshown = 0
        #: … and the latest runs of them, (first seq, last seq), oldest first
        self._gaps: list[tuple[int, int]] = []

    # -- the list it replaces ---------------------------------------------------------
    def __len__(self) -> int:
        return self.base + len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items) or self.base > 0

    def __iter__(self):
        return iter(self._items)

    def __reversed__(self):
        return reversed(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            base = self.base
            if step == 1:
                return self._items[max(start, base) - base:max(stop, base) - base]
            return [self._items[j - base] for j in range(start, stop, step) if j >= base]
        n = len(self)
        seq = i + n if i < 0 else i
        if not 0 <= seq < n:
            raise IndexError(f"event index {i} out of range (the session has {n} events)")
        if seq < self.base:
            raise EventDropped(self.dropped_text(seq))
        return self._items[seq - self.base]

    def append(self, ev) -> None:
        items = self._items
        items.append(ev)
        if len(items) >= self.keep + self.batch:
            del items[:self.batch]          # one memmove for `batch` events: amortized
            self.base += self.batch
            self.trims += 1

    def skip(self, first: int, last: int) -> None:
        """Events `first` … `last` were never shown (the view fell behind): the window
        passes over them, and drops the events it held (it holds one unbroken run)."""
        if first != len(self) or last < first:
            raise ValueError(f"events #{first}–#{last} cannot be skipped: the window is "
                             f"at event #{len(self)}")
        self._items = []
        self.base = last + 1
        self.trims += 1
        self.unshown += last - first + 1
        self._gaps.append((first, last))
        del self._gaps[:-MAX_RECORDINGS_NOTED]

    def _gap_of(self, seq: int) -> tuple[int, int] | None:
        for first, last in self._gaps:
            if first <= seq <= last:
                return first, last
        return None

    def unshown_text(self, first: int, last: int, queue_items: int) -> str:
        """What the view says on reaching events `first` … `last`, which it never showed."""
        n = last - first + 1
        text = (f"the view fell too far behind the live peers: {n:,} event"
                f"{'s' if n != 1 else ''} (#{first:,}–#{last:,}) arrived while its queue "
                f"was full (it holds {queue_items:,} items) and {'were' if n != 1 else 'was'}"
                " not shown")
        kept = []
        for path, rfirst, rlast in self._recordings:
            a, b = max(first, rfirst), last if rlast is None else min(last, rlast)
            if a <= b:
                kept.append(f"the recording {path} has " + (
                    "them" if (a, b) == (first, last) else f"#{a:,}–#{b:,} of them"))
        if kept:
            return text + "; " + ", ".join(kept)
        return text + ("; no recording was on (r in the app, `record start` in the REPL "
                       "keeps every event as it arrives, even while the view is paused)")

    def held(self) -> list:
        """The events in memory, oldest first (a copy)."""
        return list(self._items)

    # -- what was dropped --------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """How many of the oldest events were dropped from memory."""
        return self.base

    def is_dropped(self, seq: int) -> bool:
        return 0 <= seq < self.base

    def recording_started(self, path: str, first_seq: int) -> None:
        """A recording holds the events from `first_seq` on (until it stops)."""
        self._recordings.append([str(path), first_seq, None])
        del self._recordings[:-MAX_RECORDINGS_NOTED]

    def recording_stopped(self, path: str, last: int | None = None) -> None:
        """The recording ended with event `last` (by default the last one in view; a
        live session's recording holds every event that arrived)."""
        for rec in reversed(self._recordings):
            if rec[0] == str(path) and rec[2] is None:
                rec[2] = len(self) - 1 if last is None else last
                return

    def kept_by(self, seq: int) -> list[str]:
        """The recordings of this session that hold event `seq`."""
        return [p for p, first, last in self._recordings
                if first <= seq and (last is None or seq <= last)]

    def dropped_text(self, seq: int | None = None) -> str:
        """Why event `seq` (or, without one, the older events) is not in memory, and
        where it is still kept."""
        last_dropped = self.base - 1
        if self.late_start and (seq is None or seq < self.late_start):
            what = f"event #{seq:,} is" if seq is not None else \
                f"events #0–#{self.late_start - 1:,} are"
            return (f"{what} not in this recording: it begins at event #{self.late_start:,} "
                    "(it was started late in a long live session, which had dropped its "
                    "older events from memory)")
        gap = self._gap_of(seq) if seq is not None else None
        if gap is not None:
            text = (f"event #{seq:,} was not shown: the view fell too far behind the live "
                    f"peers (events #{gap[0]:,}–#{gap[1]:,} arrived while its queue was "
                    "full)")
            paths = self.kept_by(seq)
            return text + ("; the recording " + " and ".join(paths) + " keeps it" if paths
                           else "; no recording was on")
        what = (f"event #{seq:,} was" if seq is not None else
                f"events #0–#{last_dropped:,} were")
        holds = (f"#{self.base:,}–#{len(self) - 1:,}" if self._items else
                 "none of them yet")
        text = (f"{what} dropped from memory: a live session keeps its latest "
                f"{self.keep:,} to {self.keep + self.batch:,} events (memory holds "
                f"{holds})")
        if seq is None and self.unshown:
            f, la = self._gaps[-1]
            text += (f"; {self.unshown:,} of them were never shown, the view having fallen "
                     f"too far behind the live peers (the latest: #{f:,}–#{la:,})")
        if seq is not None:
            paths = self.kept_by(seq)
            if paths:
                return text + "; the recording " + " and ".join(paths) + " keeps it"
        else:
            kept = []
            for path, first, last in self._recordings:
                end = last_dropped if last is None else min(last, last_dropped)
                if first <= end:
                    kept.append(f"{path} keeps " + ("them" if first == 0 and
                                                    end == last_dropped else
                                                    f"#{first:,}–#{end:,} of them"))
            if kept:
                return text + "; the recording " + ", the recording ".join(kept)
        running = [p for p, _f, last in self._recordings if last is None]
        if running:
            return text + (f"; the recording {running[-1]} holds the events from its start "
                           "on")
        return text + "; a recording (r in the app, `record start` in the REPL) keeps " \
            "every event from its start on"
