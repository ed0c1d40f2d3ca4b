"""Ethernet / IPv4 / TCP frames built field by field, for the decoder tests."""
from __future__ import annotations

import struct

MAC_P, MAC_C = bytes.fromhex("525400123456"), bytes.fromhex("525400abcdef")


def _ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def tcp(src="10.0.2.15", dst="10.0.2.2", sport=7, dport=40000, seq=1000, ack=5,
        flags=0x18, payload=b"", options=b"", pad=0) -> bytes:
    doff = (20 + len(options)) // 4
    th = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 64240, 0, 0)
    l4 = th + options + payload
    ih = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, 6, 0, _ip(src),
                     _ip(dst))
    return MAC_C + MAC_P + b"\x08\x00" + ih + l4 + b"\0" * pad


def udp(src="10.0.2.15", dst="10.0.2.2", sport=53, dport=40000, payload=b"") -> bytes:
    l4 = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ih = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, 17, 0, _ip(src),
                     _ip(dst))
    return MAC_C + MAC_P + b"\x08\x00" + ih + l4


def arp(spa="10.0.2.2", tpa="10.0.2.15") -> bytes:
    body = struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_C, _ip(spa), b"\0" * 6,
                       _ip(tpa))
    return b"\xff" * 6 + MAC_C + b"\x08\x06" + body
