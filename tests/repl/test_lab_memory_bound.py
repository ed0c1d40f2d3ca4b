"""`colo repl --lab` / the lab TUI left open for a day: besides the session's events
(an EventWindow), the lab feed kept every QMP event of both QEMUs in the pair's lists
and the time of every checkpoint (for colo-compare's verdicts).  Both are bounded now,
and what the session shows does not change: every QMP event still comes through once,
and a mismatch still names the checkpoint it forced."""
from __future__ import annotations

from types import SimpleNamespace

from colo_tui.lab import feed as lab_feed
from colo_tui.lab.feed import LabFeed, LabSettings
from protocol.net import netcompare as nc
from protocol.sim.config import SimConfig


def _feed() -> LabFeed:
    return LabFeed(SimConfig(), LabSettings())


def _drain(feed) -> list:
    out = []
    while not feed.q.empty():
        out += feed.q.get_nowait().events
    return out


def test_the_pair_s_qmp_events_go_once_the_session_has_them():
    feed = _feed()
    sides = {s: SimpleNamespace(events=[]) for s in ("primary", "secondary")}
    feed.pair = SimpleNamespace(**sides)
    shown = 0
    for i in range(5 * lab_feed.QMP_TAKEN_MAX // 100):     # 100 events a tick, both sides
        for side in sides.values():
            side.events += [{"event": "STOP" if (i + k) % 2 else "RESUME", "data": {},
                             "t": 0.0, "wall": 0.0} for k in range(50)]
        feed._take_qmp_events()
        shown += len(_drain(feed))
        assert all(len(s.events) <= lab_feed.QMP_TAKEN_MAX + 50 for s in sides.values())
    assert shown == 2 * 50 * (5 * lab_feed.QMP_TAKEN_MAX // 100)   # each one, once


def test_old_checkpoint_times_go_and_a_mismatch_still_names_its_checkpoint():
    feed = _feed()
    n = 3 * lab_feed.MAX_CHECKPOINT_TIMES
    feed._cps = [(float(i), i + 1) for i in range(n)]       # checkpoint i+1 at time i
    t = n - 10.5
    flow = "10.0.2.15:7>10.0.2.2:40000"
    feed._data.extend([nc.DataPacket(nc.PRIMARY_IN, 1, t, flow, 100, b"abc"),
                       nc.DataPacket(nc.COMPARE_IN, 1, t + 0.1, flow, 100, b"abd"),
                       nc.DataPacket(nc.COMPARE_OUT, 1, t + 1.0, flow, 100, b"abc")])
    feed._judge()
    assert len(feed._cps) <= 20                            # older than every packet kept
    verdicts = [e for e in _drain(feed) if e.kind == "verdict"]
    assert [(v.verdict, v.forced_checkpoint) for v in verdicts] == [("mismatch", n - 9)]
