"""`--attach`: what is shown before the first step is what the peers answered, not a
made-up INIT, and the session's dialect and COLO mode are not this REPL's --dialect /
--mode.  Before, `status` right after the attach said 'vm running, machine INIT,
migration setup' (primary) and 'vm inmigrate' (secondary) whatever the processes
were doing, and 'qemu dialect, periodic mode' (the REPL's own defaults)."""
from __future__ import annotations

import time

from colo_tui.commands import handlers
from colo_tui.session.live import live_controller
from colo_tui.session.live_sources import UNKNOWN, QmpFeed, _QmpSide
from protocol.core import dialects
from protocol.sim.config import SimConfig
from tests.tcp._fakeqmp import FakeQmp


def test_the_first_status_is_what_both_sides_answered():
    # a primary paused after a failover, a secondary still in COLO: nothing a default
    # would give
    p = FakeQmp(status="paused", migration="completed")
    p.state["colo"] = {"mode": "none", "last-mode": "primary", "reason": "request"}
    s = FakeQmp(status="running", migration="colo", mode="secondary")
    c = None
    try:
        c = live_controller(QmpFeed(SimConfig(), p.address, s.address))
        st = c.status()               # no step yet
        assert st["step"] == 0
        pri, sec = st["primary"], st["secondary"]
        assert (pri["run_state"], pri["migration"]) == ("paused", "completed"), pri
        assert pri["colo_status"] == {"mode": "none", "last-mode": "primary",
                                      "reason": "request"}
        assert pri["failover_state"] == "completed"
        assert (sec["run_state"], sec["migration"]) == ("running", "colo"), sec
        assert sec["colo_status"]["mode"] == "secondary"
        assert "INIT" not in (pri["state"], sec["state"])
        # QMP tells neither the peers' dialect nor their mode
        assert (st["dialect"], st["mode"]) == ("unknown", "unknown")
        text = handlers.status(c, None)
        assert "periodic mode" not in text and "qemu dialect" not in text, text
        assert "the peers' dialect and COLO mode are not known over QMP" in text, text
        assert "primary    alive, vm paused" in text, text
        assert "secondary  alive, vm running" in text, text
    finally:
        if c is not None:
            c.session.close()
        p.close()
        s.close()


def test_a_side_not_yet_polled_is_unknown_not_init():
    st = _QmpSide("secondary").status(dialects.get("qemu"))
    assert st.run_state == st.migration == st.colo_mode == st.state == UNKNOWN
    assert st.failover_state == UNKNOWN and st.reason == UNKNOWN
    assert "INIT" not in repr(st) and "inmigrate" not in repr(st)


def test_the_secondarys_checkpoints_are_counted_too():
    """Its status said checkpoint 0 throughout; 7.2's secondary stops its VM for each
    checkpoint too (STOP at checkpoint-request, RESUME after the load)."""
    p = FakeQmp(migration="colo", mode="primary")
    s = FakeQmp(migration="colo", mode="secondary")
    c = None
    try:
        c = live_controller(QmpFeed(SimConfig(), p.address, s.address))
        for fake in (s, p, s, p):
            fake.emit("STOP")
            fake.emit("RESUME")
        end = time.monotonic() + 10
        while time.monotonic() < end and min(c.status()[side]["checkpoint"]
                                             for side in ("primary", "secondary")) < 2:
            c.step(10, wait_s=0.1)
        st = c.status()
        assert st["primary"]["checkpoint"] == 2 and st["secondary"]["checkpoint"] == 2, st
        commits = [e for e in c.session.events if e.kind == "checkpoint"]
        assert [(e.side, e.n) for e in commits] == [("primary", 1), ("primary", 2)]
    finally:
        if c is not None:
            c.session.close()
        p.close()
        s.close()


def test_the_real_secondarys_qmp_stream_counts_its_checkpoints():
    """run1's QEMU 7.2 secondary: RESUME when COLO starts (no STOP before it), STOP and
    RESUME for each of the 20 complete checkpoints, STOP, COLO_EXIT, RESUME on its
    x-colo-lost-heartbeat: 20, as the primary."""
    import json

    import pytest

    from colo_tui.session.live_sources import QmpCheckpoints
    from tests.tcp._nodes import ROOT
    path = ROOT.parent / "shared" / "qemu-colo" / "run1" / "qmp_secondary.jsonl"
    if not path.exists():
        pytest.skip("../shared/qemu-colo/run1 is not beside the repo")
    counter, asked = QmpCheckpoints(), {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        msg = rec["msg"]
        if rec["dir"] == "send":
            asked[msg.get("id")] = msg.get("execute")
        elif "event" in msg:
            counter.event(msg["event"], rec["host_time"] * 1000)
        elif asked.get(msg.get("id")) == "query-migrate":
            counter.status(msg["return"].get("status"))
    assert counter.n == 20
