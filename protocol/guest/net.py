"""The guest's network output and the two COLO output filters.

* `answer_payload`: the bytes a guest sends in answer to a client request,
  deterministic from the request id, the request bytes and the guest's NIC
  state; the secondary diverges with probability `divergence_rate`.
* `FilterBuffer` (periodic mode, v11 `filter-buffer`): holds every PVM packet
  until the machine calls `release` at the dialect's release point.
* `ColoCompare` (hybrid mode, 7.2 `net/colo-compare.c`): per connection a
  primary and a secondary queue.  A PVM packet is released as soon as the SVM
  produced the same bytes (the SVM copy is dropped); a difference keeps both
  and asks for a checkpoint; a PVM packet older than `compare_timeout_ms`
  (3000) at a scan (every `expired_scan_cycle_ms`, 1000) asks for a
  checkpoint; a checkpoint flushes (sends) all PVM packets and drops all SVM
  packets; a queue already longer than `max_queue_size` (1024) drops the new
  packet ("queue size too big, drop packet"; QEMU tests `len <= max`, so a
  queue holds at most 1025).
* `ClientLog`: what the client received, for the invariants.

Sans-IO: time is `now_ms` passed in.
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

from protocol.guest.workload import derive

PRIMARY = "primary"
SECONDARY = "secondary"
DEFAULT_COMPARE_TIMEOUT_MS = 3000
DEFAULT_EXPIRED_SCAN_CYCLE_MS = 1000
DEFAULT_MAX_QUEUE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet a guest sent; `key` identifies it uniquely."""

    side: str          # which VM produced it: "primary" / "secondary"
    seq: int           # per-side sequence number
    conn: int          # client connection (the 5-tuple, abstracted)
    req_id: int        # the request it answers
    payload: bytes
    created_ms: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.side, self.seq)


def answer_payload(req_id: int, request: bytes, rx_packets: int) -> bytes:
    """The guest's answer: a function of the request and of its NIC state."""
    h = hashlib.blake2b(digest_size=16)
    h.update(req_id.to_bytes(8, "big") + rx_packets.to_bytes(8, "big") + request)
    return b"ANS %d " % req_id + h.digest()


def diverges(seed: int, req_id: int, divergence_rate: float) -> bool:
    """Does the SVM answer request `req_id` differently? (seeded, deterministic)"""
    if divergence_rate <= 0:
        return False
    return derive(seed, 0xD1FF, req_id).random() < divergence_rate


def diverged(payload: bytes) -> bytes:
    return payload[:-1] + bytes([payload[-1] ^ 0xFF])


@dataclass(frozen=True, slots=True)
class Released:
    packet: Packet
    t_ms: int
    via: str           # "filter-buffer", "compare-match", "compare-checkpoint", ...


@dataclass
class ClientLog:
    """Everything the client received, in order, plus what was dropped."""

    released: list[Released] = field(default_factory=list)
    dropped: list[Packet] = field(default_factory=list)
    _keys: dict[tuple[str, int], int] = field(default_factory=dict)
    duplicates: list[Released] = field(default_factory=list)

    def record(self, packets: list[Packet], now_ms: int, via: str) -> None:
        for pkt in packets:
            entry = Released(pkt, now_ms, via)
            if pkt.key in self._keys:
                self.duplicates.append(entry)
            self._keys[pkt.key] = len(self.released)
            self.released.append(entry)

    def was_released(self, pkt: Packet) -> bool:
        return pkt.key in self._keys

    def answers_for(self, req_id: int) -> list[Released]:
        return [r for r in self.released if r.packet.req_id == req_id]

    def __len__(self) -> int:
        return len(self.released)


class FilterBuffer:
    """v11 filter-buffer: buffers the PVM's output until released."""

    def __init__(self) -> None:
        self.queue: deque[Packet] = deque()
        self.enabled = True
        self.released_total = 0

    def __len__(self) -> int:
        return len(self.queue)

    def send(self, pkt: Packet, now_ms: int) -> list[Packet]:
        """A PVM packet: buffered (returns []) unless buffering is off."""
        if not self.enabled:
            self.released_total += 1
            return [pkt]
        self.queue.append(pkt)
        return []

    def release(self, now_ms: int) -> list[Packet]:
        out = list(self.queue)
        self.queue.clear()
        self.released_total += len(out)
        return out

    def disable(self, now_ms: int) -> list[Packet]:
        """Primary failover: release what is held and stop buffering."""
        out = self.release(now_ms)
        self.enabled = False
        return out


@dataclass
class _Connection:
    primary: deque[Packet] = field(default_factory=deque)
    secondary: deque[Packet] = field(default_factory=deque)


