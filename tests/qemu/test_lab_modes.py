"""`colo compare-modes --real` on the lab's real QEMU 7.2 pair, short phases
(about 60 s in all): the hybrid phase checkpoints on colo-compare's mismatches
only, the periodic phase on its timer only, and COLO adds to the client's round
trip against the no-COLO baseline measured in the same run.  Skips as
tests/qemu/test_lab.py does."""
from __future__ import annotations

import asyncio
import json

import pytest

from colo_tui.lab import LabError
from colo_tui.lab.modes import session
from tests.qemu.test_lab import pytestmark as LAB_MARKS  # noqa: N812 - the same skips

pytestmark = LAB_MARKS


def test_compare_modes_on_real_qemu(tmp_path):
    from colo_tui.lab.netns import unavailable
    net = "user" if unavailable() else "tap"
    try:
        rep = asyncio.run(asyncio.wait_for(
            session(tmp_path, seed=2, seconds=8, periodic_ms=1000, probe_every_s=2.0,
                    baseline_s=2.0, net=net), 240))
    except (TimeoutError, LabError) as exc:
        pytest.fail(str(exc))
    print(json.dumps({k: rep[k] for k in ("hybrid", "periodic", "baseline")}, indent=1))
    hyb, per, base = rep["hybrid"], rep["periodic"], rep["baseline"]
    assert rep["primary_failover"]["colo"]["mode"] == "none", rep["primary_failover"]
    assert base["echo_requests"] > 0 and base["echo_error"] is None, base
    # periodic: the timer's checkpoints (1 s: about 60 a minute).  7.2's colo-compare
    # has no periodic mode: it still asks for a checkpoint when the guests' TCP
    # output differs, which a live secondary now and then does even for echo (a CI
    # run: 1 of 9, on a packet real QEMU called no-secondary and the model a
    # mismatch).  Most checkpoints are the timer's.  A secondary whose Linux died
    # answers nothing, and colo-compare's 3 s timeout then asks for them itself.
    secondary_answers = (per.get("secondary_guest_panics_by_end", 0) == 0
                         and (per.get("compare_hold_ms_median") or 0) < 100)
    if secondary_answers:
        assert per["verdicts"].get("match", 0) > 0, per
        assert per["forced_checkpoints"] <= per["checkpoints"] // 3, per
    else:
        print("periodic phase with a silent secondary:", per)
    # the timer's own rate (a CI run: 10 checkpoints in 8.2 s, 2 of them forced: 73/min
    # in all, 59/min from the timer)
    timer_per_min = (per["checkpoints"] - per["forced_checkpoints"]) * 60 / per["seconds"]
    assert 35 <= timer_per_min <= 70, per
    # hybrid: every checkpoint came early (60 s timer): the one setting the delay
    # starts, then one per colo-compare inconsistency (a mismatch, or a primary packet
    # whose secondary copy did not come in time: no-secondary)
    assert hyb["checkpoints"] >= 1 and hyb["forced_checkpoints"] == hyb["checkpoints"], hyb
    if hyb["secondary_guest_panics_by_end"] == 0:
        assert hyb["verdicts"].get("match", 0) > 0, hyb
        explained = 1 + hyb["mismatches"] + hyb["verdicts"].get("no-secondary", 0)
        assert hyb["checkpoints"] <= explained, hyb
        # the guests' output differs now and then (about every run on an idle
        # machine); with two busy loops beside it, one run in 8 s had none: said,
        # not asserted
        if not hyb["mismatches"]:
            print("hybrid phase without a mismatch:", hyb)
        # the simulator's colo-compare against real QEMU's, packet by packet.  Loaded
        # CI runs once differed on up to 34 % (937 of 6,850; 2,478 of 7,174): the
        # replay flushed at 'vmstate-send' where 7.2 flushes after
        # 'vmstate-received', and kept TCP retransmissions 7.2 releases at once; one
        # such packet held its connection's queue and every later packet differed
        # (docs/lab-modes.md).  Fixed, loaded runs here differ on 0 packets.  What
        # is left is the relay's view: it may log a compare-out colo-compare wrote
        # before it saw a secondary packet after that packet, a few packets per
        # checkpoint.  5 % allows those with room (a hybrid phase checkpoints at
        # every mismatch); a queue blocked as before held hundreds of packets (789
        # of 3,597 in one run, 22 %).
        agree = hyb["model_agreement"]
        print("model vs real colo-compare:", agree.get("counts"), agree["differ_total"])
        assert agree["differ_total"] <= 0.05 * max(agree["packets"], 1), agree
    assert hyb["rtt_ms_median"] > base["rtt_ms_median"], (hyb, base)
