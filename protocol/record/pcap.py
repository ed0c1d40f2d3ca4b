"""Read a pcap/pcapng file and reassemble both directions of its TCP connections.

The file is streamed, never read whole. ``scan`` walks it once keeping only the
first bytes of each direction (to pick a connection by protocol); ``read_pcap``
reassembles the connections asked for.

Link types: Ethernet (1), Linux cooked SLL (113) and SLL2 (276), BSD
loopback/NULL (0, 108) and raw IP (12, 14, 101, 228, 229). Segments may be
out of order or retransmitted: every byte keeps the time of the first segment
that carried it, overlapping data counts as a retransmission, holes are
reported as gaps (and `data` stops at the first one).
"""
from __future__ import annotations

import bisect
import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error

import dpkt

from protocol.errors import ColoError

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
_RAW_LINKTYPES = (12, 14, 101, 228, 229)
_LINKTYPES = (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL,
              LINKTYPE_LINUX_SLL2, *_RAW_LINKTYPES)
_MOD32 = 1 << 32


class PcapError(ColoError, ValueError):
    """The file is not a readable capture."""


@dataclass
class TcpDirection:
    """The bytes one endpoint sent, with per-segment timing."""

    src: str
    dst: str
    data: bytes = b""                       # contiguous stream from offset 0 (up to a gap)
    offsets: list[tuple[int, float]] = field(default_factory=list)  # (offset, pcap time)
    gaps: list[tuple[int, int]] = field(default_factory=list)       # (offset, length)
    segments: int = 0                       # segments carrying payload
    retransmitted: int = 0                  # segments overlapping already-seen bytes
    bytes_after_gap: int = 0                # bytes seen beyond the first gap (not in data)
    packets: int = 0
    syn_time: float | None = None
    fin_time: float | None = None
    fin_offset: int | None = None
    rst_time: float | None = None
    last_time: float | None = None          # the last packet this side sent

    def time_at(self, offset: int) -> float | None:
        """pcap time of the segment that first carried stream byte `offset`."""
        if not self.offsets or offset < 0:
            return None
        i = bisect.bisect_right(self._starts, offset) - 1
        return self.offsets[i][1] if i >= 0 else None

    @property
    def _starts(self) -> list[int]:
        cache = self.__dict__.get("_starts_cache")
        if cache is None or len(cache) != len(self.offsets):
            cache = [o for o, _ in self.offsets]
            self.__dict__["_starts_cache"] = cache
        return cache


@dataclass
class TcpConnection:
    """Both directions; `initiator` is the side that sent the SYN (if seen)."""

    a: TcpDirection
    b: TcpDirection
    initiator: str | None = None

    def directions(self) -> tuple[TcpDirection, TcpDirection]:
        return self.a, self.b


@dataclass
class PcapCapture:
    link_type: int
    t0: float | None                        # time of the first packet
    packets: int
    tcp_packets: int
    undecodable: int
    connections: list[TcpConnection]


class _DirState:
    def __init__(self, src: str, dst: str) -> None:
        self.d = TcpDirection(src, dst)
        self.raw: list[tuple[int, bytes, float]] = []   # (seq, payload, time)
        self.syn_seq: int | None = None
        self.fin_seq: int | None = None


def _ip_of(link_type: int, buf: bytes):
    if link_type == LINKTYPE_ETHERNET:
        inner = dpkt.ethernet.Ethernet(buf).data
    elif link_type == LINKTYPE_LINUX_SLL:
        inner = dpkt.sll.SLL(buf).data
    elif link_type == LINKTYPE_LINUX_SLL2:
        inner = dpkt.sll2.SLL2(buf).data
    elif link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
        inner = dpkt.loopback.Loopback(buf).data
    elif link_type in _RAW_LINKTYPES:
        inner = buf
    else:
        raise PcapError(f"unsupported link type {link_type}")
    if isinstance(inner, bytes | bytearray) and inner:
        version = inner[0] >> 4
        inner = dpkt.ip.IP(inner) if version == 4 else dpkt.ip6.IP6(inner) if version == 6 \
            else None
    return inner if isinstance(inner, dpkt.ip.IP | dpkt.ip6.IP6) else None


def _addr(raw: bytes, port: int) -> str:
    if len(raw) == 4:
        return f"{'.'.join(str(b) for b in raw)}:{port}"
    return f"[{raw.hex()}]:{port}"


@contextmanager
def _packets(source: str | Path | bytes):
    """(link type, an iterator of (time as float, frame bytes)), read as the file is
    walked: a capture is streamed, never read whole."""
    if isinstance(source, bytes | bytearray | memoryview):
        fh = io.BytesIO(bytes(source))
    else:
        try:
            fh = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise PcapError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        magic = fh.read(4)
        if len(magic) < 4:
            raise PcapError("file too short to be a pcap")
        fh.seek(0)
        try:
            rd = (dpkt.pcapng.Reader(fh) if magic == b"\x0a\x0d\x0d\x0a"
                  else dpkt.pcap.Reader(fh))
        except (ValueError, dpkt.dpkt.Error, struct_error) as exc:
            raise PcapError(f"not a pcap/pcapng file ({exc})") from None
        yield rd.datalink(), rd
    finally:
        fh.close()


