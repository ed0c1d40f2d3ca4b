"""The app on a long live session, which keeps its latest events in memory and drops
the oldest in batches (protocol/core/eventwindow.py): the log starts with a row that
says older events were dropped (and what keeps them), a log scrolled back keeps its
place across a drop, the filter looks at the events in memory, and the explanation of
a selected event that was dropped says so, and names the recording that keeps it."""
import time

from colo_tui.session.live import live_controller
from tests._livestream import Stream
from tests.tui.conftest import app_on_live


async def _step_to(app, pilot, events: int, timeout_s: float = 30.0) -> None:
    """Step the app's session until `events` events are in view (bounded)."""
    c = app.controller
    deadline = time.monotonic() + timeout_s
    while len(c.events) < events:
        assert time.monotonic() < deadline and not c.finished, len(c.events)
        app.bridge.step(min(500, events - len(c.events)))
        await pilot.pause(0.01)
    await pilot.pause()


def _explanation(app) -> str:
    return app.query_one("#explain-text").render().plain


def _row(app, y: int) -> str:
    return app.query_one("#log-lines").render_line(y).text


def test_the_log_and_the_explanation_across_dropped_events(tmp_path):
    c = live_controller(Stream(3000), keep=1000, batch=400)

    async def check(app, pilot):
        log, lines = app.bridge.log, app.query_one("#log-lines")
        await _step_to(app, pilot, 600)
        assert log.count == 600 and not c.dropped
        app.bridge.select_row(120)
        await pilot.pause()
        assert _explanation(app).startswith("#120 ")
        await _step_to(app, pilot, 1500)                  # one batch of 400 went
        assert c.dropped == 400 and log.count == 1 + 1100
        first = log.line(0)
        assert first[0] == 399 and first[3].startswith(
            "⋯ events #0–#399 were dropped from memory: a live session keeps its latest "
            "1,000 to 1,400 events (memory holds #400–#1,499); a recording (r in the app")
        # the selected event went with them: its explanation says so
        await pilot.pause()
        assert _explanation(app).startswith("#120\nevent #120 was dropped from memory")
        # the log's first row, on screen, and a click on it
        lines.focus()
        await pilot.press("home")
        await pilot.pause()
        assert "dropped from memory" in _row(app, 0)
        await pilot.click(lines, offset=(3, 0))
        await pilot.pause()
        assert app.bridge.selected_seq == 399
        assert "event #399 was dropped from memory" in _explanation(app)
        # scrolled back to the event #1,000, the view keeps it on top across a drop
        lines.scroll_to(y=log.count - 1 - 499, animate=False, immediate=True)
        await pilot.pause()
        assert not lines.follow and log.line(lines._top())[0] == 1000
        await _step_to(app, pilot, 1900)                  # the next batch goes
        assert c.dropped == 800
        await pilot.pause()
        assert log.line(lines._top())[0] == 1000, log.line(lines._top())
        assert _row(app, 0).lstrip().startswith("1000")
        # a recording keeps what memory drops from now on
        app.bridge.record_dir = str(tmp_path)
        path = app.bridge.toggle_record()
        assert path
        start = c.dropped
        await _step_to(app, pilot, 3000)
        assert c.dropped > start + 400
        app.bridge.select_row(start + 10)
        await pilot.pause()
        assert f"event #{start + 10:,} was dropped from memory" in _explanation(app)
        assert f"the recording {path} keeps it" in _explanation(app)
        assert f"the recording {path} keeps #{start:,}–" in log.line(0)[3]
        # a held event still explains as before; the ladder still draws
        app.bridge.select_row(len(c.events) - 2)
        await pilot.pause()
        assert _explanation(app).startswith(f"#{len(c.events) - 2} primary checkpoint\n"
                                            "The primary: checkpoint 250 committed")
        assert app.bridge.ladder.rows and app.bridge.ladder.rows[-1].seq < len(c.events)
    app_on_live(c, check)


def test_the_log_filter_across_dropped_events():
    c = live_controller(Stream(3000), keep=1000, batch=400)

    async def check(app, pilot):
        log = app.bridge.log
        await _step_to(app, pilot, 1200)
        log.set_filter("vmstate-size")
        assert log.count == 100 and log.offset == 0         # one in 12 events
        await _step_to(app, pilot, 1500)
        assert c.dropped == 400
        # 125 matched; the 33 among #0-#399 went with them; row 0 says so
        assert log.count == 1 + 125 - 33 and log.offset == 33 - 1
        assert "the filter looks at the events in memory" in log.line(0)[3]
        assert all("vmstate-size" in log.line(i)[3] and log.line(i)[0] >= 400
                   for i in range(1, log.count))
        assert [log.line(i)[0] for i in range(1, log.count)] == \
            [s for s in range(400, 1500) if s % 12 == 7]
        log.set_filter("")
        assert log.count == 1 + 1100 and log.line(1)[0] == 400 and log.offset == 399
    app_on_live(c, check)
