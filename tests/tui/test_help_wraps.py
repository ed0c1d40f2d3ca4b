"""The help screen's rows that wrap go on under their description, not at the box's
left edge (a key row's continuation started at column 0, under the keys)."""
from __future__ import annotations

import pytest

from colo_tui.tui.screens import HelpScreen
from colo_tui.tui.screens.help import KEYS
from colo_tui.tui.screens.presets import PRESETS
from tests.tui.conftest import make_app


def _lines(app) -> list[str]:
    update = app.screen._compositor.render_update(full=True)
    return ["".join(seg.text for seg in strip) for strip in update.strips]


def _row_and_next(lines: list[str], start: str) -> tuple[str, str]:
    for i, line in enumerate(lines):
        if start in line:
            return line, lines[i + 1]
    raise AssertionError(f"{start!r} is not on the screen:\n" + "\n".join(lines))


@pytest.mark.parametrize("size", [(80, 60), (60, 80)])
async def test_a_wrapped_row_goes_on_under_its_description(size) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        lines = _lines(app)
        long_keys = [(k, what) for k, what in KEYS if len(what) > 60]
        assert long_keys
        for key, what in long_keys:
            first, nxt = _row_and_next(lines, what.split()[0] + " " + what.split()[1])
            column = first.index(what.split()[0])
            assert first.index(key.split()[0]) < column
            # the next line is the description going on, indented to its column
            assert nxt[:column].strip("│┃▌▐█ ") == "" and nxt[column] != " ", (first, nxt)
        preset = next(p for p in PRESETS if len(p.what) > 60)
        first, nxt = _row_and_next(lines, preset.title)
        column = first.index(preset.title)
        assert nxt[:column].strip("│┃▌▐█ ") == "" and nxt[column] != " ", (first, nxt)