@dataclass
class Stats:
    """What a walk over the whole capture counts."""

    link_type: int = 0
    t0: float | None = None
    t_last: float | None = None
    packets: int = 0
    tcp_packets: int = 0
    undecodable: int = 0


def _walk(source, stats: Stats, on_tcp) -> None:
    """Call on_tcp(src, dst, tcp, t) for every TCP segment; fills stats."""
    with _packets(source) as (link_type, rd):
        stats.link_type = link_type
        if link_type not in _LINKTYPES:
            raise PcapError(f"unsupported link type {link_type} (supported: "
                            f"{', '.join(map(str, sorted(_LINKTYPES)))})")
        try:
            for ts, buf in rd:
                t = float(ts)     # nanosecond captures (a1b23c4d) give a Decimal
                stats.packets += 1
                stats.t0 = t if stats.t0 is None else stats.t0
                stats.t_last = t
                try:
                    ip = _ip_of(link_type, buf)
                    tcp = ip.data if ip is not None else None
                except (dpkt.dpkt.Error, ValueError, IndexError, struct_error):
                    stats.undecodable += 1
                    continue
                if not isinstance(tcp, dpkt.tcp.TCP):
                    continue
                stats.tcp_packets += 1
                on_tcp(_addr(ip.src, tcp.sport), _addr(ip.dst, tcp.dport), tcp, t)
        except (dpkt.dpkt.Error, ValueError, struct_error, EOFError) as exc:
            raise PcapError(f"corrupt capture after {stats.packets} packets ({exc})") from None


#: bytes of each direction's start that a scan keeps (enough to tell protocols apart)
HEAD_BYTES = 64


class _Head:
    """The first HEAD_BYTES of one direction, from out-of-order segments: O(1) memory."""

    __slots__ = ("src", "dst", "base", "buf", "have", "payload_bytes", "order")

    def __init__(self, src: str, dst: str, order: int) -> None:
        self.src, self.dst, self.order = src, dst, order
        self.base: int | None = None          # sequence number of stream byte 0
        self.buf = bytearray(HEAD_BYTES)
        self.have = 0                         # bit i: byte i is known
        self.payload_bytes = 0

    def add(self, tcp) -> None:
        if tcp.flags & dpkt.tcp.TH_SYN:
            base = (tcp.seq + 1) % _MOD32
            if base != self.base:
                self.base, self.have = base, 0
        payload = tcp.data
        if not payload:
            return
        self.payload_bytes += len(payload)
        if self.base is None:
            self.base = tcp.seq
        rel = (tcp.seq - self.base) % _MOD32
        if rel >= HEAD_BYTES:
            return
        n = min(len(payload), HEAD_BYTES - rel)
        self.buf[rel:rel + n] = payload[:n]
        self.have |= ((1 << n) - 1) << rel

    @property
    def head(self) -> bytes:
        """The known prefix (up to the first byte not yet seen)."""
        n = (~self.have & (self.have + 1)).bit_length() - 1
        return bytes(self.buf[:n])


@dataclass
class ScannedConnection:
    key: frozenset
    a: _Head
    b: _Head


@dataclass
class Scan:
    stats: Stats
    connections: list[ScannedConnection]
    untracked: int = 0          # connections past MAX_SCANNED_CONNECTIONS, not examined


#: a scan examines this many TCP connections (about 0.5 KB each), in capture order
MAX_SCANNED_CONNECTIONS = 100_000


def scan(source: str | Path | bytes, max_connections: int = MAX_SCANNED_CONNECTIONS) -> Scan:
    """One pass over a capture that keeps, per TCP connection, only each direction's
    first HEAD_BYTES bytes and byte count (for at most ``max_connections``
    connections): memory does not grow with the traffic."""
    stats = Stats()
    conns: dict[frozenset, ScannedConnection] = {}
    untracked: set[frozenset] = set()
    over = [0]

    def on_tcp(src: str, dst: str, tcp, t: float) -> None:
        key = frozenset((src, dst))
        c = conns.get(key)
        if c is None:
            if len(conns) >= max_connections:
                if len(untracked) < max_connections:
                    untracked.add(key)
                else:
                    over[0] += 1        # a bound on the bound: counted per packet
                return
            a = _Head(src, dst, len(conns))
            c = conns[key] = ScannedConnection(key, a, _Head(dst, src, len(conns)))
        (c.a if c.a.src == src else c.b).add(tcp)

    _walk(source, stats, on_tcp)
    return Scan(stats, list(conns.values()), len(untracked) + over[0])


