"""colo repl --lab: Tab after `fault ` offers the lab's faults, on its colo-compare
channels (KIND[=MS]@CHANNEL#N), the only ones it takes; it offered the simulator's
protocol points, which the lab then refused."""
from __future__ import annotations

from types import SimpleNamespace

from colo_tui.repl.completer import complete
from colo_tui.repl.session import _channels_of
from protocol.core import faults as fl
from protocol.core.session import live_capabilities


def test_the_kinds_are_the_channel_kinds():
    assert complete("fault ", channels=True) == ["drop@", "delay=", "corrupt@", "duplicate@"]
    assert set(complete("fault ", channels=False)) > {"kill-primary@", "drop@"}


def test_the_points_are_the_channels():
    assert complete("fault corrupt@", channels=True) == [f"corrupt@{p}" for p in fl.CHANNEL_POINTS]
    assert complete("fault delay=40@comp", channels=True) == ["delay=40@compare-in",
                                                               "delay=40@compare-out"]
    assert complete("fault kill-primary@", channels=True) == []    # not a lab fault
    for spec in complete("fault drop@", channels=True):
        fl.parse(spec + "#1", channels=True)            # each one the lab takes


def test_only_the_lab_s_live_session_completes_channels():
    def ctl(caps):
        return SimpleNamespace(session=SimpleNamespace(capabilities=caps))
    assert _channels_of(ctl(live_capabilities(takes_inputs=True, takes_faults=True)))
    assert not _channels_of(ctl(live_capabilities(takes_inputs=True, takes_faults=False)))
    from colo_tui.session.control import Controller
    assert not _channels_of(Controller())               # the simulator: protocol points
