"""Tab completion of fault specs offers what the session's dialect can carry (the
check the session makes when a fault is armed, protocol.core.faults.check_fault).
It offered every dialect's points and messages: on the prototype dialect
`fault drop@vmstate-size` and `drop@ram`, on qemu `drop@guest-shutdown`, each then
refused by `fault`."""
from __future__ import annotations

import pytest

from colo_tui.commands import execute
from colo_tui.repl.completer import complete, make_completer
from colo_tui.session.control import Controller
from protocol.sim.config import SimConfig


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("typed", ["fault drop@", "fault kill-primary@", "fault delay=5@",
                                   "fault unexpected=", "fault corrupt@"])
def test_every_fault_offered_is_one_the_session_takes(dialect, typed):
    offered = complete(typed, dialect)
    assert offered, typed
    for spec in offered:
        if spec.endswith("@"):                      # KIND=MSG@: a point of its own comes next
            spec += complete(f"fault {spec}", dialect)[0].split("@", 1)[1]
        c = Controller(SimConfig(dialect=dialect))
        res = execute(c, f"fault {spec}")
        assert res.ok, (dialect, spec, res.text)


def test_what_a_dialect_cannot_carry_is_not_offered():
    assert "drop@vmstate-size" not in complete("fault drop@", "prototype")
    assert "drop@ram" not in complete("fault drop@", "prototype")
    assert "drop@device-state" in complete("fault drop@", "prototype")
    assert "drop@guest-shutdown" not in complete("fault drop@", "qemu")
    assert "drop@guest-shutdown" in complete("fault drop@", "v11")
    assert "unexpected=vmstate-size@" not in complete("fault unexpected=", "prototype")
    # without a dialect (no session): every point, as before
    assert {"drop@vmstate-size", "drop@ram", "drop@guest-shutdown"} <= \
        set(complete("fault drop@"))


def test_the_repl_completer_follows_the_sessions_dialect():
    from prompt_toolkit.document import Document
    c = Controller(SimConfig(dialect="prototype"))
    completer = make_completer(lambda: c.config.dialect)

    def words():
        doc = Document("fault drop@vm")
        return [x.text for x in completer.get_completions(doc, None)]
    assert "drop@vmstate-size" not in words()
    assert execute(c, "set dialect v11").ok                 # a new session: its dialect
    assert "drop@vmstate-size" in words()
