"""What one endpoint has to say, h2-style: wire segments to send and events to log.

The machine appends; the driver takes (``take_segments``, ``take_events``).  ``now``
is the time of the input being handled, stamped on every event.

``detail`` says whether anyone reads the detail events (``vm``, ``migration`` and the
actions no invariant checks: ``save-devices``, ``replication-checkpoint``,
``cache-pages``, ``start-dirty-log``): a driver whose events nobody records or shows
turns it off, and the machines then skip them (their state still changes).

``lean`` (off unless a driver turns it on) goes further, for a run whose events only
its checks read: the machines also skip the events of what went over the wire
(``send``, ``recv``, ``send-ram``, ``recv-ram``, ``recv-device-state``) except the
``send``/``recv`` of the messages named in ``checked_msgs``.

``stream_ram`` (off unless a driver turns it on): a checkpoint's RAM part goes out
as a segment of ``chunks`` encoded as the driver writes them (`Segment`), so its
first bytes leave before its last are encoded.  Only a driver that reads every
such iterator before the endpoint's next input may turn it on (the TCP engine).
"""
from __future__ import annotations

from protocol.core.events import Event, Segment


class Outbox:
    __slots__ = ("role", "now", "segments", "events", "detail", "lean", "checked_msgs",
                 "stream_ram")

    def __init__(self, role: str) -> None:
        self.role = role
        self.now = 0.0
        self.detail = True
        self.lean = False
        self.stream_ram = False
        self.checked_msgs: frozenset[str] = frozenset()
        self.segments: list[Segment] = []
        self.events: list[Event] = []

    def __bool__(self) -> bool:
        return bool(self.events or self.segments)

    def emit(self, kind: str, data: dict) -> None:
        self.events.append(Event(self.now, self.role, kind, data))

    def take_segments(self) -> list[Segment]:
        out, self.segments = self.segments, []
        return out

    def take_events(self) -> list[Event]:
        ev, self.events = self.events, []
        return ev
