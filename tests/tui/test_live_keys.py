"""A live session offers no key that would start a new simulated session (dialect,
mode, guest, the scenario presets, the lessons): the footer and the palette leave
them out, a key pressed anyway says why at once (no dialog asking to discard the
session first), and the status line names no seed."""
import asyncio

import pytest

from colo_tui.session.live import live_controller
from colo_tui.session.live_sources import TcpPair
from protocol.sim.config import SimConfig

NEW_SESSION_KEYS = ("v", "m", "g", "1", "L")


def _run(make, check, deferred=False):
    """`check` the app on the controller `make()` builds: given to the app, or (as
    `colo tui` does) built by the app after its first frame."""
    from colo_tui.tui.app import ColoApp
    made = []

    def start():
        made.append(make())
        return made[-1]

    async def go():
        app = ColoApp(start=start) if deferred else ColoApp(start())
        try:
            async with app.run_test(size=(200, 40)) as pilot:
                await pilot.pause(0.3)
                assert made and app.controller is made[0]
                await check(app, pilot)
        finally:
            for c in made:
                c.close()
    asyncio.run(go())


def _footer_actions(app):
    from colo_tui.tui.widgets.keybar import KeyBar
    bar = app.query_one(KeyBar)
    return {action.split("(")[0] for _k, _d, action in bar.items + bar.pinned}


@pytest.mark.parametrize("deferred", [False, True], ids=["given", "deferred"])
def test_a_live_session_offers_and_runs_no_new_session_key(deferred):
    async def check(app, pilot):
        assert not _footer_actions(app) & app.NEW_SESSION_ACTIONS
        assert {"step", "kill", "record"} <= _footer_actions(app)
        palette = {b.action.split("(")[0] for b in app._bindings_as_keyed()}
        assert not palette & app.NEW_SESSION_ACTIONS
        assert "seed" not in app.query_one("#status").render().plain
        for key in NEW_SESSION_KEYS:
            await pilot.press(key)
            await pilot.pause(0.05)
            assert len(app.screen_stack) == 1, key          # no dialog opened
            notice = app.bridge.notice
            assert "a live session is restarted from the command line" in notice, (key, notice)
    _run(lambda: live_controller(TcpPair(SimConfig(checkpoint_delay_ms=60_000))), check,
         deferred)


def test_a_simulated_session_keeps_them():
    from colo_tui.session.control import Controller

    async def check(app, pilot):
        assert {"dialect", "mode", "guest", "lesson"} <= _footer_actions(app)
        assert "seed 1" in app.query_one("#status").render().plain
        await pilot.press("v")
        await pilot.pause(0.05)
        assert len(app.screen_stack) == 2                   # the dialect chooser
    _run(lambda: Controller(SimConfig()), check)
