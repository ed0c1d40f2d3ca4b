"""A paused live view says how many events have arrived. Before, `colo lab` opened
paused on 'starting the lab (... 30-120 s under TCG): space follows the events as
they come' and step 0, and the screen stayed just so for minutes while hundreds of
events arrived: nothing said the lab was up. The view refreshes while paused and
the status line counts what waits."""
from __future__ import annotations

from colo_tui.session.live import live_controller
from colo_tui.tui.widgets import StatusBar
from tests._livestream import EVENTS_PER_CHECKPOINT, Stream
from tests.tui.conftest import app_on_live
from tests.tui.test_app_controls import text_of


class _Starting(Stream):
    hint = "starting the stream: space follows the events as they come"


def test_a_paused_live_view_counts_the_events_that_wait():
    c = live_controller(_Starting(3))
    total = 3 * EVENTS_PER_CHECKPOINT
    assert c.session.source.join(10)            # every event has arrived, none shown

    async def check(app, pilot):
        for _ in range(60):                      # bounded: the idle refresh is 1 s
            await pilot.pause(0.1)
            if f"{total} events have arrived" in text_of(app.query_one(StatusBar)):
                break
        seen = text_of(app.query_one(StatusBar))
        assert f"{total} events have arrived: space follows them" in seen, seen
        assert "starting the stream" not in seen
        await pilot.press("n")
        await pilot.pause(0.2)
        seen = text_of(app.query_one(StatusBar))
        assert f"{total - 1} events have arrived" in seen, seen
        await pilot.press("space")               # running: the count is not shown
        for _ in range(100):
            await pilot.pause(0.05)
            if c.finished:
                break
        assert "events have arrived" not in text_of(app.query_one(StatusBar))
    app_on_live(c, check)
