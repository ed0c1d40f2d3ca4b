"""`step` and `run` at a simulated session's end say what still works there, in the
words the Controller's SessionEnded refusal of an input uses: they said only where
the session was ('nothing to step: ...; the scenario has ended: outcome ok')."""
from __future__ import annotations

import pytest

from colo_tui.commands import execute
from colo_tui.session.control import Controller, SessionEnded


@pytest.fixture
def c():
    return Controller()


def _ended(c, *lines):
    for line in ("set checkpoints 3", *lines, "run"):
        assert execute(c, line).ok, line
    assert c.finished


@pytest.mark.parametrize("line", ["step", "step 5", "run", "run 2", "run until failover"])
def test_at_the_end_it_says_what_still_works(c, line):
    _ended(c)
    res = execute(c, line)
    assert res.ok
    head, still = res.text.split("\n")
    assert head.startswith(f"nothing to {line.split()[0]}: ") and "outcome ok" in head
    assert still == ("what still works: " + SessionEnded.COMMANDS["back"] + ", "
                     + SessionEnded.COMMANDS["new"]), still


def test_after_a_failover_reprotect_is_named(c):
    _ended(c, "step 5", "kill primary")
    assert c.session.outcome() == "failover"
    text = execute(c, "step").text
    assert "reprotect = COLO again" in text and "set seed S = a new session" in text
    # the same words as the refusal of an input there
    assert text.split("what still works: ")[1] in execute(c, "checkpoint").text
