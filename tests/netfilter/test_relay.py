"""The lab's compare-channel relay (colo_tui/lab/relay.py) between two loopback
sockets standing in for QEMU's chardevs: frames pass whole, are decoded and
recorded, and the channel's faults hit the Nth data packet after arming."""
from __future__ import annotations

import asyncio
import time

from colo_tui.lab.pair import free_ports
from colo_tui.lab.relay import ChannelFaults, ChannelRelay, PacketLog
from protocol.core import faults
from protocol.net import netpacket
from protocol.net.netfilter import FrameDecoder, encode
from tests.netfilter import _pkt

TIMEOUT = 10


def _frames(n: int) -> list[bytes]:
    out = [_pkt.arp(), _pkt.tcp(flags=0x12)]          # no data: never counted for faults
    out += [_pkt.tcp(seq=1000 + 10 * i, payload=b"%09d\n" % i) for i in range(n)]
    return out


async def _through(channel: str, frames: list[bytes], specs=(), arm=True, vnet=None):
    """Send `frames` the way QEMU does on `channel`; what the far end got,
    with arrival times, and the relay's log."""
    up_port, relay_port = free_ports(2)
    log = PacketLog()
    got: list[tuple[float, bytes]] = []
    done = asyncio.Event()
    server_sends = channel in ("mirror", "primary-in")
    expected_writers: list[asyncio.StreamWriter] = []

    async def server(r, w):          # the server chardev (QEMU's listening side)
        expected_writers.append(w)
        if server_sends:
            for f in frames:
                w.write(encode(f, vnet))
            await w.drain()
            await done.wait()
        else:
            await _collect(r, got, done, vnet=vnet)
        w.close()

    srv = await asyncio.start_server(server, "127.0.0.1", up_port)
    fl = ChannelFaults([faults.parse(s, channels=True) for s in specs])
    relay = ChannelRelay(channel, relay_port, up_port, log, fl, vnet_hdr=vnet is not None)
    await relay.start()
    if arm:
        relay.arm()
    r, w = await asyncio.open_connection("127.0.0.1", relay_port)   # the client chardev
    try:
        if server_sends:
            await asyncio.wait_for(_collect(r, got, done, expect=len(frames), vnet=vnet),
                                   TIMEOUT)
        else:
            for f in frames:
                w.write(encode(f, vnet))
            await w.drain()
            w.write_eof()
            await asyncio.wait_for(done.wait(), TIMEOUT)
    finally:
        done.set()
        w.close()
        await relay.close()
        srv.close()
    return got, log, fl


async def _collect(r, got, done, expect=None, vnet=None):
    dec = FrameDecoder(vnet_hdr=vnet is not None)
    while expect is None or len(got) < expect:
        data = await r.read(65536)
        if not data:
            break
        for f in dec.feed(data):
            assert f.vnet_hdr_len == vnet
            got.append((time.monotonic(), f.packet))
    done.set()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_frames_pass_whole_and_are_recorded_both_ways_of_sending():
    frames = _frames(5)
    for channel in ("compare-in", "mirror"):
        got, log, _ = run(_through(channel, frames))
        assert [p for _, p in got] == frames
        assert [r.n for r in log.records] == list(range(1, 8))
        assert all(r.direction == ">" and r.channel == channel for r in log.records)
        kinds = [r.info.kind for r in log.records]
        assert kinds == ["arp"] + ["tcp"] * 6
        data = log.data_packets()
        assert [d.seq for d in data] == [1000 + 10 * i for i in range(5)]
        assert data[2].payload == b"000000002\n" and data[0].flow == "10.0.2.15:7>10.0.2.2:40000"


