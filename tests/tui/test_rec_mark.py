"""The REC mark stays on the status line as long as a recording runs, at every width:
it sat after the step and time, and at 60 columns a running session's
'step 7664 · t=30640.000 s' pushed it off the end ('│ ●…') while the recording went on."""
from __future__ import annotations

import pytest

from tests.tui.conftest import make_app
from tests.tui.test_status_line_narrow import first_line


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_rec_shows_while_a_long_session_runs(size, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path))
    app = make_app(checkpoints=5000)
    async with app.run_test(size=size) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert "● REC" in first_line(app)
        app.controller.step(10000)           # far into the session: long step and time
        await pilot.press("space")
        await pilot.pause(0.2)
        line = first_line(app)
        assert app.bridge.running and app.controller.recording_path, line
        assert "● REC" in line and "running" in line, line
        await pilot.press("space", "r")
        await pilot.pause()
        assert "REC" not in first_line(app)
