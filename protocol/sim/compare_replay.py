"""The simulator's hybrid mode (protocol.guest.net.ColoCompare) fed the packet
sequence real colo-compare saw, for a verdict per primary packet to set
against real QEMU's (protocol.net.netcompare.verdicts).

The packets are the TCP data packets of the primary-in and compare-in
channels, in the order and at the times the lab's relay (or a capture) saw
them.  The checkpoints are when real colo-compare flushed, applied at their
times (COLO_EVENT_CHECKPOINT: the model sends its queued primary packets and
drops the secondary's); 7.2 flushes once the primary has received
'vmstate-received' (the lab's flush_times, colo_tui/lab/modes.py).  The
model's stale-packet scan runs on its own clock.  Each connection (flow) is
one of the model's connections.

A verdict: ``match`` (the model released the packet on a secondary packet with
the same payload), ``mismatch`` (it asked for a checkpoint with the packet at
the head of its queue, a secondary packet queued beside it) or
``no-secondary`` (released by a checkpoint, or still queued at the end, with
no secondary packet ever compared with it, or released at once as a
retransmission of data already compared: `TcpColoCompare`) or ``dropped``
(its connection's primary queue was full: colo_insert_packet refuses a packet
beyond max_queue_size, 1024 by default, and colo-compare destroys it, so it
never leaves).  A packet queued behind a
mismatch, whose equal secondary bytes were queued too, is released by the
flush and counts as a ``match``, as netcompare counts it.  Sans-IO.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.guest.net import PRIMARY, SECONDARY, ColoCompare, Packet
from protocol.net import netcompare as nc

if TYPE_CHECKING:
    from protocol.guest.net import _Connection

_SEQ_MOD = 1 << 32


def _after(a: int, b: int) -> bool:
    """QEMU's after(a, b): TCP sequence number a comes later than b (mod 2**32)."""
    return 0 < (a - b) % _SEQ_MOD < _SEQ_MOD // 2