class ColoCompare:
    """7.2 colo-compare, UDP-like comparison (same payload bytes)."""

    def __init__(self, start_ms: int = 0,
                 compare_timeout_ms: int = DEFAULT_COMPARE_TIMEOUT_MS,
                 expired_scan_cycle_ms: int = DEFAULT_EXPIRED_SCAN_CYCLE_MS,
                 max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE) -> None:
        if expired_scan_cycle_ms <= 0:
            raise ValueError("expired_scan_cycle_ms must be positive")
        self.compare_timeout_ms = compare_timeout_ms
        self.expired_scan_cycle_ms = expired_scan_cycle_ms
        self.max_queue_size = max_queue_size
        self.start_ms = start_ms
        self.last_scan_ms = start_ms
        self.conns: dict[int, _Connection] = {}
        self.notifications: list[tuple[int, str]] = []   # (t_ms, "mismatch"/"stale")
        self.checkpoint_needed = False
        self.dropped: list[Packet] = []
        self.drops = {PRIMARY: 0, SECONDARY: 0}
        self.matched = 0
        self.active = True

    # -- queues -------------------------------------------------------------
    def _conn(self, conn: int) -> _Connection:
        if conn not in self.conns:
            self.conns[conn] = _Connection()
        return self.conns[conn]

    def queued(self) -> tuple[int, int]:
        """(primary, secondary) packets queued over all connections."""
        return (sum(len(c.primary) for c in self.conns.values()),
                sum(len(c.secondary) for c in self.conns.values()))

    def _enqueue(self, queue: deque[Packet], pkt: Packet) -> bool:
        if len(queue) <= self.max_queue_size:        # colo_insert_packet
            queue.append(pkt)
            return True
        self.dropped.append(pkt)                     # "queue size too big, drop packet"
        self.drops[pkt.side] += 1
        return False

    def _notify(self, now_ms: int, reason: str) -> None:
        self.checkpoint_needed = True
        self.notifications.append((now_ms, reason))

    def _compare(self, conn: _Connection, now_ms: int) -> list[Packet]:
        """colo_compare_connection: release primaries that have a matching secondary."""
        released: list[Packet] = []
        while conn.primary and conn.secondary:
            pkt = conn.primary.popleft()
            match = next((s for s in conn.secondary if s.payload == pkt.payload), None)
            if match is None:
                conn.primary.appendleft(pkt)
                self._notify(now_ms, "mismatch")
                break
            conn.secondary.remove(match)
            released.append(pkt)
            self.matched += 1
        return released

    def primary_in(self, pkt: Packet, now_ms: int) -> list[Packet]:
        """A PVM packet (primary_in); returns the packets released now."""
        if not self.active:
            return [pkt]
        conn = self._conn(pkt.conn)
        self._enqueue(conn.primary, pkt)
        return self._compare(conn, now_ms)

    def secondary_in(self, pkt: Packet, now_ms: int) -> list[Packet]:
        """An SVM packet (secondary_in); returns the PVM packets released now."""
        if not self.active:
            return []
        conn = self._conn(pkt.conn)
        self._enqueue(conn.secondary, pkt)
        return self._compare(conn, now_ms)

    # -- timers --------------------------------------------------------------
    def next_deadline_ms(self) -> int:
        return self.last_scan_ms + self.expired_scan_cycle_ms

    def scan(self, now_ms: int) -> bool:
        """Run the stale-packet scan if one is due by `now_ms`; True if one asked
        for a checkpoint (a PVM packet older than compare_timeout_ms)."""
        if not self.active or now_ms < self.next_deadline_ms():
            return False
        cycles = (now_ms - self.last_scan_ms) // self.expired_scan_cycle_ms
        self.last_scan_ms += cycles * self.expired_scan_cycle_ms
        at = self.last_scan_ms
        for conn in self.conns.values():
            if any(at - p.created_ms > self.compare_timeout_ms for p in conn.primary):
                self._notify(at, "stale")
                return True
        return False

    def take_checkpoint_request(self) -> bool:
        """Consume the pending checkpoint request (the COLO thread woke up)."""
        needed, self.checkpoint_needed = self.checkpoint_needed, False
        return needed

    # -- events --------------------------------------------------------------
    def checkpoint(self, now_ms: int) -> list[Packet]:
        """COLO_EVENT_CHECKPOINT: send every queued PVM packet, drop SVM ones."""
        released: list[Packet] = []
        for conn in self.conns.values():
            released.extend(conn.primary)
            conn.primary.clear()
            conn.secondary.clear()
        self.checkpoint_needed = False
        return released

    def close(self, now_ms: int) -> list[Packet]:
        """The compare object is removed (primary failover): release the PVM's packets."""
        released = self.checkpoint(now_ms)
        self.active = False
        return released
