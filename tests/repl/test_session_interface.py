"""The one session interface (protocol.core.session) over each implementation: the
simulator, the playback of an imported capture, and a live TCP pair."""
import dataclasses
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colo_tui.commands import execute
from colo_tui.session.control import Controller
from protocol.core.session import (
    INPUTS,
    PLAYBACK,
    SIDE_INPUTS,
    SIDES,
    SIMULATED,
    GuestReport,
    GuestView,
    Input,
    Published,
    Session,
    SessionError,
    SideStatus,
    wire_of,
)
from protocol.record import format as rf
from protocol.record.eventjson import to_json
from protocol.record.playback import Playback
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

HAPPY = ["checkpoint-ready", "checkpoint-request", "checkpoint-reply", "vmstate-send",
         "vmstate-size", "vmstate-received", "vmstate-loaded"]


def _check_reads(s) -> None:
    """What every session offers the UIs, and that it is all frozen."""
    assert isinstance(s, Session)
    for side in SIDES:
        st_ = s.side(side)
        assert isinstance(st_, SideStatus) and st_.role == side
        assert set(st_.as_dict()) >= {"state", "run_state", "colo_status", "failover_state",
                                      "checkpoint", "in_flight", "alive", "stalled"}
        assert isinstance(s.guest(side), GuestView)
    assert isinstance(s.guest_report(), GuestReport)
    assert isinstance(s.outcome(), str)
    assert all(isinstance(v, bool) for v in s.checks().values())
    with pytest.raises(TypeError):
        s.checks()["x"] = True                     # a read-only mapping


def write_imported(sim: Simulation, path) -> None:
    """`_imported(sim)` written to `path`, as `colo import` leaves it."""
    rec = _imported(sim)
    w = rf.Writer(str(path), rec.header, ["test"])
    for e in rec.events:
        w.event(e)
    w.close()


def playback_controller(tmp_path, checkpoints: int = 3) -> Controller:
    """A Controller at the end of a simulated session's playback as an imported capture."""
    sim = Simulation(SimConfig(seed=4, checkpoints=checkpoints))
    sim.run()
    path = tmp_path / "cap.colo.jsonl"
    write_imported(sim, path)
    c = Controller()
    c.load_replay(str(path), to_end=True)
    return c


def _imported(sim: Simulation) -> rf.Recording:
    """A simulated session's events as an imported capture (what `colo import` makes)."""
    head = {"format": rf.FORMAT, "version": rf.VERSION, "dialect": sim.cfg.dialect,
            "mode": sim.cfg.mode, "imported": True, "params": {}}
    return rf.Recording(head, [to_json(e) for e in sim.events
                               if e.side in SIDES and e.kind in ("send", "checkpoint")])


# ------------------------------------------------------------------ the simulator
def test_the_simulator_is_a_session():
    sim = Simulation(SimConfig(seed=3, checkpoints=2, guest="model", ram_mib=16))
    assert sim.capabilities == SIMULATED and sim.config is sim.cfg
    _check_reads(sim)
    sim.run(300)
    before = sim.side("primary")
    sim.send(Input("set-delay", value=1234))
    after = sim.side("primary")
    assert before.checkpoint_delay_ms != 1234 and after.checkpoint_delay_ms == 1234
    assert sim.guest("primary").kind == "model" and sim.guest("primary").heat
    rep = sim.guest_report()
    assert dict(rep.primary.ram.layout)["pc.ram"] == 16 << 20
    assert rep.primary.ram.digest == rep.secondary.ram.digest and rep.ram_diff == ()
    sim.send(Input("fault", value="drop@vmstate-loaded#9"))
    assert [f.spec for f in sim.armed_faults()] == ["drop@vmstate-loaded#9"]
    assert not any(f.fired for f in sim.armed_faults())
    assert all(sim.checks().values())


def test_the_controller_reads_nothing_but_the_session():
    c = Controller(SimConfig(seed=2, checkpoints=2))
    c.run()
    st_ = c.status()
    assert st_["primary"] == c.side("primary").as_dict()
    assert [w["msg"] for w in c.wire()][:7] == HAPPY
    assert c.wire() == [w.as_dict() for w in wire_of(c.events)]
    assert c.capabilities.can_step_back and not c.live


# -------------------------------------------------------------------- playback
def test_playback_is_a_session_that_refuses_inputs():
    sim = Simulation(SimConfig(seed=4, checkpoints=3))
    sim.run()
    pb = Playback(_imported(sim))
    assert pb.capabilities == PLAYBACK
    _check_reads(pb)
    pb.run()
    assert pb.finished
    assert pb.side("primary").checkpoint == sim.side("primary").checkpoint == 3
    assert pb.side("secondary").checkpoint == 3
    assert [w.msg for w in wire_of(pb.events)][:7] == HAPPY
    assert pb.guest("primary") == GuestView() and pb.guest("primary").summary() == {}
    with pytest.raises(SessionError, match="imported real session"):
        pb.send(Input("checkpoint"))
    with pytest.raises(SessionError):
        pb.check_fault(None)


def test_a_controller_over_a_playback_steps_back_by_rereading(tmp_path):
    c = playback_controller(tmp_path)
    assert c.playback and c.finished
    end = c.steps
    assert c.back(5) == end - 5
    res = execute(c, "heartbeat secondary")
    assert not res.ok and "imported real session" in res.text


# ------------------------------------------------------------------- live: TCP pair
def _pump(c, until, rounds=100) -> bool:
    for _ in range(rounds):                  # bounded: each round waits at most 0.2 s
        c.step(500, wait_s=0.2)
        if until(c):
            return True
    return False


