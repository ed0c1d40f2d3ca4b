"""The failover diagram keeps both sides' rows at every width the app takes: at 60
columns (the smallest) the primary's row wrapped and pushed the secondary's out of
the diagram's three lines, so the secondary's failover state was not shown."""
from __future__ import annotations

import pytest

from colo_tui.tui.widgets.failover import FailoverDiagram
from tests.tui.conftest import make_app


def painted(widget) -> list[str]:
    return ["".join(seg.text for seg in strip)
            for strip in widget.render_lines(widget.region.reset_offset)]


@pytest.mark.parametrize("size", [(60, 20), (64, 20), (80, 24), (120, 40)])
async def test_both_rows_on_their_own_line(size) -> None:
    app = make_app(faults=["kill-primary@ram#1"])      # the secondary takes over
    async with app.run_test(size=size) as pilot:
        await pilot.press(*["n"] * 30)
        await pilot.pause()
        assert app.bridge.view().failover.current["secondary"] == "completed"
        lines = painted(app.query_one(FailoverDiagram))
        assert len(lines) == 3 and lines[0].startswith("failover state")
        p, s = lines[1].rstrip(), lines[2].rstrip()
        assert p.startswith("P ▸none") and "↺" in p          # the whole row
        assert s.startswith("S ") and "▸com" in s and "↺" in s
