"""The simulator's link: arrival times in order per direction, partitions, the wire
image and its bound, deliveries compared by value (both twins run these)."""
import pytest

from protocol.sim.link import P2S, S2P, Delivery, MemoryLink, size_of


def test_arrival_is_latency_plus_size_over_rate_in_order_per_direction():
    link = MemoryLink(latency_ms=2.0, bytes_per_ms=100.0)
    a = link.schedule(0.0, P2S, b"x" * 500, "ram", 1)
    assert a.at_ms == pytest.approx(5.0 + 2.0)
    b = link.schedule(1.0, P2S, b"y" * 100, "vmstate-size", 1)   # behind the first
    assert b.at_ms == pytest.approx(6.0 + 2.0)
    c = link.schedule(1.0, S2P, b"z" * 100, "checkpoint-reply", 1)  # the other way: free
    assert c.at_ms == pytest.approx(2.0 + 2.0)
    d = link.schedule(0.0, P2S, b"w", "x", 2, extra_delay_ms=10.0)  # a delay holds the rest
    e = link.schedule(0.0, P2S, b"v", "y", 2)
    assert d.at_ms == pytest.approx(6.01 + 10.0 + 2.0) and e.at_ms > d.at_ms


def test_a_partition_holds_every_byte_until_it_ends():
    link = MemoryLink(latency_ms=0.5, bytes_per_ms=1e6)
    link.partition(10.0, 40.0)
    link.partition(20.0, 5.0)              # a shorter one inside does not cut it short
    assert link.schedule(12.0, S2P, b"ab", "p", 3).at_ms == pytest.approx(50.0 + 2e-6 + 0.5)


def test_the_wire_image_keeps_bursts_whole_up_to_its_bound():
    link = MemoryLink()
    link.schedule(0.0, P2S, (b"ab", b"cd"), "burst", 1)
    link.schedule(0.0, S2P, b"ok", "reply", 1)
    assert bytes(link.wire[P2S]) == b"abcd" and bytes(link.wire[S2P]) == b"ok"
    link.max_wire_bytes = 6
    link.schedule(0.0, P2S, b"toolong", "x", 2)       # past the bound: not kept
    link.schedule(0.0, P2S, b"ef", "y", 2)            # still fits
    assert bytes(link.wire[P2S]) == b"abcdef"
    link.keep_wire = False
    link.schedule(0.0, P2S, b"gh", "z", 3)
    assert bytes(link.wire[P2S]) == b"abcdef"
    assert size_of((b"ab", b"cde")) == 5 and size_of(b"abc") == 3


def test_deliveries_compare_by_value_and_show_their_fields():
    a = Delivery(1.5, P2S, b"ab", "ram", 2)
    assert a == Delivery(1.5, P2S, b"ab", "ram", 2, "")
    assert a != Delivery(1.5, P2S, b"ab", "ram", 2, "dup")
    assert a != (1.5, P2S, b"ab", "ram", 2, "")
    assert repr(a) == ("Delivery(at_ms=1.5, direction='P>S', data=b'ab', point='ram', "
                       "checkpoint=2, note='')")
    with pytest.raises(TypeError):
        hash(a)
