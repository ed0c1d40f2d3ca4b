"""The app on a live session whose display was paused while the peers ran on: the
incoming queue filled up and what came after was dropped without a word, from the view
and from the recording (written as the view stepped).  Now the recording is written as
events arrive, and a view that falls a full queue behind says so: the status line when
it reaches the events it did not show, and the log's first row (how many, and that the
recording has them)."""
import threading
import time

from colo_tui.session.live import live_controller
from protocol.record import format as rf
from tests._livestream import EVENTS_PER_CHECKPOINT, Stream
from tests.tui.conftest import app_on_live


def test_a_paused_view_that_fell_behind_says_so_and_the_recording_has_it_all(tmp_path):
    go = threading.Event()
    c = live_controller(Stream(500, paced=False, queue_items=30, go=go))
    total, shown = 500 * EVENTS_PER_CHECKPOINT, 30 * EVENTS_PER_CHECKPOINT
    out = {}

    async def check(app, pilot):
        bridge = app.bridge
        app.bridge.record_dir = str(tmp_path)
        out["path"] = path = bridge.toggle_record()
        assert path and not bridge.running            # paused: nothing is stepped
        go.set()
        deadline = time.monotonic() + 60
        while not c.session.source.done.is_set():    # the peers run on (bounded)
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        assert c.session.source.q.qsize() <= 30 and len(c.events) == 0
        notices = []
        for _ in range(200):                          # step through (bounded)
            if c.finished:
                break
            bridge.step(100)
            notices.append(bridge.notice)
            await pilot.pause(0.01)
        assert c.finished and len(c.events) == total
        said = [n for n in notices if "fell too far behind" in n]
        assert said and said[0] == (
            f"⚠ the view fell too far behind the live peers: {total - shown:,} events "
            f"(#{shown:,}–#{total - 1:,}) arrived while its queue was full (it holds 30 "
            f"items) and were not shown; the recording {path} has them"), notices
        row = bridge.log.line(0)[3]
        assert row.startswith(f"⋯ events #0–#{total - 1:,} were dropped from memory") and \
            f"{total - shown:,} of them were never shown" in row and \
            row.endswith(f"; the recording {path} keeps them"), row
        bridge.toggle_record()

    app_on_live(c, check)
    seqs = [e["seq"] for e in rf.read(out["path"]).events]
    assert seqs == list(range(total))
