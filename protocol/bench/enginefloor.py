"""The engine's floor: a minimal sans-IO endpoint pair for ``colo bench engine``.

`FloorEndpoint` speaks the bench's checkpoint transaction (the qemu dialect's
six control messages, with ``payload`` bytes after vmstate-send: as many as the
real endpoint's RAM part and device blob) with
the interface the TCP engine drives (`protocol.drivers.tcp.Engine`), and does
nothing else: no machine, no decoder, no guest, two events per checkpoint on
the primary (begin and commit) and one on the secondary (commit).  Run on the engine it
measures what the engine, the event loop and the kernel cost by themselves;
the gap between it and the real endpoint is the core's.
"""
from __future__ import annotations

import struct

from protocol.core import dialects
from protocol.core.events import Checkpoint, Segment

_D = dialects.QEMU
REQUEST = _D.encode("checkpoint-request", 0)
REPLY = _D.encode("checkpoint-reply", 0)
SEND = _D.encode("vmstate-send", 0)
RECEIVED = _D.encode("vmstate-received", 0)
LOADED = _D.encode("vmstate-loaded", 0)
SIZE_ID = struct.pack(">I", _D.ids["vmstate-size"])


class FloorEndpoint:
    """One side of the bench's transaction, as little as the engine can drive.

    The primary sends checkpoint-request as soon as the previous checkpoint is
    committed (a checkpoint delay of 0) or ``delay_ms`` after it; the secondary
    answers checkpoint-reply, then vmstate-received and vmstate-loaded once the
    vmstate (vmstate-send, the payload, vmstate-size) has arrived whole.
    """

    decoder = None
    close_requested = False

    def __init__(self, role: str, payload: int, delay_ms: float = 0.0) -> None:
        if role not in ("primary", "secondary"):
            raise ValueError(f"role must be primary or secondary, not {role!r}")
        self.role = role
        self.state = "CHECKPOINTING"
        self.peer_closed = False
        self.checkpoint = 0
        self.delay_ms = delay_ms
        self._payload = bytes(payload)
        self._size = SIZE_ID + struct.pack(">Q", 0)
        # the secondary waits for this many bytes of one checkpoint's vmstate
        self._vmstate = len(SEND) + payload + len(self._size)
        self._expect = 0            # bytes still owed by the peer for the current step
        self._phase = "request"     # what those bytes are
        self._deadline: float | None = None
        self._segs: list[Segment] = []
        self._events: list = []

    # -- what the engine calls ---------------------------------------------
    def start(self, now: float) -> None:
        if self.role == "primary":
            self._request(now)
        else:
            self._expect = len(REQUEST)

    def receive_data(self, data, now: float) -> None:
        n = len(data)
        while n and self.state == "CHECKPOINTING":
            if not self._expect:
                self.state = "ERROR"        # bytes the transaction has no room for
                break
            take = min(n, self._expect)
            n -= take
            self._expect -= take
            if self._expect == 0:
                self._step(now)

    def receive_eof(self, now: float) -> None:
        self.peer_closed = True
        self.state = "ERROR"
        self._deadline = None

    def handle_timer(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._request(now)

    def next_deadline(self) -> float | None:
        return self._deadline

    def segments_to_send(self) -> list[Segment]:
        out, self._segs = self._segs, []
        return out

    def take_events(self) -> list:
        out, self._events = self._events, []
        return out

    # -- the transaction -----------------------------------------------------
    def _out(self, point: str, data: bytes) -> None:
        self._segs.append(Segment("msg", point, data, self.checkpoint))

    def _request(self, now: float) -> None:
        self.checkpoint += 1
        self._events.append(Checkpoint(now, "primary", n=self.checkpoint, phase="begin"))
        self._out("checkpoint-request", REQUEST)
        self._expect = len(REPLY)
        self._phase = "reply"

    def _step(self, now: float) -> None:
        if self.role == "secondary":
            if self._phase == "request":
                self._out("checkpoint-reply", REPLY)
                self._expect = self._vmstate
                self._phase = "vmstate"
            else:
                self.checkpoint += 1
                self._events.append(Checkpoint(now, "secondary", n=self.checkpoint,
                                               phase="commit"))
                self._out("vmstate-received", RECEIVED)
                self._out("vmstate-loaded", LOADED)
                self._expect = len(REQUEST)
                self._phase = "request"
            return
        if self._phase == "reply":
            self._out("vmstate-send", SEND)
            if self._payload:
                self._segs.append(Segment("ram", "ram", self._payload, self.checkpoint))
            self._out("vmstate-size", self._size)
            self._expect = len(RECEIVED) + len(LOADED)
            self._phase = "loaded"
            return
        self._events.append(Checkpoint(now, "primary", n=self.checkpoint, phase="commit"))
        if self.delay_ms:
            self._deadline = now + self.delay_ms
            self._expect = 0
        else:
            self._request(now)
