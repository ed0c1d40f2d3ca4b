"""An in-memory link that moves bytes only when the simulator pumps it.

Two directions ("P>S", "S>P"); each piece of output travels as one delivery
with a virtual arrival time (latency + size / bandwidth, in order per
direction).  Fault hooks (drop, delay, corrupt, duplicate, truncate, close,
partition) act on deliveries.  No clock, no sockets.
"""
from __future__ import annotations

P2S, S2P = "P>S", "S>P"


def size_of(data) -> int:
    """Bytes in a delivery's data: one bytes object, or a burst's pieces (a tuple)."""
    return sum(len(p) for p in data) if type(data) is tuple else len(data)


class Delivery:
    """One piece of output in flight: when it arrives (virtual ms), which way, what
    (one bytes object, or a burst's pieces: a tuple), and what it belongs to."""

    __slots__ = ("at_ms", "direction", "data", "point", "checkpoint", "note")

    def __init__(self, at_ms: float, direction: str, data, point: str, checkpoint: int,
                 note: str = "") -> None:
        self.at_ms = at_ms
        self.direction = direction
        self.data = data
        self.point = point
        self.checkpoint = checkpoint
        self.note = note

    def _key(self) -> tuple:
        return (self.at_ms, self.direction, self.data, self.point, self.checkpoint, self.note)

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None     # mutable, compared by value

    def __repr__(self) -> str:
        return ("Delivery(at_ms={!r}, direction={!r}, data={!r}, point={!r}, checkpoint={!r}, "
                "note={!r})".format(*self._key()))


class MemoryLink:
    """Both directions of the link: their latency and rate, where each direction is
    free again, a partition's end, and (``keep_wire``) the bytes that went each way,
    up to ``max_wire_bytes``.  An extension type in the compiled build (link.pxd):
    the simulator schedules every delivery through it.  An instance takes attributes
    of its own: `colo export` wraps its ``schedule`` to see every delivery."""

    def __init__(self, latency_ms: float = 0.05, bytes_per_ms: float = 1.0e6) -> None:
        self.latency_ms = latency_ms
        self.bytes_per_ms = bytes_per_ms         # 1e6: 1 GB/s
        self.closed = False
        self.closing = False                     # no new bytes; those in flight still arrive
        self.held_until_ms = 0.0                 # a partition holds every byte until then
        self._free_at = {P2S: 0.0, S2P: 0.0}
        self.wire = {P2S: bytearray(), S2P: bytearray()}
        self.keep_wire = True
        self.max_wire_bytes = 64 << 20

    def schedule(self, now: float, direction: str, data, point: str,
                 checkpoint: int, extra_delay_ms: float = 0.0, note: str = "") -> Delivery:
        """When would these bytes arrive if sent now?  (Keeps per-direction order.)"""
        size = size_of(data)
        free_at = self._free_at
        start = free_at[direction]
        if now > start:
            start = now
        if self.held_until_ms > start:
            start = self.held_until_ms
        done = start + size / self.bytes_per_ms
        # a delayed piece holds back everything behind it: TCP never reorders a stream
        free_at[direction] = done + extra_delay_ms
        if self.keep_wire:
            wire = self.wire[direction]
            if len(wire) + size <= self.max_wire_bytes:
                if type(data) is tuple:
                    for part in data:
                        wire += part
                else:
                    wire += data
        return Delivery(done + self.latency_ms + extra_delay_ms, direction, data, point,
                        checkpoint, note)

    def partition(self, now: float, duration_ms: float) -> None:
        self.held_until_ms = max(self.held_until_ms, now + duration_ms)


def link_slack_ms(cfg) -> float:
    """What the link adds to a checkpoint at most, as the watchdog must allow for it:
    a transaction's messages each one latency (with room to spare), and a guest
    model's whole RAM once at the link's rate (its worst dirtying)."""
    ram = cfg.ram_mib << 20 if cfg.guest == "model" else 0
    return 8 * cfg.latency_ms + ram / cfg.bytes_per_ms
