"""A recording the readers refuse by default (`colo tui --checkpoints 5000`, more
than COLO_MAX_CHECKPOINTS) says so when it is saved, as `colo run` and the REPL's
`record stop` do: `colo replay FILE` on it fails, naming the setting that reads it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.tui.conftest import make_app
from tests.tui.test_terminal import ROOT


@pytest.fixture(autouse=True)
def _readers_take_2000(monkeypatch):
    """The readers' default COLO_MAX_CHECKPOINTS (10,000) takes the longest interactive
    session: below it, a 5,000-checkpoint session is beyond them again."""
    monkeypatch.setenv("COLO_MAX_CHECKPOINTS", "2000")


async def test_r_stop_names_the_setting_that_reads_the_recording(tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path))
    app = make_app(checkpoints=5000)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r", *["n"] * 3, "r")
        await pilot.pause()
        notice = app.bridge.view().status.notice
        assert notice.startswith("recording saved:") and "COLO_MAX_CHECKPOINTS=5000" in notice
        explained = " ".join(str(app.query_one("#explain-text").render()).split())
        assert "note:" in explained and "COLO_MAX_CHECKPOINTS=5000" in explained


async def test_a_recording_within_the_limits_has_no_note(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r", *["n"] * 3, "r")
        await pilot.pause()
        assert "note" not in app.bridge.view().status.notice


def test_quitting_while_recording_prints_the_note(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, TERM="xterm-256color", COLO_RECORDINGS_DIR=str(tmp_path),
               COLO_CONFIG=str(tmp_path / "none.toml"))
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.cli.tui", "--checkpoints", "5000"],
                          cwd=str(ROOT), env=env, dimensions=(40, 120), encoding="utf-8",
                          timeout=20)
    try:
        child.expect("press n")
        child.send("r")
        child.expect("REC")
        child.send("nnn")
        child.send("q")
        child.expect("recording saved: ")
        child.expect("note: .*COLO_MAX_CHECKPOINTS=5000")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
