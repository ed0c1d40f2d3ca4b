"""`run until NAME` with a name that is neither an event kind nor a message name:
the refusal names the closest ones and where the full list is.  It listed all
70-odd names, a screenful in which the typo was hard to see; `help run` listed none
('Tab lists them')."""
from __future__ import annotations

import re

from colo_tui.commands import execute
from colo_tui.commands.parser import EVENT_KINDS, MESSAGE_NAMES
from colo_tui.session.control import Controller


def test_a_typo_names_the_closest_events():
    res = execute(Controller(), "run until colo-exti")
    assert not res.ok
    assert "unknown event 'colo-exti'; did you mean colo-exit?" in res.text, res.text
    assert "'help run' lists them all" in res.text
    assert "heartbeat-failover-refused" not in res.text      # not the whole list
    assert len(res.text) < 300, res.text


def test_a_name_like_none_still_says_what_is_asked_for():
    res = execute(Controller(), "run until zzzz")
    assert not res.ok and "did you mean" not in res.text
    assert "an event kind (e.g. failover, colo-exit, error)" in res.text, res.text
    assert "'help run' lists them all" in res.text


def test_help_run_lists_every_event_and_message():
    text = " ".join(execute(Controller(), "help run").text.split())
    for name in EVENT_KINDS + MESSAGE_NAMES:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name
    assert "event kinds: send, recv," in text and "message names: checkpoint-ready," in text
