"""The user's config file: theme and keys, never a crash, never a lost line."""
from __future__ import annotations

from pathlib import Path

import pytest

from colo_tui.session import config_file
from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp

IDS = {b.id for b in ColoApp.BINDINGS if b.id}


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    cfg = config_file.load(tmp_path / "none.toml", IDS)
    assert cfg.theme is None and cfg.keys == {} and cfg.problems == []


@pytest.mark.parametrize("text, problem", [
    ('theme = "nord"\n[keys\n', "using the defaults"),
    ("theme = 5\n", "theme 5"),
    ('[keys]\nexplode = "x"\n', "explode: no such binding"),
    ('[keys]\nstep = 3\n', "step must be a string"),
    ('colour = "red"\n', "unknown setting 'colour'"),
    ("keys = 1\n", "must be a table"),
])
def test_bad_files_are_named_and_ignored(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    cfg = config_file.load(path, IDS)
    assert any(problem in p for p in cfg.problems), cfg.problems


def test_a_theme_that_is_not_a_string_says_so(tmp_path: Path) -> None:
    # the app reads the file without the list of themes: this said "theme 5 is not one
    # of: " with nothing after it
    path = tmp_path / "config.toml"
    path.write_text("theme = 5\n")
    (problem,) = config_file.load(path, IDS).problems
    assert "must be a theme name in quotes" in problem and not problem.endswith(": ")


def test_invalid_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'theme = "\xff"\n')
    assert config_file.load(path, IDS).problems


def test_saving_the_theme_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('# my settings\ntheme = "nord"\n\n[keys]\nstep = "n,j"  # vim-ish\n')
    config_file.save_theme("gruvbox", path)
    text = path.read_text()
    assert 'theme = "gruvbox"' in text and "# my settings" in text and "# vim-ish" in text
    assert config_file.load(path, IDS).keys == {"step": "n,j"}


def test_a_corrupt_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("theme = [unclosed\n")
    with pytest.raises(ValueError, match="not saved"):
        config_file.save_theme("nord", path)
    assert path.read_text() == "theme = [unclosed\n"


async def test_keys_from_the_file_drive_the_app(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nstep = "j"\n')
    app = ColoApp(Controller(), user_config=config_file.load(path, IDS))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("j", "j")
        await pilot.pause()
        assert app.controller.steps == 2
        from colo_tui.tui.widgets import KeyBar
        footer = str(app.query_one(KeyBar).render())
        assert " j step" in footer and "n/→ step" not in footer     # the keys that work


async def test_the_theme_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    app = ColoApp(Controller(), user_config=config_file.load(path, IDS))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        chosen = app.theme
    assert config_file.load(path, IDS).theme == chosen
    again = ColoApp(Controller(), user_config=config_file.load(path, IDS))
    assert again.theme == chosen


async def test_an_unknown_theme_is_reported_on_the_status_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('theme = "no-such-theme"\n')
    app = ColoApp(Controller(), user_config=config_file.load(path, IDS))
    assert "no-such-theme" in app.bridge.notice


async def test_a_key_given_twice_or_empty_is_named_and_the_footer_tells_the_truth(
        tmp_path: Path) -> None:
    # quit = "n" (step's key) showed "n quit" in the footer while n stepped; step =
    # "n,," showed "n// step"; neither was named on the status line
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nstep = "n,,"\nquit = "n"\n')
    cfg = config_file.load(path, IDS)
    assert any("step: an empty key" in p for p in cfg.problems), cfg.problems
    app = ColoApp(Controller(), user_config=cfg)
    assert "quit: n is already the key of step" in app.bridge.notice
    async with app.run_test(size=(120, 30)) as pilot:
        from colo_tui.tui.widgets import KeyBar
        footer = str(app.query_one(KeyBar).render())
        assert " n step" in footer and "//" not in footer, footer
        assert " q quit" in footer and "n quit" not in footer, footer
        await pilot.press("n")
        await pilot.pause()
        assert app.controller.steps == 1 and app.is_running


async def test_the_palette_names_the_keys_that_work(tmp_path: Path) -> None:
    # it listed the class's default keys ("step (n / right)" with step = "j") under
    # their internal names ("help (question_mark)")
    from colo_tui.tui.screens import ColoCommands
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nstep = "j"\n')
    app = ColoApp(Controller(), user_config=config_file.load(path, IDS))
    async with app.run_test(size=(100, 30)):
        texts = [str(h.display) async for h in ColoCommands(app.screen).discover()]
    assert "step  (j)" in texts and "help  (?)" in texts, texts
    assert not any("question_mark" in t or "n / right" in t for t in texts), texts


#: a config path whose directory cannot be created (mkdir in /proc fails, even as root)
UNWRITABLE = Path("/proc/colo-testbed-no-such-dir/config.toml")


def test_a_theme_that_cannot_be_written_says_it_was_not_saved() -> None:
    # it was a bare "No such file or directory: PATH": a file not there yet (so read
    # as empty) in a directory that cannot be made, not even by root
    path = UNWRITABLE
    with pytest.raises(ValueError, match=r"theme not saved: /proc/.*config.toml cannot be "
                                         r"written \(No such file or directory\)"):
        config_file.save_theme("nord", path)
    assert not path.parent.exists()


async def test_t_with_a_config_that_cannot_be_written_says_so() -> None:
    app = ColoApp(Controller(), user_config=config_file.load(UNWRITABLE, IDS))
    async with app.run_test(size=(100, 30)) as pilot:
        before = app.theme
        await pilot.press("t")
        await pilot.pause()
        assert app.theme != before                      # the theme changed for this session
        assert "theme not saved" in app.bridge.notice, app.bridge.notice
        assert app.is_running
