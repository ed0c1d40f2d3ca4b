"""A recording started from the TUI's command palette (`record start`) is the TUI's:
named tui-… and put where the r key puts one.  It was named repl-…, as if the REPL
had made it, and ignored the TUI's recordings folder."""
from __future__ import annotations

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from protocol.sim.config import SimConfig


async def test_record_start_in_the_palette_names_a_tui_recording(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path / "env"))
    app = ColoApp(Controller(SimConfig(seed=1)), record_dir=str(tmp_path / "tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        app.run_command_line("record start")
        await pilot.pause()
        path = app.controller.recording_path
        assert path, app.bridge.notice
        app.run_command_line("record stop")
        await pilot.press("r")                  # the r key's, for comparison
        await pilot.pause()
        app.run_command_line("record stop")
        await pilot.pause()
    files = sorted(p.name for p in (tmp_path / "tui").glob("*.colo.jsonl"))
    assert files == ["tui-qemu-periodic-seed1-1.colo.jsonl",
                     "tui-qemu-periodic-seed1-2.colo.jsonl"], files
    assert not (tmp_path / "env").exists() or not list((tmp_path / "env").iterdir())


def test_the_repl_still_names_its_own(tmp_path, monkeypatch) -> None:
    from colo_tui.commands import execute
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path))
    c = Controller(SimConfig(seed=1))
    r = execute(c, "record start")
    assert r.ok and "repl-qemu-periodic-seed1-1.colo.jsonl" in r.text, r.text
    c.record_stop()
