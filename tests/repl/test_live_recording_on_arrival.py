"""A live session's recording is written as events arrive, not as the view steps to
them: with the display paused while the peers ran on, the incoming queue filled up and
the events that came after were dropped without a word, from the view and from the
recording the user had started.  Now the recording has every event from its start on
whatever the display does, and a view that falls a full queue behind says how many
events it did not show (and that the recording has them).  Memory stays bounded: the
queue keeps its limit and what it could not take is one count."""
from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from colo_tui.commands import execute
from colo_tui.repl.session import run_script
from colo_tui.session.live import live_controller
from protocol.core.eventwindow import EventDropped, EventWindow
from protocol.record import facts
from protocol.record import format as rf
from tests._livestream import EVENTS_PER_CHECKPOINT, Stream, step_until

ROOT = Path(__file__).resolve().parents[2]


def _paused(checkpoints: int, queue_items: int):
    """A live session whose peers run on at full speed once `go` is set, while nobody
    steps the view (a paused display); its queue holds `queue_items` items."""
    go = threading.Event()
    c = live_controller(Stream(checkpoints, paced=False, queue_items=queue_items, go=go))
    c.wait_for_events = True
    return c, go


def _ran_to_the_end(c, go, timeout_s: float = 60.0) -> None:
    go.set()
    assert c.session.source.done.wait(timeout_s), "the stream did not end"
    c.wait_for_events = False       # all has arrived: `step N` need not wait for more


def _seqs(path) -> list[int]:
    return [e["seq"] for e in rf.read(str(path)).events]


def test_a_recording_keeps_what_arrives_while_the_view_is_paused(tmp_path):
    c, go = _paused(checkpoints=1000, queue_items=50)
    path = tmp_path / "paused.colo.jsonl"
    try:
        assert execute(c, f"record start {path}").ok
        _ran_to_the_end(c, go)
        # the queue kept its bound: 50 items (600 events) wait for the view
        assert c.session.source.q.qsize() <= 50
        out, err = io.StringIO(), io.StringIO()
        assert run_script(c, ["step 20000", "status", "record stop"], "t", out, err) == 0, \
            err.getvalue()
        text = out.getvalue()
    finally:
        c.close()
    total = 1000 * EVENTS_PER_CHECKPOINT
    # the recording has every event, numbered and ordered as they arrived
    assert _seqs(path) == list(range(total))
    rec = rf.read(str(path))
    assert facts.check(rec) is None
    # the view showed the first 50 items' events and says what it did not show
    shown = 50 * EVENTS_PER_CHECKPOINT
    assert len(c.events) == total and c.events.unshown == total - shown
    assert (f"note: the view fell too far behind the live peers: {total - shown:,} events "
            f"(#{shown:,}–#{total - 1:,}) arrived while its queue was full (it holds 50 "
            f"items) and were not shown; the recording {path} has them") in text, text
    assert f"{total - shown:,} of them were never shown" in text        # status: memory
    with pytest.raises(EventDropped, match=f"event #{shown + 3:,} was not shown: .*; the "
                       f"recording {path} keeps it"):
        c.events[shown + 3]


def test_without_a_recording_the_view_says_the_events_are_lost():
    c, go = _paused(checkpoints=400, queue_items=20)
    try:
        _ran_to_the_end(c, go)
        out, err = io.StringIO(), io.StringIO()
        assert run_script(c, ["step 10000", "status"], "t", out, err) == 0, err.getvalue()
        text = out.getvalue()
        assert c.finished
        # the last word of the source (its final snapshot) came through the gap
        assert execute(c, "status").ok
    finally:
        c.close()
    total, shown = 400 * EVENTS_PER_CHECKPOINT, 20 * EVENTS_PER_CHECKPOINT
    assert (f"note: the view fell too far behind the live peers: {total - shown:,} events "
            f"(#{shown:,}–#{total - 1:,}) arrived while its queue was full (it holds 20 "
            "items) and were not shown; no recording was on") in text, text
    assert text.count("note: the view fell too far behind") == 1          # said once


