"""`step N` on a live session whose source has already ended returns at once with
what arrived: it waited its whole 10 s (LIVE_STEP_WAIT_S) for events that could not
come, then said "no more arrived within 10 s"."""
from __future__ import annotations

import time

from colo_tui.commands import execute
from colo_tui.session.live import live_controller
from tests._livestream import EVENTS_PER_CHECKPOINT, Stream


def _ended_stream(checkpoints: int):
    c = live_controller(Stream(checkpoints))
    c.wait_for_events = True                 # as the REPL has it: step/run wait for peers
    assert c.session.source.join(10), "the test stream did not end"
    return c


def test_step_n_returns_at_once_when_the_source_has_ended():
    c = _ended_stream(2)
    t0 = time.monotonic()
    out = execute(c, "step 100")
    took = time.monotonic() - t0
    assert out.ok
    assert took < 3, f"step waited {took:.1f} s on an ended source"
    assert out.text.startswith(f"{2 * EVENTS_PER_CHECKPOINT} new events"), out.text
    assert "no more arrived within" not in out.text
    assert "the live session has ended" in out.text      # not "the scenario"
    assert "scenario" not in out.text
    assert c.finished
