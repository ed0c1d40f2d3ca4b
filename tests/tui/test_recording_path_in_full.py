"""r names the recording's path whole: the status line cut its file name at 80
columns ('recordings/tui-qemu-period…'), and `colo replay FILE` needs it."""
from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import make_app


def explained(app) -> str:
    return "".join(str(app.query_one("#explain-text").render()).split())


async def test_r_names_the_whole_path(tmp_path: Path, monkeypatch) -> None:
    deep = tmp_path / "a-rather-long-directory-name" / "recordings-of-my-colo-sessions"
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(deep))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        path = app.controller.recording_path
        assert path and len(path) > 80
        assert "".join(f"recording to {path}".split()) in explained(app)
        await pilot.press("n", "r")
        await pilot.pause()
        assert "".join(f"recording saved: {path}".split()) in explained(app)
        assert Path(path).exists()
