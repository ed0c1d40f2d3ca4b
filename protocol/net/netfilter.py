"""QEMU's net-filter framing, sans-IO: what travels on the chardev sockets
between filter-mirror, filter-redirector and colo-compare.

Each packet is sent by ``filter_send`` (net/filter-mirror.c) and by
colo-compare's ``compare_chr_send`` (net/colo-compare.c) as

    be32 size | [be32 vnet_hdr_len, only with vnet_hdr_support=on] | size bytes

and read back by ``net_fill_rstate`` (net/net.c), whose states this decoder
follows: a zero size gives an empty packet, a size beyond the reader's buffer
(NET_BUFSIZE, 4096 + 65536) ends the connection ("serious error: oversized
packet received").  ``size`` counts the whole packet, the vnet header included
when there is one.  QEMU 7.2's default is vnet_hdr_support=off everywhere,
which the lab keeps.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from protocol.errors import LimitError

#: net_fill_rstate's buffer (NET_BUFSIZE in include/net/net.h)
MAX_PACKET = 4096 + 65536
_BE32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Frame:
    packet: bytes
    vnet_hdr_len: int | None = None   # None: the stream has no vnet_hdr_len words
    offset: int = 0                   # where the frame's size word starts in the stream

    @property
    def wire_size(self) -> int:
        return 4 + (0 if self.vnet_hdr_len is None else 4) + len(self.packet)

    @property
    def ethernet(self) -> bytes:
        """The Ethernet frame (the packet after its vnet header, if any)."""
        return self.packet[self.vnet_hdr_len or 0:]


def encode(packet: bytes, vnet_hdr_len: int | None = None) -> bytes:
    """One frame as filter_send writes it."""
    if len(packet) > 0xFFFFFFFF:
        raise ValueError(f"a packet of {len(packet)} bytes does not fit the size word")
    head = _BE32.pack(len(packet))
    if vnet_hdr_len is not None:
        head += _BE32.pack(vnet_hdr_len)
    return head + packet


class FrameDecoder:
    """Feed stream bytes in any chunks; get whole frames back in order.

    After a LimitError (an oversized packet) the decoder is dead, as QEMU's
    reader is: it drops the connection."""

    def __init__(self, vnet_hdr: bool = False, max_packet: int = MAX_PACKET) -> None:
        self.vnet_hdr = vnet_hdr
        self.max_packet = max_packet
        self.consumed = 0          # stream offset of the byte after the last whole frame
        self._buf = bytearray()
        self._dead: str | None = None

    @property
    def pending(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        if self._dead:
            raise LimitError(self._dead, limit="net-filter packet size")
        self._buf += data
        out: list[Frame] = []
        head = 8 if self.vnet_hdr else 4
        while len(self._buf) >= 4:
            size = _BE32.unpack_from(self._buf)[0]
            if size > self.max_packet:
                self._dead = (f"net-filter frame at stream offset {self.consumed} says "
                              f"{size} bytes, beyond QEMU's {self.max_packet}-byte buffer "
                              f"(QEMU drops the connection: 'oversized packet received')")
                raise LimitError(self._dead, limit="net-filter packet size")
            if len(self._buf) < head + size:
                break
            vnet = _BE32.unpack_from(self._buf, 4)[0] if self.vnet_hdr else None
            out.append(Frame(bytes(self._buf[head:head + size]), vnet, self.consumed))
            del self._buf[:head + size]
            self.consumed += head + size
        return out
