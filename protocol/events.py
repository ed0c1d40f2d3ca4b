"""The one event stream everything reads (TUI, REPL, recordings, JSON output)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Event:
    t_ms: float
    side: str          # "primary", "secondary", "link", "operator", "sim"
    kind: str
    data: dict = field(default_factory=dict)
    seq: int = -1

    def to_json(self) -> dict:
        return {"t": round(self.t_ms, 6), "seq": self.seq, "side": self.side,
                "kind": self.kind, **({"data": self.data} if self.data else {})}


@dataclass(slots=True)
class Segment:
    """One piece of output: a control message, a RAM part, a blob, the initial stream.

    ``point`` is the fault-grammar name of this piece (a message name or a
    stage: ``ram``, ``device-state``), ``checkpoint`` the transaction it
    belongs to.
    """

    kind: str          # "msg", "ram", "blob", "initial"
    point: str
    data: bytes
    checkpoint: int
    value: int = 0
