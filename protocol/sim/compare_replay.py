"""The simulator's hybrid mode (protocol.guest.net.ColoCompare) fed the packet
sequence real colo-compare saw, for a verdict per primary packet to set
against real QEMU's (protocol.net.netcompare.verdicts).

The packets are the TCP data packets of the primary-in and compare-in
channels, in the order and at the times the lab's relay (or a capture) saw
them; the real checkpoints are applied at their times (COLO_EVENT_CHECKPOINT:
the model sends its queued primary packets and drops the secondary's); the
model's stale-packet scan runs on its own clock.  Each connection (flow) is
one of the model's connections.

A verdict: ``match`` (the model released the packet on a secondary packet with
the same payload), ``mismatch`` (it asked for a checkpoint with the packet at
the head of its queue, a secondary packet queued beside it) or
``no-secondary`` (released by a checkpoint, or still queued at the end, with
no secondary packet ever compared with it) or ``dropped`` (its connection's
primary queue was full: colo_insert_packet refuses a packet beyond
max_queue_size, 1024 by default, and colo-compare destroys it, so it never
leaves).  A packet queued behind a
mismatch, whose equal secondary bytes were queued too, is released by the
flush and counts as a ``match``, as netcompare counts it.  Sans-IO.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.guest.net import PRIMARY, SECONDARY, ColoCompare, Packet
from protocol.net import netcompare as nc


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    primary_n: int
    flow: str
    seq: int
    verdict: str


def model_verdicts(packets: list[nc.DataPacket], checkpoints: list[float],
                   compare_timeout_ms: int = 3000) -> list[ModelVerdict]:
    data = sorted((p for p in packets if p.channel in (nc.PRIMARY_IN, nc.COMPARE_IN)),
                  key=lambda p: p.t)
    if not data:
        return []
    t0 = min([data[0].t, *checkpoints])

    def ms(t: float) -> int:
        return int(round((t - t0) * 1000))

    events = [(ms(t), 0, None) for t in sorted(checkpoints)]
    events += [(ms(p.t), 1, p) for p in data]
    events.sort(key=lambda e: (e[0], e[1]))
    cc = ColoCompare(start_ms=0, compare_timeout_ms=compare_timeout_ms)
    conns: dict[str, int] = {}
    verdict: dict[int, str] = {}
    meta: dict[int, tuple[str, int]] = {}
    for now, _kind, p in events:
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
        released = (cc.primary_in if side == PRIMARY else cc.secondary_in)(pkt, now)
        for d in cc.dropped[dropped:]:
            if d.side == PRIMARY:
                verdict.setdefault(d.seq, "dropped")
        for r in released:
            verdict.setdefault(r.seq, "match")
        if any(why == "mismatch" for _, why in cc.notifications[before:]):
            q = cc.conns[conn]
            if q.primary and q.secondary:
                verdict.setdefault(q.primary[0].seq, "mismatch")
    for q in cc.conns.values():
        for pkt in q.primary:
            verdict.setdefault(pkt.seq, "no-secondary")
    return [ModelVerdict(n, *meta[n], verdict[n]) for n in sorted(meta)]


def agreement(packets: list[nc.DataPacket], checkpoints: list[float]) -> dict:
    """Real colo-compare's verdicts against the model's, packet by packet.  A
    packet the model dropped (a full queue) agrees with a real one that never
    left colo-compare, whatever the real pairing calls it."""
    real = {v.primary_n: v for v in nc.verdicts(packets, checkpoints)}
    model = {v.primary_n: v for v in model_verdicts(packets, checkpoints)}
    same, differ = 0, []
    for n, rv in sorted(real.items()):
        mv = model.get(n)
        if mv is not None and (mv.verdict == rv.verdict
                               or (mv.verdict == "dropped" and rv.out_n is None)):
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
