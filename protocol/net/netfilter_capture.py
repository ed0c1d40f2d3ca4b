"""The colo-compare chardev channels in a capture (`colo import`).

A capture of a COLO pair on one host (a `colo lab --capture`, or dumpcap on
loopback) holds, beside the migration connection, the TCP connections between
filter-mirror / filter-redirector / colo-compare chardevs.  They are found by
protocol, as the COLO connection is: a direction whose first bytes are whole
net-filter frames (protocol/net/netfilter.py) holding Ethernet frames.

Each direction is decoded into packets (protocol/net/netpacket.py) and given a
role from its content:

- ``mirror``: the client's packets (to the guest's service port), what
  filter-mirror copies to the secondary;
- guest output: the primary's packets travel on ``primary-in`` and again,
  once released, on ``compare-out``; the secondary's on ``compare-in``.  With
  a mismatch in the capture (a payload that differs at the same flow and
  sequence number), the side with fewer streams is compare-in, and within the
  primary's side the streams that carry each packet first are primary-in.  When every
  packet matched, content cannot tell them apart: the streams stay
  ``guest-output`` and no verdicts are given.  (Within the primary's group,
  "first" is counted packet by packet: the stream that carries more of the
  shared packets before the others is earlier.)

A channel relayed by `colo lab` appears twice (client chardev -> relay,
relay -> server chardev); both copies get the channel's name.
"""
from __future__ import annotations

import struct

from protocol.errors import LimitError
from protocol.net import netcompare as nc
from protocol.net import netpacket
from protocol.net.netfilter import MAX_PACKET, FrameDecoder

_ETHERTYPES = {0x0800, 0x0806, 0x86DD, 0x8100}
MAX_EVENTS_PER_STREAM = 50


def _frames_ok(head: bytes, vnet: int | None) -> bool:
    """Every frame that starts in `head` has a size QEMU accepts (and the vnet
    word given), and at least one shows a known ethertype."""
    pos, typed = 0, 0
    hdr = 8 if vnet is not None else 4
    while pos + hdr <= len(head):
        size = struct.unpack_from(">I", head, pos)[0]
        if vnet is not None and struct.unpack_from(">I", head, pos + 4)[0] != vnet:
            return False
        if not 14 + (vnet or 0) <= size <= MAX_PACKET:
            return False
        etype_at = pos + hdr + (vnet or 0) + 12
        if etype_at + 2 > len(head):
            break
        if struct.unpack_from(">H", head, etype_at)[0] not in _ETHERTYPES:
            return False
        typed += 1
        pos += hdr + size
    return typed > 0


def head_layout(head: bytes) -> int | None | bool:
    """False when `head` does not start like a net-filter stream; else its
    vnet_hdr_len (None: no vnet header words)."""
    if len(head) < 18 or head[:4] == b"QEVM":
        return False
    if _frames_ok(head, None):
        return None
    if len(head) >= 8:
        vnet = struct.unpack_from(">I", head, 4)[0]
        if vnet in (10, 12) and _frames_ok(head, vnet):
            return vnet
    return False


def find_streams(found) -> list[tuple[str, str, int | None]]:
    """(src, dst, vnet_hdr_len) of every direction of a scan (protocol.record.pcap
    Scan) that starts like a net-filter stream."""
    out = []
    for c in found.connections:
        for d in (c.a, c.b):
            lay = head_layout(d.head)
            if lay is not False:
                out.append((d.src, d.dst, lay))
    return out


def decode_stream(data: bytes, offsets, t0: float, vnet: int | None) -> dict:
    """Packets of one direction, with capture times relative to t0."""
    dec = FrameDecoder(vnet_hdr=vnet is not None)
    error = None
    try:
        frames = dec.feed(data)
    except LimitError as exc:
        frames, error = [], str(exc)
    packets = []
    idx, times = 0, sorted(offsets or [])
    last_t = None
    for n, fr in enumerate(frames, 1):
        while idx < len(times) and times[idx][0] <= fr.offset:
            last_t = times[idx][1] - t0
            idx += 1
        eth = fr.ethernet
        info = netpacket.parse(eth)
        packets.append((n, last_t, info, netpacket.payload(eth, info)))
    return {"packets": packets, "error": error, "trailing_bytes": dec.pending}


