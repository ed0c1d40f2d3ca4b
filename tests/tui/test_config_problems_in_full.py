"""A config file with several mistakes: the status line names them cut to its width,
the explanation pane lists each whole until the first step (the second and later
ones were nowhere to read)."""
from __future__ import annotations

from pathlib import Path

from colo_tui.session import config_file
from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp

IDS = {b.id for b in ColoApp.BINDINGS if b.id}


async def test_every_problem_of_the_config_file_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('theme = "no-such-theme"\n[keys]\nquit = 3\nexplode = "z"\n')
    app = ColoApp(Controller(), user_config=config_file.load(path, IDS))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.bridge.notice.startswith("⚠ config:")
        shown = " ".join(str(app.query_one("#explain-text").render()).split())
        problems = app.user_config.problems       # the app adds the unknown theme
        assert len(problems) == 3 and any("no-such-theme" in p for p in problems)
        for problem in problems:
            assert " ".join(problem.split()) in shown
        await pilot.press("n")
        await pilot.pause()
        assert "config" not in str(app.query_one("#explain-text").render())
