"""The TUI on a lab session (`colo lab`), with the fake lab at the session seam.

The same contract (tests/tui/_lab_contract.py) runs on the real lab in
tests/qemu/test_lab_tui.py, and so does the pilot flow below."""
from __future__ import annotations

import pytest

from colo_tui.commands import execute
from colo_tui.session.control import Controller
from colo_tui.session.live import live_controller
from protocol.core.session import SessionError
from protocol.sim.config import SimConfig
from tests.tui import _lab_contract as contract
from tests.tui._fakelab import FakeLab


def fake_controller():
    return live_controller(FakeLab(SimConfig(dialect="qemu", mode="hybrid")))


def test_the_fake_lab_keeps_the_lab_contract():
    c = fake_controller()
    try:
        seen = contract.exercise(c, bound_s=20)
    finally:
        c.close()
    assert seen["packets"] > 0 and seen["verdicts"] > 0


def test_the_lab_commands_go_through_the_registry():
    c = fake_controller()
    try:
        assert contract.pump(c, contract.seen_colo, 20)
        res = execute(c, "fault corrupt@compare-in#2")
        assert res.ok and "compare-in channel's 2nd TCP data packet" in res.text, res.text
        res = execute(c, "fault truncate@compare-in")
        assert not res.ok and "truncate" in res.text
        res = execute(c, "fault drop@checkpoint-request")
        assert not res.ok and "compare channels" in res.text, res.text
        assert execute(c, "kill primary").ok
        res = execute(c, "failover secondary")
        assert res.ok and "failover to the secondary" in res.text, res.text
        assert contract.pump(c, lambda c: c.status()["secondary"]["colo_status"]["reason"]
                             == "request", 20)
        res = execute(c, "heartbeat primary")
        assert not res.ok and "not running" in res.text, res.text
    finally:
        c.close()


def test_failover_and_channel_faults_are_refused_by_the_simulator_with_a_reason():
    c = Controller(SimConfig(seed=1))
    res = execute(c, "failover secondary")
    assert not res.ok and "heartbeat secondary" in res.text, res.text
    res = execute(c, "fault corrupt@primary-in#1")
    assert not res.ok and "only `colo lab`" in res.text, res.text
    with pytest.raises(SessionError):
        c.failover("primary")
    assert execute(c, "fault drop@vmstate-size#2").ok       # the simulator's own still work


async def _follow(pilot, app, until, rounds: int = 400):
    """Let the app follow the live session until `until()` (bounded rounds of the app's
    own ticks)."""
    for _ in range(rounds):
        await pilot.pause(0.05)
        if until():
            return True
    return until()


def _labels(app) -> list[str]:
    return [r.label for r in app.bridge.view().ladder]


async def drive_the_lab_app(app, c, rounds: int = 400) -> str:
    """The pilot flow (fake and real): follow, see a checkpoint and compare packets on
    the ladder, arm a compare-channel fault from the fault menu, see it fire; kill the
    primary and fail over to the secondary by keys.  Returns the screen's text."""
    from colo_tui.tui.widgets import SidePanel
    async with app.run_test(size=(150, 44)) as pilot:
        await pilot.press("space")                         # follow the live pair
        assert await _follow(pilot, app, lambda: any(
            x.startswith("checkpoint ") for x in _labels(app)) and any(
            x.startswith(("compare-in #", "primary-in #")) for x in _labels(app)),
            rounds), _labels(app)[-30:]
        assert await _follow(pilot, app, lambda: any(
            x.startswith(("✓ match", "✗ ")) for x in _labels(app)), rounds), \
            _labels(app)[-30:]
        await pilot.press("f")                             # the lab's fault menu
        await pilot.pause()
        spec = app.screen.spec()
        assert spec == "corrupt@primary-in#1", spec
        await pilot.click("#fault-arm")
        await pilot.pause()
        assert c.faults() == ["corrupt@primary-in#1"], app.bridge.notice
        assert await _follow(pilot, app, lambda: any(
            "⚡corrupt@primary-in" in x for x in _labels(app)), rounds), (
            c.fired(), c.guest("primary"), [e for e in c.events if e.kind == "fault"],
            [e.payload() for e in c.events if e.kind == "packet"][-8:])
        assert await _follow(pilot, app, lambda: c.fired() == {0}, rounds)
        assert "corrupt@primary-in" in str(app.query_one("#status").render())
        prim = str(app.query_one("#primary", SidePanel).render())
        sec = str(app.query_one("#secondary", SidePanel).render())
        assert "client" in prim and "compare ✓" in sec, (prim, sec)
        await pilot.press("k")                             # kill the selected: primary
        assert await _follow(pilot, app, lambda: not c.side("primary").alive, rounds)
        await pilot.press("o", "x")                        # failover to the secondary
        assert await _follow(pilot, app, lambda: c.side("secondary").reason == "request",
                             rounds), app.bridge.notice
        await pilot.pause(0.3)
        sec = str(app.query_one("#secondary", SidePanel).render())
        prim = str(app.query_one("#primary", SidePanel).render())
        assert "request" in sec and "secondary" in sec, sec
        assert "process is dead" in prim, prim
        screen = app.export_screenshot()
        await pilot.press("q")
    return screen


async def test_the_app_on_a_fake_lab_shows_checkpoints_packets_and_takes_faults():
    from colo_tui.cli.lab_tui import lab_app
    c = fake_controller()
    try:
        await drive_the_lab_app(lab_app(c), c)
    finally:
        c.close()
