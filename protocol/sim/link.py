"""An in-memory link that moves bytes only when the simulator pumps it.

Two directions ("P>S", "S>P"); each piece of output travels as one delivery
with a virtual arrival time (latency + size / bandwidth, in order per
direction).  Fault hooks (drop, delay, corrupt, duplicate, truncate, close,
partition) act on deliveries.  No clock, no sockets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

P2S, S2P = "P>S", "S>P"


def size_of(data) -> int:
    """Bytes in a delivery's data: one bytes object, or a burst's pieces (a tuple)."""
    return sum(len(p) for p in data) if type(data) is tuple else len(data)


@dataclass(slots=True)
class Delivery:
    at_ms: float
    direction: str
    data: bytes
    point: str
    checkpoint: int
    note: str = ""


@dataclass
class MemoryLink:
    latency_ms: float = 0.05
    bytes_per_ms: float = 1.0e6          # 1 GB/s
    closed: bool = False
    closing: bool = False                # no new bytes; those in flight still arrive
    held_until_ms: float = 0.0           # a partition holds every byte until then
    _free_at: dict = field(default_factory=lambda: {P2S: 0.0, S2P: 0.0})
    wire: dict = field(default_factory=lambda: {P2S: bytearray(), S2P: bytearray()})
    keep_wire: bool = True
    max_wire_bytes: int = 64 << 20

    def schedule(self, now: float, direction: str, data: bytes, point: str,
                 checkpoint: int, extra_delay_ms: float = 0.0, note: str = "") -> Delivery:
        """When would these bytes arrive if sent now?  (Keeps per-direction order.)"""
        size = size_of(data)
        start = max(now, self._free_at[direction], self.held_until_ms)
        done = start + size / self.bytes_per_ms
        # a delayed piece holds back everything behind it: TCP never reorders a stream
        self._free_at[direction] = done + extra_delay_ms
        if self.keep_wire and len(self.wire[direction]) + size <= self.max_wire_bytes:
            for part in data if type(data) is tuple else (data,):
                self.wire[direction] += part
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