def _is_input(packets) -> bool:
    tcp = [i for _, _, i, _ in packets if i.kind == "tcp"]
    toward = sum(1 for i in tcp if i.dport < i.sport)
    return bool(tcp) and toward * 2 > len(tcp)


def _fingerprint(packets) -> frozenset:
    return frozenset((i.flow, i.seq, p) for _, _, i, p in packets
                     if i.kind == "tcp" and p)


def _by_seq(packets) -> dict:
    out: dict = {}
    for _, _, i, p in packets:
        if i.kind == "tcp" and p:
            out.setdefault((i.flow, i.seq), p)
    return out


def _conflict(a: dict, b: dict) -> bool:
    return any(b[k] != v for k, v in a.items() if k in b)


def name_streams(streams: dict[str, dict]) -> dict[str, str]:
    """stream key -> channel name (see the module doc).  Robust to a stream
    cut short (a capture that lost its last packets): sides are told apart by
    payloads that differ at the same flow and sequence number, not by equal
    packet sets."""
    names: dict[str, str] = {}
    outputs = []
    for key, s in streams.items():
        if _is_input(s["packets"]):
            names[key] = nc.MIRROR
        else:
            outputs.append(key)
    seqs = {key: _by_seq(streams[key]["packets"]) for key in outputs}
    ref = max(outputs, key=lambda k: len(seqs[k]), default=None)
    side_a = [k for k in outputs if not _conflict(seqs[k], seqs[ref])] if ref else []
    side_b = [k for k in outputs if k not in side_a]
    if not side_b or len(side_a) == len(side_b):
        for key in outputs:
            names[key] = "guest-output"
        return names
    # the primary's packets travel twice (primary-in, compare-out), the
    # secondary's once (compare-in)
    prim, sec = (side_a, side_b) if len(side_a) > len(side_b) else (side_b, side_a)
    for key in sec:
        names[key] = nc.COMPARE_IN
    # scores first: list.sort empties the list while it sorts
    score = {key: _earlier_count(key, prim, streams) for key in prim}
    prim.sort(key=lambda key: -score[key])
    half = max(1, len(prim) // 2)
    for k, key in enumerate(prim):
        names[key] = nc.PRIMARY_IN if k < half else nc.COMPARE_OUT
    return names


def _first_times(packets) -> dict:
    out: dict = {}
    for _, t, i, p in packets:
        if i.kind == "tcp" and p and t is not None:
            out.setdefault((i.flow, i.seq, p), t)
    return out


def _earlier_count(key: str, group: list[str], streams: dict[str, dict]) -> int:
    """How often `key`'s stream carries a packet before another stream of its
    group does (primary-in carries each packet before compare-out)."""
    mine = _first_times(streams[key]["packets"])
    wins = 0
    for other in group:
        if other != key:
            theirs = _first_times(streams[other]["packets"])
            wins += sum(1 for k, t in mine.items() if k in theirs and t < theirs[k])
    return wins


def summarize(streams: dict[str, dict], checkpoint_times: list[float]) -> dict:
    """The import's ``compare_channels``: per stream its channel, packet counts and
    first packets; verdicts when the channels could be named."""
    names = name_streams(streams)
    out_streams = []
    chosen: dict[str, str] = {}
    for key, s in streams.items():
        name = names[key]
        chosen.setdefault(name, key)
        pk = s["packets"]
        out_streams.append({
            "stream": key, "channel": name, "frames": len(pk),
            "data_packets": sum(1 for _, _, i, p in pk if i.kind == "tcp" and p),
            "error": s["error"], "trailing_bytes": s["trailing_bytes"],
            "packets": [{"n": n, "t": t, **i.as_dict()}
                        for n, t, i, _ in pk[:MAX_EVENTS_PER_STREAM]]})
    result: dict = {"streams": out_streams}
    if {nc.PRIMARY_IN, nc.COMPARE_IN, nc.COMPARE_OUT} <= set(chosen):
        data = [nc.DataPacket(names[key], n, t, i.flow, i.seq, p)
                for name, key in chosen.items() if name != nc.MIRROR
                for n, t, i, p in streams[key]["packets"]
                if i.kind == "tcp" and p and t is not None]
        vs = nc.verdicts(data, checkpoint_times)
        result.update(nc.summary(vs))
        result["mismatches"] = [v.as_dict() for v in vs if v.verdict != "match"][:200]
    return result
