"""A long live session keeps its latest events in memory, not every event it saw: a
proxy or attach session left open for a day grew without bound (every event, about
170 bytes each, in LiveSession.events).  The events are an EventWindow: the oldest go
in large batches, seq stays global, and what looks an event up by seq (status, show,
wire, the explanation, a recording started late) says when it was dropped."""
from __future__ import annotations

import gc
import tracemalloc

import pytest

from colo_tui.commands import execute
from colo_tui.session.live import live_controller
from protocol.core.eventwindow import (
    LIVE_KEEP_EVENTS,
    LIVE_TRIM_BATCH,
    EventDropped,
    EventWindow,
)
from protocol.record import facts
from protocol.record import format as rf
from protocol.record.playback import Playback
from tests._livestream import EVENTS_PER_CHECKPOINT, Stream, step_until


def _live(checkpoints: int, keep: int, batch: int):
    c = live_controller(Stream(checkpoints), keep=keep, batch=batch)
    c.wait_for_events = True
    return c


def test_the_default_bound_is_in_the_low_hundreds_of_mb():
    # ~170 bytes an event (measured on --transport tcp): 300,000 held are ~50 MB
    assert 100_000 <= LIVE_KEEP_EVENTS and LIVE_TRIM_BATCH >= 10_000
    assert (LIVE_KEEP_EVENTS + LIVE_TRIM_BATCH) * 1000 < 400 << 20   # even at 1 KB each


def test_the_window_reads_as_the_list_it_replaces():
    w = EventWindow(keep=10, batch=5)
    for i in range(14):
        w.append(i)
    assert len(w) == 14 and w.dropped == 0 and list(w) == list(range(14))
    w.append(14)                              # keep + batch: the oldest 5 go at once
    assert len(w) == 15 and w.dropped == 5 and list(w) == list(range(5, 15))
    assert w[5] == 5 and w[-1] == 14 and w[14] == 14 and list(reversed(w))[0] == 14
    assert w[3:] == list(range(5, 15)) and w[12:] == [12, 13, 14] and w[:7] == [5, 6]
    assert w[-3:] == [12, 13, 14] and w[15:] == []
    with pytest.raises(EventDropped, match=r"event #3 was dropped from memory: a live "
                       r"session keeps its latest 10 to 15 events \(memory holds #5–#14\)"):
        w[3]
    with pytest.raises(IndexError):
        w[15]
    for i in range(15, 100):
        w.append(i)
    assert len(w) == 100 and w.dropped == 90 and w.trims == 18 and w[-1] == 99


def test_a_long_live_session_keeps_its_latest_events_and_numbers_them_all(tmp_path):
    c = _live(checkpoints=2000, keep=2000, batch=500)
    try:
        step_until(c, 6000)
        ev = c.events
        held = list(ev)
        assert len(ev) == c.steps == 6000
        assert 2000 <= len(held) < 2500 and c.dropped == 6000 - len(held)
        assert [e.seq for e in held] == list(range(c.dropped, 6000))    # global, monotonic
        assert ev[5999].seq == 5999 and ev[-1].seq == 5999
        # wire: the messages still in memory, with their global seqs
        wire = c.wire()
        assert wire and wire[0]["seq"] >= c.dropped and wire[-1]["seq"] < 6000
        # status says what memory holds and how to keep everything
        st = execute(c, "status")
        assert st.ok and f"memory     events #0–#{c.dropped - 1:,} were dropped from memory" \
            in st.text and "a recording (r in the app, `record start` in the REPL) keeps" \
            in st.text
        assert f"events #0–#{c.dropped - 1:,} were dropped from memory" in \
            execute(c, "show ladder").text
        assert execute(c, "explain").ok
        # a recording started now holds what memory holds, then every later event
        path = tmp_path / "late.colo.jsonl"
        out = execute(c, f"record start {path}")
        first = c.dropped
        assert out.ok and f"from event #{first:,}" in out.text
        step_until(c, 12000)                         # several trims while recording
        assert c.dropped > first
        assert f"; the recording {path} keeps #{first:,}–#{c.dropped - 1:,} of them" in \
            execute(c, "status").text
        with pytest.raises(EventDropped, match=r"event #0 was dropped from memory"):
            ev[0]
        with pytest.raises(EventDropped, match=f"the recording {path} keeps it"):
            ev[first]
        assert execute(c, "record stop").ok
        rec = rf.read(str(path))
        # every event from its start on, those that had arrived but were not yet in
        # view too (it is written as they arrive)
        end = rec.events[-1]["seq"] + 1
        assert end >= 12000 and [e["seq"] for e in rec.events] == list(range(first, end))
        # it joins mid-checkpoint: its facts are checked from its first checkpoint on,
        # and its playback numbers events as the live session did
        assert facts.check(rec) is None
        pb = Playback(rec)
        pb.run()
        assert len(pb.events) == end and pb.events[first + 5].seq == first + 5
        with pytest.raises(EventDropped, match=f"event #3 is not in this recording: it "
                           f"begins at event #{first:,}"):
            pb.events[3]
        # a dropped event it holds still says where to find it, once it is saved
        step_until(c, 15000)
        with pytest.raises(EventDropped, match=f"the recording {path} keeps it"):
            ev[first + 1]
    finally:
        c.close()


def test_step_and_run_count_new_events_across_a_trim():
    c = _live(checkpoints=1000, keep=1000, batch=400)
    try:
        step_until(c, 1300)
        before = len(c.events)
        out = execute(c, "step 600")                 # a trim happens inside it
        assert out.ok and out.text.startswith("600 new events"), out.text
        assert c.dropped > 0 and len(c.events) == before + 600
        n = len(c.events)
        assert [e.seq for e in c.events[n - 600:]] == list(range(n - 600, n))
        out = execute(c, "run 3")
        assert out.ok and "new events" in out.text
        assert len(c.events) - n >= 3 * EVENTS_PER_CHECKPOINT - EVENTS_PER_CHECKPOINT
    finally:
        c.close()


def _traced_mib() -> float:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 2**20


def test_memory_is_flat_once_the_window_is_full():
    # 120,000 events through the session; memory holds at most 25,000 of them: between
    # 60,000 and 120,000 events it must not grow (every event kept: ~9 MB more)
    c = _live(checkpoints=10_000, keep=20_000, batch=5_000)
    tracemalloc.start()
    try:
        step_until(c, 60_000, timeout_s=120)
        at_60k = _traced_mib()
        step_until(c, 120_000, timeout_s=300)
        at_120k = _traced_mib()
    finally:
        tracemalloc.stop()
        c.close()
    assert c.dropped >= 95_000
    assert at_120k - at_60k < 2.0, (at_60k, at_120k)