def read_pcap(source: str | Path | bytes, only: set[frozenset] | None = None) -> PcapCapture:
    """Parse a capture and reassemble its TCP connections (only those whose
    frozenset((src, dst)) key is in ``only``, when given: the others cost nothing)."""
    conns: dict[frozenset, dict[str, _DirState]] = {}
    order: list[frozenset] = []
    initiators: dict[frozenset, str] = {}
    stats = Stats()

    def on_tcp(src: str, dst: str, tcp, t: float) -> None:
        key = frozenset((src, dst))
        if only is not None and key not in only:
            return
        if key not in conns:
            conns[key] = {}
            order.append(key)
        st = conns[key].setdefault(src, _DirState(src, dst))
        _add_segment(st, tcp, t)
        if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
            initiators.setdefault(key, src)

    _walk(source, stats, on_tcp)
    out = []
    for key in order:
        dirs = conns[key]
        a_src, b_src = sorted(key, key=lambda s: (s != initiators.get(key), s))
        a = dirs.get(a_src) or _DirState(a_src, b_src)
        b = dirs.get(b_src) or _DirState(b_src, a_src)
        out.append(TcpConnection(_finish(a), _finish(b), initiators.get(key)))
    return PcapCapture(stats.link_type, stats.t0, stats.packets, stats.tcp_packets,
                       stats.undecodable, out)


def _add_segment(st: _DirState, tcp, ts: float) -> None:
    d = st.d
    d.packets += 1
    d.last_time = ts
    flags = tcp.flags
    if flags & dpkt.tcp.TH_SYN:
        st.syn_seq = tcp.seq
        d.syn_time = ts if d.syn_time is None else d.syn_time
    payload = bytes(tcp.data)
    if payload:
        st.raw.append((tcp.seq, payload, ts))
    if flags & dpkt.tcp.TH_FIN and d.fin_time is None:
        d.fin_time = ts
        st.fin_seq = (tcp.seq + len(payload)) % _MOD32
    if flags & dpkt.tcp.TH_RST and d.rst_time is None:
        d.rst_time = ts


def _unwrap(seq: int, base: int, near: int) -> int:
    rel = (seq - base) % _MOD32
    cand = (near - near % _MOD32) + rel
    if cand - near > _MOD32 // 2:
        cand -= _MOD32
    elif near - cand > _MOD32 // 2:
        cand += _MOD32
    return cand


def _finish(st: _DirState) -> TcpDirection:
    d = st.d
    if st.syn_seq is not None:
        base = (st.syn_seq + 1) % _MOD32
    elif st.raw:
        first = st.raw[0][0]
        base = min((s for s, _, _ in st.raw), key=lambda s: (s - first + _MOD32 // 2) % _MOD32)
    else:
        base = 0
    covered: list[list[int]] = []      # sorted disjoint [start, end)
    pieces: list[tuple[int, bytes, float]] = []
    near = 0
    for seq, payload, ts in st.raw:
        start = _unwrap(seq, base, near)
        end = start + len(payload)
        near = max(near, end)
        d.segments += 1
        if start < 0:   # data before the SYN's sequence: ignore the prefix
            payload, start = payload[-start:], 0
            if not payload:
                continue
        new = _subtract(covered, start, end)
        if sum(e - s for s, e in new) != end - start:
            d.retransmitted += 1
        for s, e in new:
            pieces.append((s, payload[s - start:e - start], ts))
            _cover(covered, s, e)
    pieces.sort(key=lambda p: p[0])
    chunks, expected = [], 0
    for s, data, ts in pieces:
        if s > expected:
            d.gaps.append((expected, s - expected))
        expected = s + len(data)
        if not d.gaps:
            chunks.append(data)
            d.offsets.append((s, ts))
        else:
            d.bytes_after_gap += len(data)
    d.data = b"".join(chunks)
    if st.fin_seq is not None:
        d.fin_offset = _unwrap(st.fin_seq, base, near)
        if d.fin_offset > expected and not d.gaps:
            d.gaps.append((expected, d.fin_offset - expected))
    return d


def _subtract(covered: list[list[int]], s: int, e: int) -> list[tuple[int, int]]:
    out = []
    i = bisect.bisect_right(covered, [s, float("inf")]) - 1
    i = max(i, 0)
    cur = s
    while i < len(covered) and covered[i][0] < e:
        cs, ce = covered[i]
        if ce > cur:
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
        i += 1
    if cur < e:
        out.append((cur, e))
    return out


def _cover(covered: list[list[int]], s: int, e: int) -> None:
    i = bisect.bisect_left(covered, [s, s])
    if i > 0 and covered[i - 1][1] >= s:
        i -= 1
        s = covered[i][0]
    j = i
    while j < len(covered) and covered[j][0] <= e:
        e = max(e, covered[j][1])
        j += 1
    covered[i:j] = [[s, e]]
