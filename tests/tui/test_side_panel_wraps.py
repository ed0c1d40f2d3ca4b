"""A side panel's long value wraps under its label instead of being cut: at 80-139
columns the secondary's disk layers read 'active 0 hidden 40 b…' (the base layer
lost), in the default 120-column terminal too."""
from __future__ import annotations

import pytest

from colo_tui.tui.widgets import SidePanel
from tests.tui.conftest import make_app


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (60, 20)])
async def test_the_secondarys_disk_layers_are_whole(size) -> None:
    app = make_app(guest="model")                 # what colo tui opens on
    async with app.run_test(size=size) as pilot:
        await pilot.press(*["n"] * 6)
        await pilot.pause()
        disk = app.bridge.view().sides["secondary"].disk
        assert disk.startswith("active ") and " base " in disk
        panel = app.query_one("#secondary", SidePanel)
        shown = str(panel.render())
        after = " ".join(shown.split("disk", 1)[1].split())
        assert after.startswith(disk) and "…" not in after


async def test_a_very_long_value_takes_three_lines_at_most() -> None:
    from dataclasses import replace
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        panel = app.query_one("#secondary", SidePanel)
        view = app.bridge.view().sides["secondary"]
        panel.show(replace(view, disk="layer " * 40))
        await pilot.pause()
        lines = str(panel.render()).split("disk", 1)[1].split("\n")
        assert len(lines) == 4 and lines[3].endswith("…")      # its row, three lines
        width = panel.content_size.width
        assert all(len(line) <= width for line in lines)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (140, 44)])
async def test_a_screen_line_wraps_by_cells_not_words(size) -> None:
    # a real guest's VGA line (colo tui --peer, run1's guest): its own text at the start,
    # the BIOS's older text after it; wrapped by words it read 'COLO step' on one line
    # and '0000007C.16.2-debian-1.16.2-1)' on the next (test_tui_peer_shows_the_real_
    # guest_change looks for the step number after 'COLO step ')
    from dataclasses import replace
    line = "COLO step 0000007C.16.2-debian-1.16.2-1)"
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("n")
        await pilot.pause()
        panel = app.query_one("#secondary", SidePanel)
        panel.show(replace(app.bridge.view().sides["secondary"], screen=line))
        await pilot.pause()
        shown = str(panel.render())
        assert "COLO step 0000007C" in shown
        width = panel.content_size.width
        assert all(len(row) <= width for row in shown.split("\n"))
