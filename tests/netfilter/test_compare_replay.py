"""The simulator's colo-compare against real colo-compare's verdicts
(protocol/sim/compare_replay.py; docs/lab-modes.md): synthetic sequences with a
known answer, a property over random ones, and a packet sequence the lab's
relay recorded from real QEMU 7.2 (tests/netfilter/data/lab-compare.jsonl)."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.net import netcompare as nc
from protocol.sim.compare_replay import agreement, model_verdicts

DATA = Path(__file__).parent / "data" / "lab-compare.jsonl"
FLOW = "10.0.2.15:7->10.0.2.2:40000"


def pk(ch, n, t, seq, payload, flow=FLOW):
    return nc.DataPacket(ch, n, t, flow, seq, payload)


def test_match_mismatch_and_no_secondary_agree_with_real_verdicts():
    cps = [2.0]
    packets = [
        pk(nc.PRIMARY_IN, 1, 0.100, 1000, b"hello\n"),       # matched
        pk(nc.COMPARE_IN, 1, 0.101, 1000, b"hello\n"),
        pk(nc.COMPARE_OUT, 1, 0.102, 1000, b"hello\n"),
        pk(nc.PRIMARY_IN, 2, 0.200, 1006, b"aaaa\n"),        # a mismatch, checkpoint 1
        pk(nc.COMPARE_IN, 2, 0.201, 1006, b"bbbb\n"),
        pk(nc.COMPARE_OUT, 2, 2.001, 1006, b"aaaa\n"),
    ]
    other = "10.0.2.15:8->10.0.2.2:40001"
    packets += [pk(nc.PRIMARY_IN, 3, 0.3, 5, b"lonely", other),   # never a partner
                pk(nc.COMPARE_OUT, 3, 2.002, 5, b"lonely", other)]
    model = {v.primary_n: v.verdict for v in model_verdicts(packets, cps)}
    assert model == {1: "match", 2: "mismatch", 3: "no-secondary"}
    a = agreement(packets, cps)
    assert a["packets"] == 3 and a["same"] == 3 and a["differ"] == [], a


def test_a_mismatch_is_seen_whichever_side_comes_first():
    for ts in ((0.1, 0.2), (0.2, 0.1)):
        packets = [pk(nc.PRIMARY_IN, 1, ts[0], 7, b"x1"), pk(nc.COMPARE_IN, 1, ts[1], 7, b"y1"),
                   pk(nc.COMPARE_OUT, 1, 1.0, 7, b"x1")]
        assert [v.verdict for v in model_verdicts(packets, [0.5])] == ["mismatch"]


def test_the_model_pairs_by_payload_where_qemu_pairs_by_sequence_number():
    """The documented difference: two equal payloads at different sequence
    numbers, crossing.  QEMU (colo_mark_tcp_pkt) compares seq 10 with seq 10 and
    finds them different; the model releases each primary packet on the first
    queued secondary packet with the same bytes."""
    packets = [pk(nc.PRIMARY_IN, 1, 0.1, 10, b"A"), pk(nc.PRIMARY_IN, 2, 0.11, 11, b"B"),
               pk(nc.COMPARE_IN, 1, 0.12, 10, b"B"), pk(nc.COMPARE_IN, 2, 0.13, 11, b"A"),
               pk(nc.COMPARE_OUT, 1, 1.0, 10, b"A"), pk(nc.COMPARE_OUT, 2, 1.0, 11, b"B")]
    a = agreement(packets, [0.5])
    assert {d["real"] for d in a["differ"]} == {"mismatch"}, a
    assert a["counts"]["model"].get("mismatch", 0) >= 1, a


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(1, 200)),
                min_size=1, max_size=30))
def test_in_order_traffic_gets_the_real_verdict(spec):
    """One request at a time (the echo workload): the model agrees with real
    colo-compare on every packet, whatever matches, differs or goes missing."""
    packets, cps, t, n = [], [], 0.0, 0
    for i, (has_sec, same, size) in enumerate(spec):
        n += 1
        seq = 1000 + i * 1000
        pay = bytes([i % 251]) * size
        t += 0.01
        packets.append(pk(nc.PRIMARY_IN, n, t, seq, pay))
        if has_sec:
            t += 0.001
            packets.append(pk(nc.COMPARE_IN, n, t, seq, pay if same else pay + b"!"))
        if has_sec and same:
            t += 0.001
            packets.append(pk(nc.COMPARE_OUT, n, t, seq, pay))
        else:
            t += 0.05
            cps.append(t)
            t += 0.001
            packets.append(pk(nc.COMPARE_OUT, n, t, seq, pay))
    a = agreement(packets, cps)
    assert a["same"] == a["packets"] == len(spec), a


def test_a_real_qemu_sequence_gets_the_same_verdicts():
    from colo_tui.lab.modes import load_packets
    packets, cps = load_packets(DATA)
    a = agreement(packets, cps)
    real = a["counts"]["real"]
    assert real.get("match", 0) > 50 and real.get("mismatch", 0) >= 1, a["counts"]
    assert a["differ"] == [], a["differ"][:5]


def test_a_full_primary_queue_drops_packets_and_each_still_gets_a_verdict():
    """colo_insert_packet refuses a packet once a connection's primary queue holds
    more than max_queue_size (1024): colo-compare destroys it and it never
    leaves.  With the secondary silent and no checkpoint, the model used to lose
    those packets' verdicts (a KeyError, seen on real QEMU in CI); each is now
    ``dropped``, and agrees with a real packet that never reached compare-out."""
    packets = [pk(nc.PRIMARY_IN, n, 0.001 * n, 1000 + 10 * n, b"p%d" % n)
               for n in range(1, 1101)]
    model = model_verdicts(packets, [])
    assert [v.primary_n for v in model] == list(range(1, 1101))
    counts = {}
    for v in model:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    assert counts == {"no-secondary": 1025, "dropped": 75}, counts
    assert {v.verdict for v in model if v.primary_n > 1025} == {"dropped"}
    a = agreement(packets, [])
    assert a["packets"] == 1100 and a["same"] == 1100 and a["differ"] == [], a["differ"][:3]
    # a dropped packet the real capture saw leave is a disagreement
    packets.append(pk(nc.COMPARE_OUT, 1, 2.0, 1000 + 10 * 1100, b"p1100"))
    a = agreement(packets, [])
    assert [d["primary_n"] for d in a["differ"]] == [1100], a["differ"][:3]