def test_a_recording_started_while_the_view_lags_holds_what_it_has_not_shown(tmp_path):
    c, go = _paused(checkpoints=300, queue_items=1000)
    path = tmp_path / "late.colo.jsonl"
    try:
        _ran_to_the_end(c, go)
        step_until(c, 100)                           # the view is far behind the peers
        assert execute(c, f"record start {path}").ok
        assert execute(c, "record stop").ok          # before stepping any further
    finally:
        c.close()
    # from the events in memory on, through those that had arrived
    assert _seqs(path) == list(range(300 * EVENTS_PER_CHECKPOINT))


def test_recordings_started_and_stopped_while_events_arrive_are_whole(tmp_path):
    # the source publishes on its own thread while the view steps and recordings start
    # and stop: each recording is an unbroken run of seqs from the oldest event in
    # memory, in order, none twice, through what had arrived when it stopped
    c, go = _paused(checkpoints=4000, queue_items=100_000)
    paths = [tmp_path / f"r{i}.colo.jsonl" for i in range(6)]
    spans = []
    try:
        go.set()
        for p in paths:
            assert execute(c, f"record start {p}").ok
            first = c.dropped
            c.step(300)
            time.sleep(0.002)
            assert execute(c, "record stop").ok
            spans.append((first, len(c.events)))
        assert c.session.source.done.wait(60)
    finally:
        c.close()
    lasts = []
    for p, (first, in_view) in zip(paths, spans, strict=True):
        seqs = _seqs(p)
        assert seqs and seqs == list(range(first, first + len(seqs))), p
        assert seqs[-1] >= in_view - 1, (p, seqs[-1], in_view)
        lasts.append(seqs[-1])
    assert lasts == sorted(lasts), lasts


def test_a_session_that_keeps_up_records_what_its_view_shows(tmp_path):
    # never paused: the recording is the events in view, with their seqs, in order
    c = live_controller(Stream(200))
    c.wait_for_events = True
    path = tmp_path / "kept-up.colo.jsonl"
    try:
        assert execute(c, f"record start {path}").ok
        step_until(c, 200 * EVENTS_PER_CHECKPOINT)
        assert c.finished or not c.step(1, wait_s=1.0)
        assert execute(c, "record stop").ok
        shown = [(e.seq, e.kind, e.t_ms) for e in c.events]
    finally:
        c.close()
    rec = rf.read(str(path))
    assert [(e["seq"], e["kind"], e["t"]) for e in rec.events] == shown
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr


def test_a_write_that_fails_on_arrival_ends_the_recording_and_says_so(tmp_path):
    c, go = _paused(checkpoints=50, queue_items=1000)
    path = tmp_path / "full.colo.jsonl"
    try:
        assert execute(c, f"record start {path}").ok

        def full(ev):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        c._writer.event = full                          # the disk fills up
        _ran_to_the_end(c, go)
        failure = c.take_recording_failure()
        assert failure and "No space left on device" in failure and str(path) in failure
        assert c.recording_path is None and c.record_stop() is None
        assert c.take_recording_failure() is None       # said once
    finally:
        c.close()


def test_the_window_skips_what_the_view_did_not_show():
    w = EventWindow(keep=10, batch=5)
    for i in range(8):
        w.append(i)
    w.recording_started("r.jsonl", 4)
    with pytest.raises(ValueError):
        w.skip(9, 20)                                 # not where the window is
    w.skip(8, 19)
    assert len(w) == 20 and w.dropped == 20 and w.unshown == 12 and list(w) == []
    w.append(20)
    assert w[20] == 20 and w[-1] == 20 and w[8:] == [20]
    assert w.unshown_text(8, 19, 7) == (
        "the view fell too far behind the live peers: 12 events (#8–#19) arrived while "
        "its queue was full (it holds 7 items) and were not shown; the recording r.jsonl "
        "has them")
    with pytest.raises(EventDropped, match=r"event #9 was not shown: the view fell too "
                       r"far behind the live peers \(events #8–#19 arrived while its "
                       r"queue was full\); the recording r.jsonl keeps it"):
        w[9]
    with pytest.raises(EventDropped, match=r"event #3 was dropped from memory"):
        w[3]
    text = w.dropped_text()
    assert "events #0–#19 were dropped from memory" in text and \
        "(memory holds #20–#20); 12 of them were never shown" in text
    w.recording_stopped("r.jsonl", 25)
    assert w.kept_by(25) == ["r.jsonl"] and w.kept_by(26) == []
