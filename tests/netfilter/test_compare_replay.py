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


def _trace(path: Path, t_req: float, t_send: float, t_recv: float, t_loaded: float) -> Path:
    """The primary's -trace log of one checkpoint, as QEMU 7.2's log backend writes
    it (pid@unix-time:event ...)."""
    lines = [(t_req, "colo_send_message Send 'checkpoint-request' message"),
             (t_req + 0.001, "colo_receive_message Receive 'checkpoint-reply' message"),
             (t_send - 0.00002, "colo_vm_state_change Change 'run' => 'stop'"),
             (t_send, "colo_send_message Send 'vmstate-send' message"),
             (t_send + 0.003, "colo_send_message Send 'vmstate-size' message"),
             (t_recv, "colo_receive_message Receive 'vmstate-received' message"),
             (t_loaded, "colo_receive_message Receive 'vmstate-loaded' message"),
             (t_loaded + 0.001, "colo_vm_state_change Change 'stop' => 'run'")]
    path.write_text("".join(f"20813@{t:.6f}:{text}\n" for t, text in lines))
    return path


def _echo(n0: int, t: float, count: int, seq: int, flow: str = FLOW) -> list[nc.DataPacket]:
    """`count` echo answers sent alike by both guests, each matched at once."""
    out = []
    for i in range(count):
        pay = b"%d:echo\n" % (n0 + i)
        out += [pk(nc.PRIMARY_IN, n0 + i, t, seq, pay, flow),
                pk(nc.COMPARE_IN, n0 + i, t + 0.0003, seq, pay, flow),
                pk(nc.COMPARE_OUT, n0 + i, t + 0.0005, seq, pay, flow)]
        t += 0.002
        seq += len(pay)
    return out


def test_the_flush_is_replayed_after_vmstate_received_where_7_2_flushes(tmp_path):
    """A loaded host (CI, stop 18: 937 of 6,850 verdicts differed).  The guest's
    last echo answer before the checkpoint's stop reaches the relay 2 ms after the
    primary sent 'vmstate-send'; the secondary, stopped at checkpoint-request,
    never sends it.  QEMU 7.2 flushes colo-compare once 'vmstate-received' is in
    (colo_do_checkpoint_transaction): that packet leaves then, with no secondary.
    Replayed with the flush at 'vmstate-send' the model queued it after the
    flush, compared it with the next answer's secondary copy (a mismatch) and
    held every later packet of the connection: all of them differed.  The
    mismatch that asked for the checkpoint is still a mismatch."""
    from colo_tui.lab.modes import flush_times
    t_req, t_send, t_recv, t_loaded = 10.100, 10.110, 10.160, 10.200
    trace = _trace(tmp_path / "primary.trace.log", t_req, t_send, t_recv, t_loaded)
    assert flush_times(trace) == [t_recv], flush_times(trace)
    other = "10.0.2.15:8->10.0.2.2:40001"
    packets = _echo(1, 10.0, 40, 5000)
    packets += [pk(nc.PRIMARY_IN, 500, 10.090, 77, b"random-a", other),     # the mismatch
                pk(nc.COMPARE_IN, 500, 10.091, 77, b"random-b", other),
                pk(nc.COMPARE_OUT, 500, t_recv + 0.0002, 77, b"random-a", other)]
    late = b"41:echo\n"
    packets += [pk(nc.PRIMARY_IN, 41, t_send + 0.002, 9000, late),         # the crossing
                pk(nc.COMPARE_OUT, 41, t_recv + 0.0003, 9000, late)]
    packets += _echo(42, t_loaded + 0.005, 40, 9000 + len(late))
    real = {v.primary_n: v.verdict for v in nc.verdicts(packets, flush_times(trace))}
    assert real[41] == "no-secondary" and real[500] == "mismatch", real
    a = agreement(packets, flush_times(trace))
    assert a["packets"] == 82 and a["differ"] == [], a["differ"][:3]
    assert a["counts"]["model"] == {"match": 80, "no-secondary": 1, "mismatch": 1}, a["counts"]
    # the flush where the replay used to put it: the packet and everything after it
    stale = agreement(packets, [t_send])
    assert {d["primary_n"] for d in stale["differ"]} == {41, *range(42, 82)}, stale["differ"][:3]


