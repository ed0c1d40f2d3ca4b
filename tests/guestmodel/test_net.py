"""filter-buffer and colo-compare (scenarios 3, 4, 25)."""
from __future__ import annotations

from protocol.guest.net import (
    PRIMARY,
    SECONDARY,
    ClientLog,
    ColoCompare,
    FilterBuffer,
    Packet,
    answer_payload,
    diverged,
    diverges,
)


def pkt(side: str, seq: int, payload: bytes, t: int = 0, conn: int = 0) -> Packet:
    return Packet(side, seq, conn, seq, payload, t)


def test_answers_are_deterministic():
    assert answer_payload(1, b"GET", 3) == answer_payload(1, b"GET", 3)
    assert answer_payload(1, b"GET", 3) != answer_payload(1, b"GET", 4)
    assert diverged(b"abc") != b"abc" and len(diverged(b"abc")) == 3
    assert not diverges(1, 5, 0.0) and diverges(1, 5, 1.0)
    rate = sum(diverges(9, i, 0.25) for i in range(2000)) / 2000
    assert 0.2 < rate < 0.3


def test_filter_buffer_holds_until_release():
    fb, log = FilterBuffer(), ClientLog()
    for i in range(3):
        assert fb.send(pkt(PRIMARY, i, b"x"), 10) == []
    assert len(fb) == 3 and len(log) == 0
    log.record(fb.release(20), 20, "filter-buffer")
    assert [r.packet.seq for r in log.released] == [0, 1, 2] and len(fb) == 0
    assert fb.release(30) == []
    fb.send(pkt(PRIMARY, 3, b"y"), 40)
    assert [p.seq for p in fb.disable(50)] == [3]
    assert fb.send(pkt(PRIMARY, 4, b"z"), 60) == [pkt(PRIMARY, 4, b"z")]   # failover
    assert log.duplicates == []


def test_compare_releases_matching_packets_and_drops_the_svm_copy():
    cmp = ColoCompare()
    assert cmp.primary_in(pkt(PRIMARY, 1, b"same"), 5) == []      # waits for the SVM
    released = cmp.secondary_in(pkt(SECONDARY, 1, b"same"), 6)
    assert [p.key for p in released] == [(PRIMARY, 1)]
    assert cmp.queued() == (0, 0) and not cmp.checkpoint_needed
    cmp.secondary_in(pkt(SECONDARY, 2, b"early"), 7)               # SVM first, also fine
    assert [p.key for p in cmp.primary_in(pkt(PRIMARY, 2, b"early"), 8)] == [(PRIMARY, 2)]


def test_compare_mismatch_keeps_both_and_asks_for_a_checkpoint():
    cmp, log = ColoCompare(), ClientLog()
    cmp.primary_in(pkt(PRIMARY, 1, b"pvm"), 5)
    assert cmp.secondary_in(pkt(SECONDARY, 1, b"svm"), 6) == []
    assert cmp.checkpoint_needed and cmp.notifications == [(6, "mismatch")]
    assert cmp.queued() == (1, 1)
    assert cmp.take_checkpoint_request() and not cmp.take_checkpoint_request()
    log.record(cmp.checkpoint(100), 100, "compare-checkpoint")      # flush PVM, drop SVM
    assert [r.packet.key for r in log.released] == [(PRIMARY, 1)]
    assert cmp.queued() == (0, 0)
    assert cmp.checkpoint(200) == []                                # never twice


def test_stale_packet_after_3000ms_at_1000ms_scans():
    cmp = ColoCompare(start_ms=0)
    cmp.primary_in(pkt(PRIMARY, 1, b"lonely", t=500), 500)         # the SVM never answers
    for now in (1000, 2000, 3000, 3400):
        assert not cmp.scan(now)
    assert cmp.next_deadline_ms() == 4000
    assert cmp.scan(4000)                                           # 3500 > 3000 at 4000
    assert cmp.notifications == [(4000, "stale")] and cmp.checkpoint_needed
    assert [p.seq for p in cmp.checkpoint(4010)] == [1]


def test_stale_scan_uses_scan_time_granularity():
    cmp = ColoCompare(start_ms=0)
    cmp.primary_in(pkt(PRIMARY, 1, b"p", t=1000), 1000)
    assert not cmp.scan(4000)          # exactly 3000 old: not "older than" yet
    assert not cmp.scan(4999)          # no scan between 4000 and 5000
    assert cmp.scan(5500)              # the 5000 scan sees 4000 > 3000


def test_queue_overflow_drops_like_qemu():
    cmp = ColoCompare()
    for i in range(1100):
        cmp.primary_in(pkt(PRIMARY, i, b"p%d" % i), 0)
    # colo_insert_packet inserts while len <= 1024, so a queue holds 1025
    assert cmp.queued() == (1025, 0)
    assert cmp.drops == {PRIMARY: 75, SECONDARY: 0} and len(cmp.dropped) == 75
    assert cmp.scan(4000)                                           # and then it goes stale
    released = cmp.checkpoint(4000)
    assert len(released) == 1025 and len({p.key for p in released}) == 1025
    other = ColoCompare()
    other.primary_in(pkt(PRIMARY, 0, b"a", conn=1), 0)
    for i in range(1030):
        other.secondary_in(pkt(SECONDARY, i, b"s", conn=2), 0)
    assert other.drops[SECONDARY] == 1030 - 1025


def test_per_connection_queues_and_close():
    cmp = ColoCompare()
    cmp.primary_in(pkt(PRIMARY, 1, b"a", conn=1), 0)
    cmp.secondary_in(pkt(SECONDARY, 1, b"a", conn=2), 0)            # other connection
    assert cmp.queued() == (1, 1)
    assert [p.seq for p in cmp.close(10)] == [1]
    assert cmp.primary_in(pkt(PRIMARY, 2, b"b"), 11)[0].seq == 2    # removed: pass through


def test_client_log_detects_double_release():
    log = ClientLog()
    p = pkt(PRIMARY, 1, b"a")
    log.record([p], 1, "x")
    log.record([p], 2, "y")
    assert len(log.duplicates) == 1 and log.answers_for(1)[0].t_ms == 1
