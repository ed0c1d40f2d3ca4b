"""The colo-compare chardev channels in a capture (`colo import`).

A capture of a COLO pair on one host (a `colo lab --capture`, or dumpcap on
loopback) holds, beside the migration connection, the TCP connections between
filter-mirror / filter-redirector / colo-compare chardevs.  They are found by
protocol, as the COLO connection is: a direction whose first bytes are whole
net-filter frames (protocol/netfilter.py) holding Ethernet frames.

Each direction is decoded into packets (protocol/netpacket.py) and given a
role from its content:

- ``mirror``: the client's packets (to the guest's service port), what
  filter-mirror copies to the secondary;
- guest output, grouped by content: the primary's packets travel on
  ``primary-in`` and again, once released, on ``compare-out``; the
  secondary's on ``compare-in``.  With mismatches in the capture, the group
  that differs and has fewer streams is compare-in, and within the primary's
  group the streams that carry each packet first are primary-in.  When every
  packet matched, content cannot tell them apart: the streams stay
  ``guest-output`` and no verdicts are given.

A channel relayed by `colo lab` appears twice (client chardev -> relay,
relay -> server chardev); both copies get the channel's name.
"""
from __future__ import annotations

import struct
from collections import defaultdict

from . import netcompare as nc
from . import netpacket
from .errors import LimitError
from .netfilter import MAX_PACKET, FrameDecoder

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


def name_streams(streams: dict[str, dict]) -> dict[str, str]:
    """stream key -> channel name (see the module doc)."""
    names: dict[str, str] = {}
    outputs = []
    for key, s in streams.items():
        if _is_input(s["packets"]):
            names[key] = nc.MIRROR
        else:
            outputs.append(key)
    groups: dict[frozenset, list[str]] = defaultdict(list)
    for key in outputs:
        groups[_fingerprint(streams[key]["packets"])].append(key)
    if len(groups) != 2:
        for key in outputs:
            names[key] = "guest-output"
        return names
    (fa, ka), (fb, kb) = groups.items()
    # the secondary's group has fewer streams (compare-in against primary-in +
    # compare-out); at a tie, the one whose data the other group lacks more of
    sec, prim = (ka, kb) if (len(ka), len(fa - fb)) < (len(kb), len(fb - fa)) else (kb, ka)
    for key in sec:
        names[key] = nc.COMPARE_IN

    def first_time(key: str) -> float:
        ts = [t for _, t, i, p in streams[key]["packets"] if p and t is not None]
        return sum(ts) / len(ts) if ts else 0.0
    prim.sort(key=first_time)
    half = max(1, len(prim) // 2)
    for k, key in enumerate(prim):
        names[key] = nc.PRIMARY_IN if k < half else nc.COMPARE_OUT
    return names


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
