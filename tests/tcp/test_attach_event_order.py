"""`--attach`: QMP events are stamped with their own QMP timestamps and shown in time
order.  An event that arrived during a status poll was read only after the next poll
and stamped then (up to QmpFeed.POLL_S late), so it was shown after events that
happened later (fake QMP servers on loopback; see tests/tcp/_fakeqmp.py)."""
from __future__ import annotations

import time

from colo_tui.session.live import LiveSession
from colo_tui.session.live_sources import QmpFeed
from protocol.sim.config import SimConfig
from tests.tcp._fakeqmp import FakeQmp


def _until(pred, what: str, timeout_s: float = 10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:         # polling: the feed runs in its own thread
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _events(session, kind: str, n: int, timeout_s: float = 10.0) -> list:
    """Step the session until `n` events of `kind` are in view (at most timeout_s)."""
    got: list = []
    end = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < end:
        session.wait(0.05)
        got += [e for e in session.step() if e.kind == kind]
    return got


def test_an_event_read_during_a_poll_keeps_its_own_time_and_place():
    p, s = FakeQmp(migration="colo", mode="primary"), FakeQmp(migration="colo",
                                                              mode="secondary")
    session = None
    stamps = {}
    try:
        feed = QmpFeed(SimConfig(), p.address, s.address)
        session = LiveSession(feed)
        _until(lambda: p.count("query-status") and s.count("query-status"), "a first poll")

        # the secondary's RESUME comes with its answer to a poll; the primary's STOP,
        # stamped 5 ms before that RESUME, reaches us only with its answer to the next
        # poll (a round later): it happened first, and is shown first, at its own time
        def primary_stop(fake):
            stamps["STOP"] = fake.emit("STOP", at=stamps["RESUME"] - 0.005)

        def secondary_resume(fake):
            stamps["RESUME"] = fake.emit("RESUME")
            p.before("query-status", primary_stop)

        s.before("query-status", secondary_resume)
        evs = _events(session, "vm", 2)
        assert [(e.side, e.qmp) for e in evs] == [("primary", "STOP"),
                                                  ("secondary", "RESUME")], evs
        for e in evs:
            want = (stamps[e.qmp] - feed.wall0) * 1000.0
            assert abs(e.t_ms - want) < 1.0, (e, want)
        assert [e.t_ms for e in session.events] == sorted(e.t_ms for e in session.events)
    finally:
        if session is not None:
            session.close()
        p.close()
        s.close()


def test_an_event_without_a_timestamp_is_stamped_when_it_is_read():
    p, s = FakeQmp(), FakeQmp()
    session = None
    try:
        feed = QmpFeed(SimConfig(), p.address, s.address)
        session = LiveSession(feed)
        _until(lambda: p.count("query-status"), "a first poll")
        before = feed.now_ms()
        p._send({"event": "POWERDOWN"})
        [ev] = _events(session, "qmp-event", 1)
        assert before <= ev.t_ms <= feed.now_ms()
        # and one stamped in the future (another host's clock ahead) is stamped on arrival
        p.emit("SHUTDOWN", at=time.time() + 60)
        [ev] = _events(session, "qmp-event", 1)
        assert ev.t_ms <= feed.now_ms()
    finally:
        if session is not None:
            session.close()
        p.close()
        s.close()


def test_an_operator_command_comes_before_what_it_caused():
    """x-colo-lost-heartbeat on a 7.2 primary: STOP, COLO_EXIT and RESUME come within a
    millisecond, before the reply.  The command was stamped when its reply had come, so
    it was shown after its own effects."""
    p, s = FakeQmp(migration="colo", mode="primary"), FakeQmp(migration="colo",
                                                              mode="secondary")
    session = None
    try:
        feed = QmpFeed(SimConfig(), p.address, s.address)
        session = LiveSession(feed)

        def failover(fake):
            fake.emit("STOP")
            fake.emit("COLO_EXIT", {"mode": "primary", "reason": "error"})
            fake.emit("RESUME")

        p.before("x-colo-lost-heartbeat", failover)
        feed.command("lost-heartbeat", "primary")
        assert len(_events(session, "vm", 2)) == 2
        order = [e.kind for e in session.events if e.side in ("primary", "operator")
                 and e.kind in ("qmp", "vm", "colo-exit")]
        assert order == ["qmp", "vm", "colo-exit", "vm"], order
    finally:
        if session is not None:
            session.close()
        p.close()
        s.close()
