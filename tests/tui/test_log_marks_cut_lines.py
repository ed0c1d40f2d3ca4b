"""An event log line too long for its column ends with … : it was cut mid-word with
no mark ('receives checkp', 'checkpoint 1 be'), as if that were the whole event."""
from __future__ import annotations

import pytest

from colo_tui.tui.widgets.event_log import LogLines
from tests.tui.conftest import make_app


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_cut_log_line_says_so(size) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press(*["n"] * 6)
        await pilot.pause()
        log = app.query_one(LogLines)
        width = log.scrollable_content_region.width
        col = (width - 6) // 2
        cut = whole = 0
        for y in range(log.scrollable_content_region.height):
            index = log._top() + y
            if index >= log.count:
                break
            _seq, _t, side, text = log.model.line(index)
            shown = "".join(seg.text for seg in log.render_line(y))
            room = col - 1 if side in ("primary", "secondary") else width - 6
            if len(text) > room:
                cut += 1
                assert "…" in shown and text[: room - 1] in shown
            else:
                whole += 1
                assert text in shown and "…" not in shown
        assert cut            # at these widths some lines are too long