def test_faults_hit_the_nth_data_packet():
    frames = _frames(6)
    got, log, fl = run(_through("compare-in", frames,
                                ["drop@compare-in#2", "corrupt@compare-in#4",
                                 "duplicate@compare-in#5"]))
    sent = [p for _, p in got]
    data = frames[2:]
    assert sent[:2] == frames[:2]
    # exactly: #1 passes, #2 dropped, #3 passes, #4 corrupted, #5 twice, #6 passes
    assert sent[2] == data[0] and sent[3] == data[2] and sent[5] == sent[6] == data[4]
    assert sent[4] != data[3] and sent[7] == data[5] and len(sent) == 8
    assert netpacket.parse(sent[4]).seq == 1030
    diff = [i for i in range(len(data[3])) if data[3][i] != sent[4][i]]
    assert diff == [len(data[3]) - 1]        # the last payload byte, nothing else
    assert fl.fired == ["drop@compare-in#2", "corrupt@compare-in#4", "duplicate@compare-in#5"]
    ev = [r.event() for r in log.records if r.fault]
    assert [(e["fault"], e["copies_sent"], e["seq"]) for e in ev] == [
        ("drop@compare-in#2", 0, 1010), ("corrupt@compare-in#4", 1, 1030),
        ("duplicate@compare-in#5", 2, 1040)]
    # a dropped packet is not one colo-compare saw; a corrupted one carries its new bytes
    data_seen = log.data_packets()
    assert 1010 not in [d.seq for d in data_seen]
    assert next(d for d in data_seen if d.seq == 1030).payload != b"000000003\n"


def test_faults_wait_for_arming():
    frames = _frames(3)
    got, _, fl = run(_through("compare-in", frames, ["drop@compare-in#1"], arm=False))
    assert [p for _, p in got] == frames and fl.fired == []


def test_a_delay_holds_the_packet_and_those_behind_it():
    frames = _frames(4)
    got, _, _ = run(_through("compare-out", frames, ["delay=300@compare-out#2"]))
    assert [p for _, p in got] == frames             # order kept
    t = [ts for ts, _ in got]
    assert t[3] - t[2] >= 0.29                          # data #2 (frame 4) held 300 ms
    assert t[5] - t[3] < 0.29                           # the rest follow at once


def test_an_oversized_frame_is_noted_and_closes_the_channel():
    async def go():
        up_port, relay_port = free_ports(2)
        log = PacketLog()
        closed = asyncio.Event()

        async def server(r, w):
            await r.read()           # until the relay closes its side
            closed.set()
            w.close()
        srv = await asyncio.start_server(server, "127.0.0.1", up_port)
        relay = ChannelRelay("compare-in", relay_port, up_port, log)
        await relay.start()
        _, w = await asyncio.open_connection("127.0.0.1", relay_port)
        w.write(b"\x7f\xff\xff\xff")
        await w.drain()
        await asyncio.wait_for(closed.wait(), TIMEOUT)
        w.close()
        await relay.close()
        srv.close()
        return log
    log = run(go())
    err = [n for n in log.notes if n["kind"] == "relay-error"]
    assert err and "oversized" in err[0]["error"] and err[0]["channel"] == "compare-in"


def test_with_vnet_headers_the_header_passes_untouched_and_faults_hit_the_frame():
    """vnet_hdr_support=on: each packet starts with a virtio-net header of
    vnet_hdr_len bytes; the relay decodes the Ethernet frame after it."""
    hdr = bytes(range(1, 11))
    frames = [hdr + f for f in _frames(3)]
    got, log, _ = run(_through("compare-in", frames, ["corrupt@compare-in#2"], vnet=10))
    sent = [p for _, p in got]
    assert sent[:3] == frames[:3] and sent[4] == frames[4]
    assert sent[3][:10] == hdr and sent[3] != frames[3]
    assert [i for i in range(len(sent[3])) if sent[3][i] != frames[3][i]] == \
        [len(frames[3]) - 1]
    assert [r.info.kind for r in log.records] == ["arp"] + ["tcp"] * 4
    assert [d.seq for d in log.data_packets()] == [1000, 1010, 1020]


def test_free_ports_are_outside_the_ephemeral_range_and_bindable():
    """The lab's ports come from below the kernel's ephemeral range: an outgoing
    connection made before QEMU binds them can never be given one as its source."""
    import socket

    from protocol.drivers.ports import _ephemeral_range
    lo, hi = _ephemeral_range()
    ports = free_ports(13)
    assert len(set(ports)) == 13
    assert all(not lo <= p <= hi for p in ports)
    socks = []
    try:
        for p in ports:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    finally:
        for s in socks:
            s.close()
