"""Every theme keeps every state readable: the contrast of each piece of text on
the rendered screen is at least 4.5:1 (WCAG AA), computed from the colours the
compositor really paints; and without colour (NO_COLOR) the states are still
marked by symbols and words."""
from __future__ import annotations

import pytest
from rich.segment import Segment

from colo_tui.session.control import Controller
from colo_tui.tui.app import THEMES, ColoApp
from colo_tui.tui.widgets.contrast import MIN_RATIO, ratio
from protocol.sim.config import SimConfig


def _segments(app):
    """(x, y, segment) of every painted piece of the screen."""
    update = app.screen._compositor.render_update(full=True)

    def walk(item):
        if isinstance(item, Segment):
            yield item
        else:
            for sub in item:
                yield from walk(sub)
    for y, strip in enumerate(update.strips):
        x = 0
        for seg in walk(strip):
            yield x, y, seg
            x += seg.cell_length


def _placeholder_region(app):
    return app.query_one("#log-filter").region          # a hint, not state


async def _low_contrast(theme: str) -> list[tuple]:
    app = ColoApp(Controller(SimConfig(guest="model", faults=["kill-primary@ram#2"],
                                       checkpoints=3)))
    bad = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = theme
        app.controller.run()                 # checkpoints, a death, a failover, the end
        app.bridge.changed()
        await pilot.pause()
        skip = _placeholder_region(app)
        for x, y, seg in _segments(app):
            st = seg.style
            if not any(ch.isalnum() for ch in seg.text) or st is None or skip.contains(x, y):
                continue
            if st.color is None or st.bgcolor is None:
                continue
            fg, bg = st.color.get_truecolor(), st.bgcolor.get_truecolor()
            if st.reverse:
                fg, bg = bg, fg
            r = ratio(tuple(fg), tuple(bg))
            if r < MIN_RATIO:
                bad.append((round(r, 2), y, seg.text.strip()[:30]))
    return bad


@pytest.mark.parametrize("theme", THEMES)
async def test_every_theme_keeps_text_readable(theme: str) -> None:
    assert await _low_contrast(theme) == []


async def test_states_are_marked_without_colour(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = ColoApp(Controller(SimConfig(guest="model", faults=["kill-primary@ram#2"],
                                       checkpoints=3)))
    async with app.run_test(size=(120, 40)) as pilot:
        app.controller.run()
        app.bridge.changed()
        await pilot.pause()
        text = "\n".join("".join(seg.text for _x, y2, seg in _segments(app) if y2 == y)
                         for y in range(40))
        assert app.no_color                          # Textual paints no colour then
        assert "▸completed" in text                  # the failover state, by a symbol
        assert "ended" in text                       # the status line says so in words
        assert "process is dead" in text and "☠" in text
