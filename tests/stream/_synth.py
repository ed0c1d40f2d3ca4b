"""Helpers for the stream tests: synthetic COLO sessions and pcaps."""
from __future__ import annotations

import io
import struct

import dpkt

from protocol.migration.pages import PAGE_SIZE, PageRecord
from protocol.migration.stream import (
    RamContext,
    encode_device_blob,
    encode_initial,
    encode_ram_part,
)

BLOCKS = [("pc.ram", 1 << 33), ("vga.vram", 1 << 24), ("tiny", PAGE_SIZE)]
DEVICES = [("timer", 0, 2, b"\x11" * 24), ("serial", 0, 3, b"\x7e\x00\x00\x00\x04" + b"x" * 6)]
VMDESC = {"page_size": 4096, "devices": [
    {"name": "timer", "instance_id": 0, "vmsd_name": "timer", "version": 2,
     "fields": [{"name": "a", "type": "int64", "size": 8, "array_len": 3}]},
    {"name": "serial", "instance_id": 0, "vmsd_name": "serial", "version": 3,
     "fields": [{"name": "b", "type": "buffer", "size": 11}]},
]}


def page(block: str, off: int, kind: str = "page", fill: int = 0) -> PageRecord:
    if kind == "page":
        return PageRecord(block, off, kind, bytes([off // PAGE_SIZE % 251]) * PAGE_SIZE)
    if kind == "xbzrle":
        return PageRecord(block, off, kind, b"\x01\x02\x03" * (1 + off // PAGE_SIZE % 7))
    return PageRecord(block, off, "zero", b"", fill)


def colo_session(checkpoints: list[list[PageRecord]], *, ready: bool = True,
                 lone_request: bool = False) -> tuple[bytes, bytes, RamContext]:
    """Forward and reverse byte streams of a synthetic 7.2 COLO session."""
    initial_pages = [page("pc.ram", 0), page("pc.ram", PAGE_SIZE, "zero"),
                     page("vga.vram", 0, "zero")]
    fwd, ctx = encode_initial("pc-i440fx-7.2", BLOCKS, initial_pages, DEVICES, VMDESC)
    out, rev = bytearray(fwd), bytearray(struct.pack(">I", 0) if ready else b"")
    blob = encode_device_blob(DEVICES, 3)
    for recs in checkpoints:
        out += struct.pack(">II", 1, 3) + encode_ram_part(recs, ctx)
        out += struct.pack(">IQ", 4, len(blob)) + blob
        rev += struct.pack(">III", 2, 5, 6)
    if lone_request:
        out += struct.pack(">I", 1)
    return bytes(out), bytes(rev), ctx


def make_pcap(p2s: bytes, s2p: bytes, *, linktype: int = 1, mss: int = 1400,
              shuffle: bool = False, retransmit: bool = False, fin_from: str | None = None,
              rst_from: str | None = None, t0: float = 1000.0, syn: bool = True,
              drop: int | None = None, pcapng: bool = False,
              ports: tuple[int, int] = (40000, 5555), nano: bool = False) -> bytes:
    """A pcap of one TCP connection carrying p2s (client) and s2p (server)."""
    cli, srv = (b"\x7f\x00\x00\x01", ports[0]), (b"\x7f\x00\x00\x01", ports[1])
    isn = {"c": 0xFFFFF000, "s": 12345}     # client seq wraps past 2^32
    pkts: list[tuple[float, bytes]] = []
    t = t0

    def seg(side: str, off: int, data: bytes, flags: int) -> bytes:
        a, b = (cli, srv) if side == "c" else (srv, cli)
        seq = (isn[side] + 1 + off) % (1 << 32)
        tcp = dpkt.tcp.TCP(sport=a[1], dport=b[1], seq=seq, ack=1, flags=flags, data=data)
        ip = dpkt.ip.IP(src=a[0], dst=b[0], p=6, data=tcp, ttl=64)
        ip.len = len(bytes(ip))
        if linktype == 113:
            return bytes(dpkt.sll.SLL(type=0, hrd=772, hlen=6, hdr=b"\0" * 8,
                                      ethtype=0x0800, data=ip))
        if linktype == 101:
            return bytes(ip)
        return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=0x0800,
                                            data=ip))

    if syn:
        for side, fl in (("c", dpkt.tcp.TH_SYN), ("s", dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)):
            pkts.append((t, seg(side, -1, b"", fl)))
            t += 0.001
    data_pkts = []
    for side, stream, base in (("s", s2p[:4], 0), ("c", p2s, 0), ("s", s2p[4:], 4)):
        for i in range(0, len(stream), mss):
            data_pkts.append((side, base + i, stream[i:i + mss]))
    if shuffle:
        for i in range(0, len(data_pkts) - 1, 3):
            data_pkts[i], data_pkts[i + 1] = data_pkts[i + 1], data_pkts[i]
    for k, (side, off, data) in enumerate(data_pkts):
        if k == drop:
            continue
        pkts.append((t, seg(side, off, data, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH)))
        t += 0.001
        if retransmit and k % 5 == 0:
            pkts.append((t, seg(side, off, data, dpkt.tcp.TH_ACK)))
            t += 0.001
    for who, flag in ((fin_from, dpkt.tcp.TH_FIN), (rst_from, dpkt.tcp.TH_RST)):
        if who:
            side = "c" if who == "primary" else "s"
            end = len(p2s) if side == "c" else len(s2p)
            pkts.append((t, seg(side, end, b"", flag | dpkt.tcp.TH_ACK)))
            t += 0.001
    buf = io.BytesIO()
    w = (dpkt.pcapng.Writer(buf, linktype=linktype) if pcapng
         else dpkt.pcap.Writer(buf, linktype=linktype, nano=nano))
    for ts, pkt in pkts:
        w.writepkt(pkt, ts=ts)
    return buf.getvalue()


def merge_pcaps(*raws: bytes) -> bytes:
    """One pcap (the first one's link type) with every packet of the given ones, in
    time order (ties: in the order given)."""
    pkts, link = [], None
    for k, raw in enumerate(raws):
        rd = dpkt.pcap.Reader(io.BytesIO(raw))
        link = rd.datalink() if link is None else link
        pkts += [(float(ts), k, i, buf) for i, (ts, buf) in enumerate(rd)]
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, linktype=link)
    for ts, _, _, pkt in sorted(pkts, key=lambda p: p[:3]):
        w.writepkt(pkt, ts=ts)
    return buf.getvalue()


def big_endian_pcap(raw: bytes) -> bytes:
    """The same little-endian pcap written big-endian (magic a1b2c3d4 / a1b23c4d), as a
    big-endian host's tcpdump writes it."""
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", raw[:24])))
    pos = 24
    while pos + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack("<IIII", raw[pos:pos + 16])
        out += struct.pack(">IIII", sec, frac, incl, orig) + raw[pos + 16:pos + 16 + incl]
        pos += 16 + incl
    return bytes(out)
