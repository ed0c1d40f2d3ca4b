"""A command the session refuses whatever the answer is refused before the REPL asks
'go on?'.  On a live session `faults clear` asked 'clearing faults restarts the
session; go on?', then refused ('a live session has no fault plan to clear', though
it listed one); so did set SETTING and replay, and each had stopped the recording
before the refusal.  kill/failover on a source that takes no inputs, or after a
simulation's end, asked and then refused too; `faults clear` with no fault asked,
then said there was none."""
from __future__ import annotations

import pytest

from colo_tui.commands import confirmation, execute
from colo_tui.session.control import Controller
from colo_tui.session.live import live_controller
from tests._livestream import Stream


@pytest.fixture
def live(tmp_path):
    source = Stream(2)
    source.faults = ["drop@checkpoint-reply"]          # as --proxy ... --fault arms
    c = live_controller(source)
    assert execute(c, f"record start {tmp_path / 'live.colo.jsonl'}").ok
    yield c
    c.close()


@pytest.mark.parametrize("line", ["faults clear", "set seed 3", "set divergence 0.5",
                                  "replay x.colo.jsonl"])
def test_a_live_refusal_is_not_asked_and_keeps_the_recording(live, line):
    assert confirmation(live, line) is None
    res = execute(live, line)
    assert not res.ok, res.text
    assert live.recording_path is not None, "the refused command stopped the recording"
    assert live.faults() == ["drop@checkpoint-reply"]


def test_faults_clear_on_a_live_session_says_why(live):
    res = execute(live, "faults clear")
    assert "keeps the faults it started with (--fault)" in res.text, res.text


def test_kill_on_a_source_that_takes_no_inputs_is_not_asked(live):
    assert confirmation(live, "kill primary") is None


def test_kill_after_the_end_is_not_asked():
    c = Controller()
    assert execute(c, "set checkpoints 2").ok
    assert confirmation(c, "kill primary") == "kill the primary?"
    assert execute(c, "run").ok and c.finished
    assert confirmation(c, "kill primary") is None
    assert confirmation(c, "failover secondary") is None
    assert "the session has ended" in execute(c, "kill primary").text


def test_faults_clear_asks_only_when_there_are_faults():
    c = Controller()
    assert confirmation(c, "faults clear") is None
    assert execute(c, "fault drop@vmstate-loaded#2").ok
    assert confirmation(c, "faults clear") == "clearing faults restarts the session; go on?"
