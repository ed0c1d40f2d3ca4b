"""The one JSON codec for events: a typed `protocol.core.events.Event` <-> a recording line.

A line is ``{"t": ms, "seq": n, "side": ..., "kind": ..., "data": {...}}`` (``data``
left out when empty), the shape of recording format version 1: the typed classes
keep its granularity (one event per line, the same kinds and field names), so the
version stays 1 and every file written by earlier releases reads as it is.  A field
whose value is None is written only where the kind always carries it (``vm.qmp``,
``recv.id``); the bytes of a wire message are written as ``hex``.
"""
from __future__ import annotations

import math
from typing import Any

from protocol.core.events import Event, EventError, make
from protocol.errors import RecordingError

#: the recording format versions whose event lines this codec reads
READS = (1,)


def to_json(ev: Event) -> dict[str, Any]:
    """The recording line of one event."""
    p = ev.payload()
    line = {"t": round(ev.t_ms, 6), "seq": ev.seq, "side": ev.side, "kind": str(ev.kind)}
    if p:
        line["data"] = p
    return line


def from_json(obj: dict, *, version: int = 1, where: str = "event") -> Event:
    """The typed event of one recording line (RecordingError, naming ``where``, when
    the line is not one: an unknown kind, a field its kind does not have, bad bytes)."""
    if version not in READS:
        raise RecordingError(f"{where}: event lines of format version {version} are not "
                             f"known to this tool (it reads {', '.join(map(str, READS))})")
    if not isinstance(obj, dict):
        raise RecordingError(f"{where}: an event is a JSON object")
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise RecordingError(f"{where}: data: an object of fields")
    t, seq = obj.get("t", 0.0), obj.get("seq", -1)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        raise RecordingError(f"{where}: t: a number of milliseconds")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise RecordingError(f"{where}: seq: an integer")
    kind, side = obj.get("kind"), obj.get("side", "?")
    if not isinstance(kind, str) or not isinstance(side, str):
        raise RecordingError(f"{where}: kind and side are strings")
    try:
        return make(float(t), side, kind, seq=seq, **{str(k): v for k, v in data.items()})
    except (EventError, TypeError) as exc:
        raise RecordingError(f"{where}: {exc}") from None
