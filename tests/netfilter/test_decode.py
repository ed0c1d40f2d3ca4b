"""QEMU's net-filter framing (protocol/net/netfilter.py), the packet headers
colo-compare reads (protocol/net/netpacket.py), its verdicts (protocol/net/netcompare.py)
and the compare-channel faults of the fault grammar."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import faults
from protocol.errors import FaultSpecError, LimitError
from protocol.net import netcompare, netfilter, netpacket
from tests.netfilter import _pkt

packets = st.lists(st.binary(max_size=300), max_size=12)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@settings(max_examples=150, deadline=None)
@given(packets, st.lists(st.integers(0, 10_000), max_size=20), st.booleans(),
       st.integers(0, 20))
def test_frames_come_back_whole_and_in_order_from_any_chunking(pkts, cuts, vnet, hdr):
    vnet_len = hdr if vnet else None
    wire = b"".join(netfilter.encode(p, vnet_len) for p in pkts)
    dec = netfilter.FrameDecoder(vnet_hdr=vnet)
    got = [f for c in _chunks(wire, cuts) for f in dec.feed(c)]
    assert [f.packet for f in got] == pkts
    assert all(f.vnet_hdr_len == vnet_len for f in got)
    assert dec.pending == 0 and dec.consumed == len(wire)
    offsets = [f.offset for f in got]
    assert offsets == [sum(f.wire_size for f in got[:i]) for i in range(len(got))]


def test_the_wire_layout_is_qemus_filter_send():
    # be32 size, be32 vnet_hdr_len (vnet_hdr_support=on only), then the packet
    assert netfilter.encode(b"abc") == b"\0\0\0\x03abc"
    assert netfilter.encode(b"abcdefghijkl", 10) == b"\0\0\0\x0c\0\0\0\x0aabcdefghijkl"
    f, = netfilter.FrameDecoder(vnet_hdr=True).feed(b"\0\0\0\x0c\0\0\0\x0aabcdefghijkl")
    assert f.ethernet == b"kl" and f.vnet_hdr_len == 10


def test_an_oversized_frame_ends_the_stream_as_qemu_does():
    dec = netfilter.FrameDecoder()
    assert dec.feed(netfilter.encode(b"x" * 100)) != []
    big = struct.pack(">I", netfilter.MAX_PACKET + 1)
    with pytest.raises(LimitError, match="offset 104 .*69633 bytes.*oversized"):
        dec.feed(big)
    with pytest.raises(LimitError):     # dead afterwards, like QEMU's reader
        dec.feed(netfilter.encode(b"y"))
    # the largest packet QEMU takes is accepted
    ok = netfilter.FrameDecoder().feed(netfilter.encode(b"z" * netfilter.MAX_PACKET))
    assert len(ok[0].packet) == netfilter.MAX_PACKET


def test_a_partial_frame_waits_for_its_bytes():
    wire = netfilter.encode(b"hello")
    dec = netfilter.FrameDecoder()
    assert dec.feed(wire[:6]) == [] and dec.pending == 6
    assert [f.packet for f in dec.feed(wire[6:])] == [b"hello"]


def test_tcp_headers_flow_sequence_flags_and_payload():
    frame = _pkt.tcp(seq=0xFFFFFFF0, ack=77, flags=0x18, payload=b"hi\n",
                     options=b"\x01\x01\x08\x0a" + b"\0" * 8, pad=6)
    info = netpacket.parse(frame)
    assert info.kind == "tcp" and info.flow == "10.0.2.15:7>10.0.2.2:40000"
    assert (info.seq, info.ack, info.flags) == (0xFFFFFFF0, 77, "PA")
    # options skipped, Ethernet padding not counted as payload
    assert info.payload_len == 3 and netpacket.payload(frame, info) == b"hi\n"
    assert "seq=4294967280" in info.summary()
    syn = netpacket.parse(_pkt.tcp(flags=0x12))
    assert syn.flags == "SA" and syn.payload_len == 0


def test_other_packets_are_named_not_raised_on():
    assert netpacket.parse(_pkt.arp()).as_dict() == {"proto": "arp", "len": 42,
                                                     "flow": "10.0.2.2>10.0.2.15"}
    u = netpacket.parse(_pkt.udp(payload=b"abcd"))
    assert u.kind == "udp" and u.payload_len == 4 and u.flow.endswith(":40000")
    assert netpacket.parse(b"\0" * 5).kind == "short"
    v6 = _pkt.MAC_C + _pkt.MAC_P + b"\x86\xdd" + b"\0" * 40
    assert netpacket.parse(v6).kind == "ipv6"
    bad_ihl = bytearray(_pkt.tcp(payload=b"x"))
    bad_ihl[14] = 0x42
    assert netpacket.parse(bytes(bad_ihl)).note == "bad IPv4 header length"


@given(st.binary(max_size=200))
def test_any_bytes_parse_without_error(data):
    info = netpacket.parse(data)
    assert 0 <= info.payload_offset <= max(len(data), info.payload_offset)
    assert len(netpacket.payload(data, info)) <= info.payload_len


@given(st.binary(min_size=1, max_size=60), st.integers(1, 255))
def test_corrupt_flips_only_the_last_payload_byte(payload, xor):
    frame = _pkt.tcp(payload=payload, pad=4)
    info = netpacket.parse(frame)
    bad = netpacket.corrupt(frame, info, xor)
    diff = [i for i in range(len(frame)) if frame[i] != bad[i]]
    assert diff == [info.payload_offset + len(payload) - 1]
    assert netpacket.parse(bad).seq == info.seq


def _dp(ch, n, t, payload, seq=100, flow="a:7>b:9"):
    return netcompare.DataPacket(ch, n, t, flow, seq, payload)


def test_verdicts_match_mismatch_and_missing_partner():
    P, S, OUT = netcompare.PRIMARY_IN, netcompare.COMPARE_IN, netcompare.COMPARE_OUT
    pk = [_dp(P, 1, 1.0, b"same"), _dp(S, 1, 1.01, b"same"), _dp(OUT, 1, 1.011, b"same"),
          # a mismatch: released after checkpoint 2 (at 2.5)
          _dp(P, 2, 2.0, b"AAAA", 104), _dp(S, 2, 2.1, b"AAAB", 104),
          _dp(OUT, 2, 2.6, b"AAAA", 104),
          # no partner: released after the timeout and checkpoint 3 (at 5.2)
          _dp(P, 3, 2.65, b"zz", 108), _dp(OUT, 3, 5.3, b"zz", 108),
          # a mismatch never released before the capture ended
          _dp(P, 4, 6.0, b"q", 110), _dp(S, 4, 6.0, b"r", 110)]
    vs = netcompare.verdicts(pk, checkpoints=[0.5, 2.5, 5.2])
    assert [v.verdict for v in vs] == ["match", "mismatch", "no-secondary", "mismatch"]
    assert [v.checkpoint for v in vs] == [None, 2, 3, None]
    assert vs[1].first_difference == 3 and vs[1].held_ms == 600.0
    assert vs[3].out_n is None and vs[3].held_ms is None
    assert netcompare.summary(vs) == {"verdicts": {"match": 1, "mismatch": 2,
                                                   "no-secondary": 1},
                                      "forced_checkpoints": [2, 3]}


def test_a_match_released_around_a_checkpoint_forced_nothing():
    P, S, OUT = netcompare.PRIMARY_IN, netcompare.COMPARE_IN, netcompare.COMPARE_OUT
    vs = netcompare.verdicts([_dp(P, 1, 1.0, b"x"), _dp(S, 1, 3.0, b"x"),
                              _dp(OUT, 1, 3.0, b"x")], checkpoints=[2.0])
    assert vs[0].verdict == "match" and not vs[0].forced


def test_a_mismatch_with_no_checkpoint_before_its_release_forced_none():
    P, S, OUT = netcompare.PRIMARY_IN, netcompare.COMPARE_IN, netcompare.COMPARE_OUT
    vs = netcompare.verdicts([_dp(P, 1, 1.0, b"x"), _dp(S, 1, 1.1, b"y"),
                              _dp(OUT, 1, 1.2, b"x")], checkpoints=[0.9, 1.3])
    assert vs[0].verdict == "mismatch" and vs[0].checkpoint is None


def test_compare_channel_faults_parse_only_for_the_lab():
    f = faults.parse("corrupt@compare-in#20", channels=True)
    assert (f.kind, f.point, f.checkpoint) == ("corrupt", "compare-in", 20)
    assert faults.parse("delay=250@compare-out", channels=True).arg == 250
    with pytest.raises(FaultSpecError, match="only `colo lab`"):
        faults.parse("drop@compare-in#3")
    with pytest.raises(FaultSpecError, match="drop, delay, corrupt, duplicate"):
        faults.parse("truncate@mirror", channels=True)
    with pytest.raises(FaultSpecError, match="packets count from 1"):
        faults.parse("drop@primary-in#0", channels=True)
    # the control-message points still parse everywhere
    assert faults.parse("drop@checkpoint-request#2", channels=True).point == \
        "checkpoint-request"


def test_a_secondary_packet_after_the_release_was_never_compared():
    """A delayed secondary packet: the primary's left on the timeout's checkpoint
    first; its retransmission is then matched with the late secondary copy."""
    P, S, OUT = netcompare.PRIMARY_IN, netcompare.COMPARE_IN, netcompare.COMPARE_OUT
    vs = netcompare.verdicts([_dp(P, 1, 1.0, b"x"), _dp(OUT, 1, 4.1, b"x"),
                              _dp(P, 2, 4.5, b"x"), _dp(S, 1, 5.0, b"x"),
                              _dp(OUT, 2, 5.0, b"x")], checkpoints=[4.0])
    assert [(v.verdict, v.checkpoint, v.retransmit) for v in vs] == [
        ("no-secondary", 1, False), ("match", None, True)]
    assert vs[1].as_dict()["retransmit"] is True and vs[1].secondary_n == 1