class TcpColoCompare(ColoCompare):
    """The model's colo-compare plus the one TCP rule of 7.2's colo_compare_tcp
    that its whole-payload comparison leaves out: each connection remembers the
    end of the last data it matched (compare_seq), and a packet at the head of a
    queue whose data ends at or before it was compared already (a TCP
    retransmission).  Such a primary packet is released at once, uncompared
    ("pri: this packet has compared"); such a secondary packet is destroyed
    ("sec: ...").  Like QEMU, only while both queues hold a packet.  Packets
    carry the TCP sequence number as their ``req_id``."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.compare_seq: dict[int, int] = {}      # id(connection) -> sequence number
        self.compared_before: list[Packet] = []    # primaries released by the rule

    def _covered(self, conn: _Connection, pkt: Packet) -> bool:
        cseq = self.compare_seq.get(id(conn))
        return cseq is not None and not _after(
            (pkt.req_id + len(pkt.payload)) % _SEQ_MOD, cseq)

    def _compare(self, conn: _Connection, now_ms: int) -> list[Packet]:
        released: list[Packet] = []
        while conn.primary and conn.secondary:
            pkt = conn.primary[0]
            if self._covered(conn, pkt):
                released.append(conn.primary.popleft())
                self.compared_before.append(pkt)
                continue
            if self._covered(conn, conn.secondary[0]):
                conn.secondary.popleft()
                continue
            match = next((s for s in conn.secondary if s.payload == pkt.payload), None)
            if match is None:
                self._notify(now_ms, "mismatch")
                break
            conn.secondary.remove(match)
            released.append(conn.primary.popleft())
            self.matched += 1
            self.compare_seq[id(conn)] = (pkt.req_id + len(pkt.payload)) % _SEQ_MOD
        return released


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    primary_n: int
    flow: str
    seq: int
    verdict: str
    compared_before: bool = False    # released at once: its data was compared already


def model_verdicts(packets: list[nc.DataPacket], checkpoints: list[float],
                   compare_timeout_ms: int = 3000) -> list[ModelVerdict]:
    data = sorted((p for p in packets if p.channel in (nc.PRIMARY_IN, nc.COMPARE_IN)),
                  key=lambda p: p.t)
    if not data:
        return []
    t0 = min([data[0].t, *checkpoints])

    def ms(t: float) -> int:
        return int(round((t - t0) * 1000))

    # in the order of the recorded times themselves: rounded to the model's
    # millisecond clock first, a packet logged up to 1 ms before a flush could tie
    # with it and be replayed after it (a flush sorts first on a tie)
    events = [(t, 0, None) for t in sorted(checkpoints)]
    events += [(p.t, 1, p) for p in data]
    events.sort(key=lambda e: (e[0], e[1]))
    cc = TcpColoCompare(start_ms=0, compare_timeout_ms=compare_timeout_ms)
    conns: dict[str, int] = {}
    verdict: dict[int, str] = {}
    meta: dict[int, tuple[str, int]] = {}
    again_n: set[int] = set()
    for t, _kind, p in events:
        now = ms(t)
        cc.scan(now)
        if p is None:
            # a primary packet queued behind a mismatch but with equal bytes from the
            # secondary also queued is released by the flush; its bytes matched, and
            # netcompare calls it a match too
            for q in cc.conns.values():
                waiting = [s.payload for s in q.secondary]
                for pkt in q.primary:
                    if pkt.payload in waiting:
                        waiting.remove(pkt.payload)
                        verdict.setdefault(pkt.seq, "match")
            for pkt in cc.checkpoint(now):
                verdict.setdefault(pkt.seq, "no-secondary")
            continue
        conn = conns.setdefault(p.flow, len(conns))
        side = PRIMARY if p.channel == nc.PRIMARY_IN else SECONDARY
        pkt = Packet(side, p.n, conn, p.seq, p.payload, now)
        if side == PRIMARY:
            meta[p.n] = (p.flow, p.seq)
        before, dropped = len(cc.notifications), len(cc.dropped)
        again = len(cc.compared_before)
        released = (cc.primary_in if side == PRIMARY else cc.secondary_in)(pkt, now)
        for d in cc.dropped[dropped:]:
            if d.side == PRIMARY:
                verdict.setdefault(d.seq, "dropped")
        for r in cc.compared_before[again:]:
            verdict.setdefault(r.seq, "no-secondary")
            again_n.add(r.seq)
        for r in released:
            verdict.setdefault(r.seq, "match")
        if any(why == "mismatch" for _, why in cc.notifications[before:]):
            q = cc.conns[conn]
            if q.primary and q.secondary:
                verdict.setdefault(q.primary[0].seq, "mismatch")
    for q in cc.conns.values():
        for pkt in q.primary:
            verdict.setdefault(pkt.seq, "no-secondary")
    return [ModelVerdict(n, *meta[n], verdict[n], n in again_n) for n in sorted(meta)]


def agreement(packets: list[nc.DataPacket], checkpoints: list[float]) -> dict:
    """Real colo-compare's verdicts against the model's, packet by packet.  A
    packet the model dropped (a full queue) agrees with a real one that never
    left colo-compare, whatever the real pairing calls it.  A retransmission the
    model released uncompared (its data was compared already) agrees with a real
    ``match`` too: the relay's pairing gives it the secondary's retransmission,
    which 7.2 destroys uncompared ("sec: this packet has compared")."""
    real = {v.primary_n: v for v in nc.verdicts(packets, checkpoints)}
    model = {v.primary_n: v for v in model_verdicts(packets, checkpoints)}
    same, differ = 0, []
    for n, rv in sorted(real.items()):
        mv = model.get(n)
        if mv is not None and (mv.verdict == rv.verdict
                               or (mv.verdict == "dropped" and rv.out_n is None)
                               or (mv.compared_before and rv.retransmit
                                   and rv.verdict == "match")):
            same += 1
        else:
            differ.append({"primary_n": n, "flow": rv.flow, "seq": rv.seq,
                           "real": rv.verdict, "model": mv.verdict if mv else None,
                           "retransmit": rv.retransmit})
    counts: dict[str, dict[str, int]] = {"real": {}, "model": {}}
    for v in real.values():
        counts["real"][v.verdict] = counts["real"].get(v.verdict, 0) + 1
    for v in model.values():
        counts["model"][v.verdict] = counts["model"].get(v.verdict, 0) + 1
    return {"packets": len(real), "same": same, "differ": differ, "counts": counts}
