"""colo lab: a packet comes into view as the relay logs it, in order with the proxy's
checkpoint events. Taken every 250 ms (TICK_S), a corrupted primary packet showed
after the checkpoint its mismatch had forced ('checkpoint 11 begins' at 106.157 s,
the packet at 106.277 s, the verdict 'it forced checkpoint 11'), seen on the real pair."""
from __future__ import annotations

import time
from types import SimpleNamespace

from colo_tui.lab.feed import LabFeed, LabSettings
from colo_tui.lab.relay import PacketLog, Record
from protocol.core.events import make
from protocol.net.netpacket import PacketInfo
from protocol.sim.config import SimConfig


def _kinds(feed) -> list[str]:
    out = []
    while not feed.q.empty():
        out += [ev.kind for ev in feed.q.get_nowait().events]
    return out


def test_a_packet_is_in_view_before_the_checkpoint_that_follows_it():
    feed = LabFeed(SimConfig(dialect="qemu", mode="hybrid"), LabSettings())
    feed.pair = SimpleNamespace(packets=PacketLog(), relays={})
    feed._watch_packets()
    info = PacketInfo("tcp", 60, src="10.0.2.15", dst="10.0.2.2", sport=7, dport=40000,
                      seq=1, flags="PA", payload_len=6)
    feed.pair.packets.add(Record("primary-in", 1, time.time(), info, b"hello\n"))
    feed._proxy_event(make(0.0, "primary", "checkpoint", n=1, phase="begin"))
    assert _kinds(feed) == ["packet", "checkpoint"]      # no tick in between
