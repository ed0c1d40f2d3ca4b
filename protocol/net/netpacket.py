"""Ethernet / ARP / IPv4 / TCP / UDP headers, as far as colo-compare reads them
(net/colo.c parse_packet_early + fill_connection_key): the flow, TCP sequence
and acknowledgement numbers, flags and the payload.  Sans-IO; never raises on
a short or odd packet, it says what it could not read instead."""
from __future__ import annotations

import struct
from dataclasses import dataclass

ETH_P_IP, ETH_P_ARP, ETH_P_VLAN, ETH_P_IPV6 = 0x0800, 0x0806, 0x8100, 0x86DD
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
TCP_FLAGS = "FSRPAUEC"     # bit 0 … 7: FIN SYN RST PSH ACK URG ECE CWR


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def tcp_flags(bits: int) -> str:
    return "".join(c for i, c in enumerate(TCP_FLAGS) if bits & (1 << i)) or "-"


@dataclass(frozen=True, slots=True)
class PacketInfo:
    kind: str                      # "tcp", "udp", "icmp", "ip", "arp", "ipv6", "eth", "short"
    length: int
    src: str = ""
    dst: str = ""
    sport: int | None = None
    dport: int | None = None
    seq: int | None = None
    ack: int | None = None
    flags: str = ""
    payload_offset: int = 0        # in the Ethernet frame
    payload_len: int = 0
    note: str = ""

    @property
    def flow(self) -> str:
        if self.sport is None:
            return f"{self.src}>{self.dst}" if self.src else ""
        return f"{self.src}:{self.sport}>{self.dst}:{self.dport}"

    def as_dict(self) -> dict:
        d: dict = {"proto": self.kind, "len": self.length}
        if self.flow:
            d["flow"] = self.flow
        if self.kind == "tcp":
            d.update(seq=self.seq, ack=self.ack, flags=self.flags)
        if self.payload_len:
            d["payload_len"] = self.payload_len
        if self.note:
            d["note"] = self.note
        return d

    def summary(self) -> str:
        if self.kind == "tcp":
            return (f"tcp {self.flow} [{self.flags}] seq={self.seq} ack={self.ack} "
                    f"len={self.payload_len}")
        if self.kind in ("udp", "icmp", "ip"):
            return f"{self.kind} {self.flow} len={self.payload_len}"
        return f"{self.kind} {self.flow} {self.length} B".replace("  ", " ")


def parse(frame: bytes) -> PacketInfo:
    n = len(frame)
    if n < 14:
        return PacketInfo("short", n, note="shorter than an Ethernet header")
    etype, off = struct.unpack_from(">H", frame, 12)[0], 14
    if etype == ETH_P_VLAN and n >= 18:
        etype, off = struct.unpack_from(">H", frame, 16)[0], 18
    if etype == ETH_P_ARP:
        if n >= off + 28:
            return PacketInfo("arp", n, _ip(frame[off + 14:off + 18]),
                              _ip(frame[off + 24:off + 28]))
        return PacketInfo("arp", n, note="short ARP")
    if etype == ETH_P_IPV6:
        return PacketInfo("ipv6", n)
    if etype != ETH_P_IP:
        return PacketInfo("eth", n, note=f"ethertype 0x{etype:04x}")
    if n < off + 20:
        return PacketInfo("ip", n, note="short IPv4 header")
    vihl, total = frame[off], struct.unpack_from(">H", frame, off + 2)[0]
    ihl = (vihl & 0x0F) * 4
    proto = frame[off + 9]
    src, dst = _ip(frame[off + 12:off + 16]), _ip(frame[off + 16:off + 20])
    if vihl >> 4 != 4 or ihl < 20 or n < off + ihl:
        return PacketInfo("ip", n, src, dst, note="bad IPv4 header length")
    end = min(n, off + total) if total >= ihl else n     # Ethernet padding is not payload
    l4 = off + ihl
    kind = PROTO_NAMES.get(proto, "ip")
    if proto == 6 and end >= l4 + 20:
        sport, dport, seq, ack = struct.unpack_from(">HHII", frame, l4)
        doff = (frame[l4 + 12] >> 4) * 4
        bits = frame[l4 + 13]
        pay = l4 + max(20, doff)
        return PacketInfo("tcp", n, src, dst, sport, dport, seq, ack, tcp_flags(bits),
                          min(pay, end), max(0, end - pay))
    if proto == 17 and end >= l4 + 8:
        sport, dport = struct.unpack_from(">HH", frame, l4)
        return PacketInfo("udp", n, src, dst, sport, dport, payload_offset=l4 + 8,
                          payload_len=end - l4 - 8)
    return PacketInfo(kind, n, src, dst, payload_offset=l4, payload_len=max(0, end - l4),
                      note="" if kind != "tcp" else "short TCP header")


def payload(frame: bytes, info: PacketInfo) -> bytes:
    return frame[info.payload_offset:info.payload_offset + info.payload_len]


def corrupt(frame: bytes, info: PacketInfo, xor: int) -> bytes:
    """Flip bits (``xor``, 1 … 255) in the last payload byte, or in the last byte
    when there is no payload: the bytes colo-compare compares, not the headers
    that route the packet."""
    if not frame:
        return frame
    at = info.payload_offset + info.payload_len - 1 if info.payload_len else len(frame) - 1
    buf = bytearray(frame)
    buf[at] ^= (xor & 0xFF) or 1
    return bytes(buf)