def test_a_packet_logged_just_before_a_flush_is_replayed_before_it():
    """Replayed events used to be ordered on the model's millisecond clock, a
    flush first on a tie: a packet logged 0.6 ms before a flush, both rounding
    to the same millisecond, came after the flush, stayed queued and held its
    connection.  The recorded times order them now."""
    t0 = 10.0
    late = b"1:echo\n"
    packets = [pk(nc.PRIMARY_IN, 1, t0, 100, late),
               pk(nc.PRIMARY_IN, 2, t0 + 0.5006, 200, b"2:late\n"),
               pk(nc.COMPARE_IN, 1, t0 + 0.0003, 100, late),
               pk(nc.COMPARE_OUT, 1, t0 + 0.0005, 100, late),
               pk(nc.COMPARE_OUT, 2, t0 + 0.5015, 200, b"2:late\n")]
    flush = t0 + 0.5012                 # 500.6 ms and 501.2 ms both round to 501
    packets += _echo(3, t0 + 0.6, 10, 207)
    a = agreement(packets, [flush])
    assert a["counts"]["real"] == {"match": 11, "no-secondary": 1}, a["counts"]
    assert a["differ"] == [], a["differ"][:3]


def test_a_retransmission_of_compared_data_is_released_at_once():
    """A loaded host: the secondary's copy of answer 0 comes 270 ms late, the
    primary's TCP has retransmitted it by then.  7.2 matches the first copy,
    sets the connection's compare_seq to its end and releases the
    retransmission uncompared at the next secondary packet ("pri: this packet
    has compared"; the secondary's own retransmission is destroyed: "sec: ...").
    The model once kept the retransmission at the head of its queue, found
    answer 1's secondary bytes different (a mismatch) and held the connection
    until the end: every later answer differed."""
    a0, a1 = b"0:answer\n", b"1:answer\n"
    s0, s1 = 1000, 1000 + len(a0)
    packets = [pk(nc.PRIMARY_IN, 1, 10.000, s0, a0),
               pk(nc.PRIMARY_IN, 2, 10.250, s0, a0),              # the retransmission
               pk(nc.COMPARE_IN, 1, 10.270, s0, a0),
               pk(nc.COMPARE_OUT, 1, 10.2702, s0, a0),
               pk(nc.PRIMARY_IN, 3, 10.272, s1, a1),
               pk(nc.COMPARE_IN, 2, 10.283, s1, a1),
               pk(nc.COMPARE_OUT, 2, 10.2832, s0, a0),
               pk(nc.COMPARE_OUT, 3, 10.2833, s1, a1)]
    packets += _echo(4, 10.300, 30, s1 + len(a1))
    model = {v.primary_n: v for v in model_verdicts(packets, [])}
    assert model[2].verdict == "no-secondary" and model[2].compared_before, model[2]
    assert not any(v.compared_before for n, v in model.items() if n != 2)
    a = agreement(packets, [])
    assert a["counts"]["real"] == {"match": 32, "no-secondary": 1}, a["counts"]
    assert a["differ"] == [], a["differ"][:3]
    # both sides retransmit: the relay pairs the two retransmissions (a real "match"),
    # 7.2 released the primary's uncompared and destroyed the secondary's
    packets.append(pk(nc.COMPARE_IN, 99, 10.2515, s0, a0))
    a = agreement(packets, [])
    assert a["counts"]["real"] == {"match": 33}, a["counts"]
    assert a["differ"] == [], a["differ"][:3]


def test_a_retransmission_of_data_never_compared_is_still_compared():
    """compare_seq only covers data colo-compare matched: a checkpoint's flush
    sets nothing, so a retransmission of flushed data that the secondary now
    answers with other bytes is a mismatch, in 7.2 and in the model."""
    a0 = b"0:answer\n"
    packets = [pk(nc.PRIMARY_IN, 1, 10.000, 1000, a0),
               pk(nc.COMPARE_OUT, 1, 10.101, 1000, a0),          # flushed, uncompared
               pk(nc.PRIMARY_IN, 2, 10.300, 1000, a0),
               pk(nc.COMPARE_IN, 1, 10.301, 1000, b"0:other!\n"),
               pk(nc.COMPARE_OUT, 2, 10.501, 1000, a0)]
    model = {v.primary_n: v for v in model_verdicts(packets, [10.100, 10.500])}
    assert model[2].verdict == "mismatch" and not model[2].compared_before, model
    a = agreement(packets, [10.100, 10.500])
    assert a["differ"] == [], a["differ"]
