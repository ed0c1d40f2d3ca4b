"""The secondary reads nothing while it loads a checkpoint (7.2's
colo_incoming_process_checkpoint runs with vmstate_loading set; the incoming
thread reads the channel again only after the load): bytes that arrive during
the load wait, and a failover requested during the load runs when it ends."""
from __future__ import annotations

import pytest

from colo_tui.session.control import Controller
from protocol.sim.config import SimConfig


def _run(*faults: str) -> Controller:
    c = Controller(SimConfig(seed=1, guest="null", load_ms=50, checkpoints=4,
                             faults=list(faults)))
    c.run()
    return c


def test_bytes_that_arrive_during_the_load_are_read_after_it():
    """A duplicated vmstate-size lands while checkpoint 2 loads: the secondary
    finishes the load and says vmstate-loaded first, then reads the stray bytes
    and fails on them (it used to fail mid-load, checkpoint 2 never loaded)."""
    c = _run("duplicate@vmstate-size#2")
    s = c.status()["secondary"]
    assert s["state"] == "ERROR" and s["checkpoint"] == 2, s
    assert "Invalid message" in s["error"]
    assert [w["msg"] for w in c.wire()][-1] == "vmstate-loaded"


@pytest.mark.parametrize("stray", [(), ("duplicate@vmstate-size#2",)])
def test_a_failover_during_the_load_runs_when_the_load_ends(stray):
    """x-colo-lost-heartbeat during the load is deferred (relaunch) and runs once
    the load is done, before anything else is read: with stray bytes waiting too
    it used to leave the secondary in ERROR with its failover stuck in relaunch."""
    c = _run(*stray, "heartbeat-secondary@load#2")
    s = c.status()["secondary"]
    assert s["state"] == "DONE" and s["failover_state"] == "completed", s
    assert s["colo_status"] == {"mode": "none", "last-mode": "secondary",
                                "reason": "request"}
    assert not s["error"]
