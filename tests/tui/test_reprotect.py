"""The re-protect key (p): a warning before a failover, COLO again after one; the
preset #; in a real terminal (tmux) after a failover."""
from __future__ import annotations

import shutil

import pytest

from colo_tui.tui.app import ColoApp
from colo_tui.tui.screens.help import KEYS
from colo_tui.tui.widgets import KeyBar, StatusBar
from tests.tui._term import Term, wait
from tests.tui.conftest import make_app

FAILOVER_AT_2 = dict(guest="model", checkpoints=4, checkpoint_delay_ms=300,
                     faults=["kill-primary@checkpoint-request#2"])


def text_of(widget) -> str:
    return str(widget.render())


async def test_p_warns_before_a_failover_and_reprotects_after_one() -> None:
    app = make_app(**FAILOVER_AT_2)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("n", "n", "p")
        await pilot.pause()
        assert "⚠ cannot re-protect: no failover has finished yet" in app.bridge.notice
        assert app.controller.inputs == [] and app.is_running
        app.controller.run()                       # to the failover and its end
        assert app.controller.status()["outcome"] == "failover"
        await pilot.press("p")
        await pilot.pause()
        assert app.bridge.notice.startswith("re-protect: a new secondary")
        assert app.controller.session.reprotects == 1
        app.controller.run()
        app.bridge.changed()
        await pilot.pause()
        assert app.controller.status()["outcome"] == "ok"
        assert app.controller.session.invariants.violations == []
        assert [e.payload()["survivor"] for e in app.controller.events
                if e.kind == "reprotect"] == ["secondary"]
        bar = app.query_one(KeyBar)
        assert ("p", "re-protect", "reprotect") in bar.shown(200)     # a wide footer
        assert ("p", "re-protect", "reprotect") not in bar.shown(80)  # dropped first


def test_help_lists_the_key_and_the_preset() -> None:
    keys = dict(KEYS)
    assert "re-protect" in keys["p"] and "re-protect" in keys["#"]
    ids = [b.id for b in ColoApp.BINDINGS]
    # the footer's importance order: after the side actions, the other-side key and
    # the delay (it is only of use after a failover), before the session switches
    assert ids.index("delay") < ids.index("reprotect") < ids.index("dialect")


async def test_the_preset_runs_a_failover_then_a_reprotect() -> None:
    app = make_app(checkpoint_delay_ms=300)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("number_sign")
        await pilot.pause()
        assert app.controller.config.faults == ["kill-primary@checkpoint-request#2",
                                                "reprotect@failover#1"]
        app.controller.run()
        app.bridge.changed()
        await pilot.pause()
        assert app.controller.status()["outcome"] == "ok"
        assert app.controller.session.reprotects == 1
        assert "failover then re-protect" in text_of(app.query_one(StatusBar))


async def test_the_fault_dialog_arms_a_reprotect_step() -> None:
    from colo_tui.tui.screens import FaultMenu
    app = make_app(**FAILOVER_AT_2)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f")
        await pilot.pause()
        menu = app.screen
        assert isinstance(menu, FaultMenu)
        menu.query_one("#fault-kind").value = "reprotect"
        await pilot.pause()
        assert menu.query_one("#fault-point").value == "failover"    # the point follows
        assert menu.spec() == "reprotect@failover#1" and menu._check() is None
        await pilot.click("#fault-arm")
        await pilot.pause()
        assert app.controller.faults() == [*FAILOVER_AT_2["faults"], "reprotect@failover#1"]
        app.controller.run()
        assert app.controller.session.reprotects == 1
        assert app.controller.status()["outcome"] == "ok"
        from colo_tui.present.sentences import ending
        assert "re-protected 1 time (a new secondary" in ending(app.controller.events, "ok")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_in_tmux_p_after_a_failover_resumes_colo() -> None:
    term = Term(["--seed", "1", "--checkpoints", "3", "--checkpoint-delay", "300",
                 "--fault", "kill-primary@checkpoint-request#2"], size=(120, 40))
    try:
        assert wait(lambda: "press n or → to step" in term.screen(), timeout=60), \
            term.screen()
        term.keys("p")                                   # nothing failed over yet
        assert wait(lambda: "cannot re-protect" in term.screen(), timeout=30), term.screen()
        for _ in range(6):
            term.keys("+")                               # faster
        term.keys("Space")                               # run to the failover and the end
        assert wait(lambda: "finished: failover" in term.screen(), timeout=90), \
            term.screen()
        term.keys("p")
        assert wait(lambda: "re-protect: a new secondary" in term.screen(), timeout=30), \
            term.screen()
        term.keys("Space")
        assert wait(lambda: "finished: ok" in term.screen(), timeout=90), term.screen()
        screen = term.screen()
        assert "Traceback" not in screen and term.exit_status() is None, screen
        term.keys("q")
        assert wait(lambda: term.exit_status() is not None, timeout=30), term.screen()
        assert term.exit_status() == 0, term.screen()
    finally:
        term.close()
