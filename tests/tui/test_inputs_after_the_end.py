"""Once a simulated session has ended, n no longer steps: an input given then was
never seen to happen. c said 'checkpoint requested' (and the hint offered it: 'c =
checkpoint') while the request stayed in flight for good; k said 'killed the
primary' and the failover it caused could not be stepped to. They now say the
session has ended and what still works (←, p after a failover, a scenario)."""
from __future__ import annotations

import pytest

from colo_tui.tui.screens import FaultMenu, NumberPrompt
from tests.tui.conftest import make_app, run_to_the_end


@pytest.mark.parametrize("key", ["c", "k", "s", "h", "x", "f", "d"])
async def test_an_input_after_the_end_is_refused_and_says_why(key) -> None:
    app = make_app(checkpoints=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_to_the_end(app, pilot)
        before = len(app.controller.events)
        await pilot.press(key)
        await pilot.pause()
        assert not isinstance(app.screen, (FaultMenu, NumberPrompt))
        assert len(app.controller.events) == before
        notice = app.bridge.view().status.notice
        assert notice.startswith("⚠") and "the session has ended (ok)" in notice
        assert "← = back" in notice and "c = checkpoint" not in notice


async def test_n_after_the_end_no_longer_offers_c() -> None:
    app = make_app(checkpoints=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_to_the_end(app, pilot)
        await pilot.press("n")
        await pilot.pause()
        notice = app.bridge.view().status.notice
        assert notice.startswith("the session has ended (ok)")
        assert "c = checkpoint" not in notice and "p = re-protect" not in notice


async def test_after_a_failover_p_still_re_protects() -> None:
    app = make_app(faults=["kill-primary@ram#1"])
    async with app.run_test(size=(120, 40)) as pilot:
        await run_to_the_end(app, pilot)
        await pilot.press("n")
        await pilot.pause()
        assert "p = re-protect" in app.bridge.view().status.notice
        await pilot.press("p")
        await pilot.pause()
        assert not app.controller.finished
        assert app.bridge.view().status.notice.startswith("re-protect")


async def test_back_then_an_input_is_taken_as_before() -> None:
    app = make_app(checkpoints=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_to_the_end(app, pilot)
        await pilot.press("left", "left", "c")
        await pilot.pause()
        assert not app.controller.finished
        assert app.bridge.view().status.notice == "checkpoint requested"


async def test_the_palette_refuses_as_the_repl_does() -> None:
    # the palette runs the REPL's commands: the Controller's refusal, in their words
    # (kill in the palette played a whole failover past the end)
    app = make_app(checkpoints=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await run_to_the_end(app, pilot)
        before = len(app.controller.events)
        for line in ("kill primary", "checkpoint", "set checkpoint-delay 500"):
            result = app.bridge.execute(line)
            assert not result.ok
            assert result.text.startswith(f"{line.split()[0]}: the session has ended (ok); "
                                          "back [N] = step back"), result.text
        await pilot.pause()
        assert len(app.controller.events) == before and app.controller.finished
        assert app.bridge.view().status.notice.startswith("⚠ set: the session has ended")