def test_a_live_tcp_pair_is_a_session_fed_by_snapshots():
    from colo_tui.session.live import live_controller
    from colo_tui.session.live_sources import TcpPair
    c = live_controller(TcpPair(SimConfig(checkpoint_delay_ms=50, guest="model",
                                          ram_mib=16)))
    s = c.session
    try:
        assert s.capabilities.is_live and not s.capabilities.can_step_back
        _check_reads(s)
        assert _pump(c, lambda c: c.side("primary").checkpoint >= 2)
        first = s.side("primary")
        # what the UI holds is a value: later snapshots replace it, never change it
        assert _pump(c, lambda c: c.side("primary").checkpoint > first.checkpoint)
        assert first.checkpoint < s.side("primary").checkpoint
        assert [w["msg"] for w in c.wire()][:7] == HAPPY
        assert s.guest("primary").kind == "model"
        rep = c.guest_report()                   # built on the source's own thread
        assert dict(rep.primary.ram.layout)["pc.ram"] == 16 << 20
        with pytest.raises(SessionError, match="cannot step back"):
            c.back(1)
        with pytest.raises(SessionError, match="colo proxy --fault"):
            c.add_fault("drop@ram")
        with pytest.raises(SessionError, match="command line"):
            c.restart(seed=3)
        c.kill("secondary")
        assert _pump(c, lambda c: not c.side("secondary").alive)
    finally:
        c.close()
    assert not s.source._thread.is_alive()


def test_a_live_source_shares_nothing_with_the_ui_thread():
    """Every item a live source queues is a frozen value built on its thread: events
    and snapshots, never an endpoint or a guest."""
    from colo_tui.session.live import live_controller
    from colo_tui.session.live_sources import TcpPair
    src = TcpPair(SimConfig(checkpoint_delay_ms=50))
    seen: list = []
    original = src.snapshot

    def spy(events, *, fresh=False):            # runs on the source's thread
        item = original(events, fresh=fresh)
        seen.append(item)
        return item
    src.snapshot = spy
    c = live_controller(src)
    try:
        assert _pump(c, lambda c: c.side("secondary").checkpoint >= 1)
    finally:
        c.close()
    items = list(seen)
    assert len(items) > 3 and all(isinstance(i, Published) for i in items)
    for item in items:
        assert all(isinstance(x, SideStatus) for x in item.sides)
        assert all(isinstance(x, GuestView) for x in item.guests)
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.sides[0].checkpoint = 99


# ------------------------------------------------------------------ immutability
def test_snapshots_are_immutable():
    sim = Simulation(SimConfig(seed=1, checkpoints=3, guest="model", ram_mib=16))
    sim.run(12)
    side, guest, rep = sim.side("primary"), sim.guest("secondary"), sim.guest_report()
    for obj, attr in ((side, "checkpoint"), (side, "failover_history"), (guest, "heat"),
                      (rep, "ram_diff"), (rep.primary.ram, "digest"),
                      (rep.secondary.packets, "svm_dropped")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, None)
    assert isinstance(side.failover_history, tuple) and isinstance(guest.heat, tuple)
    assert isinstance(rep.primary.ram.layout, tuple)
    # a snapshot taken earlier does not follow the session
    held = sim.side("primary")
    sim.run()
    assert sim.side("primary").checkpoint == 3 > held.checkpoint
    assert hash(held) == hash(dataclasses.replace(held))       # a value, hashable


@settings(max_examples=60, deadline=None)
@given(cmd=st.sampled_from(INPUTS), side=st.sampled_from([None, *SIDES, "third"]),
       value=st.one_of(st.none(), st.integers(0, 10**6)))
def test_inputs_are_checked_when_made(cmd, side, value):
    needs_side = cmd in SIDE_INPUTS
    ok = (side is not None) == needs_side and side in (None, *SIDES)
    if not ok:
        with pytest.raises(SessionError):
            Input(cmd, side, value)
        return
    inp = Input(cmd, side, value)
    item = inp.as_item()
    assert item["cmd"] == cmd and item.get("side") == side and item.get("value") == value
    assert Input(**item) == inp


def test_a_live_step_waits_at_most_its_bound():
    """A live step waits on the source's queue with a bound: a source that never
    produces anything gives nothing back after that bound, and ends when closed."""
    from colo_tui.session.live import LiveSession, _Source

    class Silent(_Source):
        name = "silent"

        def sides(self):
            return (SideStatus("primary"), SideStatus("secondary"))

        def run(self):
            self.done.wait(5)

        def command(self, *_a):
            raise SessionError("silent")
    s = LiveSession(Silent(SimConfig()))
    c = Controller(session=s)
    t0 = time.monotonic()
    assert c.step(5, wait_s=0.3) == []
    assert 0.2 < time.monotonic() - t0 < 3.0
    c.close()
    assert c.session.finished


def test_a_live_wait_ends_soon_after_its_source_ends():
    """A source that ends while a wait is blocked on its queue, with nothing more
    queued (its last snapshot went before the wait looked), woke no one: the wait sat
    out its whole timeout (found by the REPL pass)."""
    import threading

    from colo_tui.session import live
    from colo_tui.session.live import LiveSession, _Source
    release = threading.Event()

    class EndsQuietly(_Source):
        name = "ends-quietly"

        def sides(self):
            return (SideStatus("primary"), SideStatus("secondary"))

        def run(self):
            release.wait(10)

        def command(self, *_a):
            raise SessionError("ends-quietly")
    src = EndsQuietly(SimConfig())
    s = LiveSession(src)
    try:
        while s.wait(0.2):              # whatever the start queued
            s.step()
        threading.Timer(0.3, src.done.set).start()     # the end, nothing queued after
        t0 = time.monotonic()
        assert s.wait(5.0) is False
        assert time.monotonic() - t0 < 0.3 + 4 * live.WAIT_POLL_S
    finally:
        release.set()
