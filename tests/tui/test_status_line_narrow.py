"""The status line keeps where the session is (step and virtual time) at every width:
at 60 columns, or at 80 while replaying a recording, 'step N · t=…' came last and
was cut off ('│ s…'), so time travel showed no step."""
from __future__ import annotations

from pathlib import Path

import pytest

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from colo_tui.tui.widgets import StatusBar
from tests.tui.conftest import make_app

RECORDING = Path(__file__).resolve().parents[2] / "recordings" / "failover-during-load.colo.jsonl"


def first_line(app) -> str:
    bar = app.query_one(StatusBar)
    return "".join(seg.text for seg in bar.render_lines(bar.region.reset_offset)[0])


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_the_step_is_shown_at_every_width(size) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("n", "n", "n")
        await pilot.pause()
        line = first_line(app)
        assert line.lstrip().startswith("COLO") and "paused" in line
        assert "step 3 · t=" in line and " s " in line


async def test_replaying_at_80_columns_shows_the_step() -> None:
    c = Controller()
    c.load_replay(str(RECORDING))
    app = ColoApp(c)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "n")
        await pilot.pause()
        assert "step 2 · t=" in first_line(app) and "replay" in first_line(app)


async def test_a_wide_line_keeps_its_order_and_a_resize_reorders() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        line = first_line(app)
        assert line.index("qemu · periodic") < line.index("step 1")
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert "step 1 · t=" in first_line(app)
