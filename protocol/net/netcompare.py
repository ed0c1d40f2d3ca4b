"""What colo-compare decided for each TCP data packet, from the three channels
around it and the primary's checkpoint requests (sans-IO, no clock: every
record carries its own time).

colo-compare (net/colo-compare.c, QEMU 7.2) takes the primary guest's output
on ``primary-in`` and the secondary guest's on ``compare-in``; for TCP it pairs
them by connection and sequence number (``colo_mark_tcp_pkt``) and compares
the payloads.  Equal: the primary's packet goes out on ``compare-out`` at once.
Different: it asks for a checkpoint (``colo_compare_inconsistency_notify``) and
releases the primary's packet when the checkpoint is done
(``colo_flush_packets``).  A primary packet with no secondary partner is
released the same way once it is older than ``compare_timeout`` (3000 ms by
default; ``colo_old_packet_check``).

So a packet *forced* a checkpoint when its payloads differ (or its partner
never came) and a checkpoint request lies between the moment both sides were
seen and the moment the packet left on compare-out.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass

PRIMARY_IN, COMPARE_IN, COMPARE_OUT, MIRROR = ("primary-in", "compare-in", "compare-out",
                                               "mirror")
CHANNELS = (PRIMARY_IN, COMPARE_IN, COMPARE_OUT, MIRROR)


@dataclass(frozen=True, slots=True)
class DataPacket:
    """One TCP packet with payload seen on a channel."""

    channel: str
    n: int              # its number on the channel (1-based, every frame counted)
    t: float            # seconds, on the same clock as the checkpoint times
    flow: str
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    flow: str
    seq: int
    length: int
    verdict: str                # "match", "mismatch", "no-secondary"
    primary_n: int
    secondary_n: int | None
    out_n: int | None           # None: not released before the capture ended
    held_ms: float | None       # primary-in -> compare-out
    checkpoint: int | None      # the checkpoint it forced (1-based), when it forced one
    first_difference: int | None = None   # payload offset of the first differing byte
    retransmit: bool = False    # the primary sent this sequence number before

    @property
    def forced(self) -> bool:
        return self.checkpoint is not None

    def as_dict(self) -> dict:
        d = {"flow": self.flow, "seq": self.seq, "len": self.length, "verdict": self.verdict,
             "primary_n": self.primary_n, "secondary_n": self.secondary_n,
             "out_n": self.out_n, "held_ms": self.held_ms,
             "forced_checkpoint": self.checkpoint}
        if self.first_difference is not None:
            d["first_difference"] = self.first_difference
        if self.retransmit:
            d["retransmit"] = True
        return d


def _first_diff(a: bytes, b: bytes) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def verdicts(packets: list[DataPacket], checkpoints: list[float]) -> list[Verdict]:
    """One verdict per primary-in data packet, in primary-in order.  A secondary
    packet or a compare-out packet is paired once, with the earliest primary
    packet of the same flow and sequence number."""
    cps = sorted(checkpoints)
    sec: dict[tuple[str, int], list[DataPacket]] = defaultdict(list)
    out: dict[tuple[str, int], list[DataPacket]] = defaultdict(list)
    prim: list[DataPacket] = []
    for p in sorted(packets, key=lambda p: p.t):
        if p.channel == PRIMARY_IN:
            prim.append(p)
        elif p.channel == COMPARE_IN:
            sec[(p.flow, p.seq)].append(p)
        elif p.channel == COMPARE_OUT:
            out[(p.flow, p.seq)].append(p)
    result = []
    seen: set[tuple[str, int]] = set()
    for p in prim:
        key = (p.flow, p.seq)
        o_list = out[key]
        o = next((x for x in o_list if x.t >= p.t and x.payload == p.payload), None)
        if o is not None:
            o_list.remove(o)
        # a secondary packet that came after the primary's left was never compared
        # with it (a checkpoint or the timeout released the primary first)
        s = sec[key][0] if sec[key] and (o is None or sec[key][0].t <= o.t) else None
        if s is not None:
            sec[key].pop(0)
        retransmit = key in seen
        seen.add(key)
        if s is None:
            verdict, diff = "no-secondary", None
        elif s.payload == p.payload:
            verdict, diff = "match", None
        else:
            verdict, diff = "mismatch", _first_diff(p.payload, s.payload)
        cp = None
        if verdict != "match" and o is not None:
            both = max(p.t, s.t) if s is not None else p.t
            i = bisect.bisect_left(cps, both)
            if i < len(cps) and cps[i] <= o.t:
                cp = i + 1
        result.append(Verdict(p.flow, p.seq, len(p.payload), verdict, p.n,
                              s.n if s else None, o.n if o else None,
                              round((o.t - p.t) * 1000, 1) if o else None, cp, diff,
                              retransmit))
    return result


def summary(vs: list[Verdict]) -> dict:
    counts: dict[str, int] = {}
    for v in vs:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return {"verdicts": counts,
            "forced_checkpoints": sorted({v.checkpoint for v in vs if v.forced})}
