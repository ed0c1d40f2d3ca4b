"""Pilot tests: every key and click of the app does what the help says."""
from __future__ import annotations

from pathlib import Path

import pytest

from colo_tui.tui.app import ColoApp
from colo_tui.tui.bridge import SPEEDS
from colo_tui.tui.screens import ChoicePrompt, FaultMenu, HelpScreen, NumberPrompt
from colo_tui.tui.widgets import EventLog, KeyBar, LadderView, SidePanel, StatusBar
from tests.tui.conftest import make_app


def text_of(widget) -> str:
    return str(widget.render())


async def test_start_is_paused_with_a_hint(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.controller.steps == 0 and not app.bridge.running
        assert "press n or → to step" in text_of(app.query_one(StatusBar))
        assert "paused" in text_of(app.query_one(StatusBar))


@pytest.mark.parametrize("key", ["n", "right"])
async def test_step_keys_move_the_first_message(app: ColoApp, key: str) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(4):
            await pilot.press(key)
        await pilot.pause()
        assert app.controller.steps == 4
        rows = app.query_one(LadderView).rows
        assert any(r.label.startswith("checkpoint-ready") for r in rows)


async def test_back_then_input_forks(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 6)
        await pilot.press("c")                       # an input at step 6
        await pilot.press(*["n"] * 3)
        await pilot.press("left", "left", "left", "left", "left")
        await pilot.pause()
        assert app.controller.steps == 4
        assert not app.controller.forked
        await pilot.press("c")                       # a new input: the future forks
        await pilot.pause()
        assert app.controller.forked
        assert "FORKED" in text_of(app.query_one(StatusBar))


async def test_space_runs_and_pauses_and_speed_keys() -> None:
    app = make_app(checkpoints=1000)
    async with app.run_test(size=(80, 24)) as pilot:
        start = app.bridge.speed_index
        await pilot.press("plus")
        assert app.bridge.speed_index == start + 1
        await pilot.press("minus", "minus")
        assert app.bridge.speed_index == start - 1
        app.bridge.speed_index = SPEEDS.index(100)
        await pilot.press("space")
        assert app.bridge.running
        await pilot.pause(0.3)
        assert "running" in text_of(app.query_one(StatusBar))
        await pilot.press("space")
        await pilot.pause()
        assert not app.bridge.running
        assert app.controller.steps > 0


async def test_full_speed_runs_to_the_end(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        app.bridge.speed_index = SPEEDS.index(0)
        await pilot.press("space")
        for _ in range(50):
            await pilot.pause(0.02)
            if app.controller.finished:
                break
        await pilot.pause()
        assert app.controller.finished and not app.bridge.running
        assert "ended: ok" in text_of(app.query_one(StatusBar))


async def test_checkpoint_key_requests_one(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 5, "c")
        await pilot.pause()
        assert app.controller.inputs[-1]["cmd"] == "checkpoint"


@pytest.mark.parametrize("key,cmd", [("k", "kill"), ("s", "stall"), ("h", "lost-heartbeat")])
async def test_side_actions_use_the_selected_side(app: ColoApp, key: str, cmd: str) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 5)
        assert app.bridge.selected_side == "primary"
        await pilot.press("o")
        assert app.bridge.selected_side == "secondary"
        await pilot.press(key)
        await pilot.pause()
        assert app.controller.inputs[-1] == {"step": 5, "cmd": cmd, "side": "secondary"}


async def test_click_a_side_panel_selects_it(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.click("#secondary")
        assert app.bridge.selected_side == "secondary"
        assert app.query_one("#secondary", SidePanel).has_class("-selected")
        await pilot.click("#primary")
        assert app.bridge.selected_side == "primary"


async def test_click_a_message_explains_it_and_y_copies_its_bytes(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 4)
        await pilot.pause()
        ladder = app.query_one(LadderView)
        idx = next(i for i, r in enumerate(ladder.rows) if r.kind == "msg")
        row = ladder.rows[idx]
        await pilot.click(LadderView, offset=(10, idx - ladder._top()))
        await pilot.pause()
        assert app.bridge.selected_seq == row.seq
        explain = str(app.query_one("#explain-text").render())
        assert f"#{row.seq}" in explain and "bytes:" in explain
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == row.hex == "00000000"
        assert "copied 4 bytes" in text_of(app.query_one(StatusBar))


async def test_click_a_lifeline_selects_the_side(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 4)
        await pilot.pause()
        ladder = app.query_one(LadderView)
        await pilot.click(LadderView, offset=(ladder.scrollable_content_region.width - 1, 0))
        assert app.bridge.selected_side == "secondary"


async def test_arrow_keys_select_messages(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 4, "up")
        await pilot.pause()
        last = app.query_one(LadderView).rows[-1]
        assert app.bridge.selected_seq == last.seq
        await pilot.press("up")
        await pilot.pause()
        assert app.bridge.selected_seq == app.query_one(LadderView).rows[-2].seq


async def test_fault_menu_builds_a_spec_for_the_selected_message(app: ColoApp) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*["n"] * 4)
        ladder = app.query_one(LadderView)
        ready = next(r for r in ladder.rows if r.point == "checkpoint-ready")
        app.bridge.select_row(ready.seq)
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FaultMenu)
        assert app.screen.spec() == "drop@checkpoint-ready#1"
        await pilot.click("#fault-arm")
        await pilot.pause()
        assert app.controller.faults() == ["drop@checkpoint-ready#1"]
        assert "fault armed" in text_of(app.query_one(StatusBar))


async def test_fault_menu_for_a_side_and_an_argument(app: ColoApp) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f")
        await pilot.pause()
        menu = app.screen
        assert menu.spec() == "kill-primary@checkpoint-request#1"
        menu.query_one("#fault-kind").value = "delay"
        await pilot.pause()
        assert menu.query_one("#fault-arm").disabled          # delay needs =MS
        menu.query_one("#fault-arg").value = "250"
        await pilot.pause()
        assert not menu.query_one("#fault-arm").disabled
        await pilot.press("escape")
        await pilot.pause()
        assert app.controller.faults() == []


async def test_delay_prompt(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 4, "d")
        await pilot.pause()
        assert isinstance(app.screen, NumberPrompt)
        inp = app.screen.query_one("#number")
        inp.value = ""
        await pilot.press(*"5000", "enter")
        await pilot.pause()
        assert app.controller.side("primary").checkpoint_delay_ms == 5000
        # beyond what x-checkpoint-delay takes: refused, said so, the delay unchanged
        await pilot.press("d")
        await pilot.pause()
        app.screen.query_one("#number").value = ""
        await pilot.press(*"4294967296", "enter")
        await pilot.pause()
        assert app.controller.side("primary").checkpoint_delay_ms == 5000
        assert "⚠" in app.bridge.notice and "4294967295" in app.bridge.notice


async def test_switch_dialect_and_mode_restart(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "n", "v")
        await pilot.pause()
        assert isinstance(app.screen, ChoicePrompt)
        await pilot.press("down", "enter")            # qemu, [v11], prototype
        await pilot.pause()
        # two steps would be lost: the app asks first, and escape keeps the session
        assert isinstance(app.screen, ChoicePrompt) and "discards" in app.screen.title_text
        await pilot.press("escape")
        await pilot.pause()
        assert app.controller.config.dialect == "qemu" and app.controller.steps == 2
        await pilot.press("v", "down", "enter")
        await pilot.pause()
        await pilot.press("enter")                    # [yes], no
        await pilot.pause()
        assert app.controller.config.dialect == "v11" and app.controller.steps == 0
        await pilot.press("m")                        # nothing to lose: no question
        await pilot.pause()
        assert app.controller.config.mode == "hybrid"
        assert "v11 · hybrid" in text_of(app.query_one(StatusBar))


@pytest.mark.parametrize("key", list("1234567890"))
async def test_presets_reproduce_their_scenario(key: str) -> None:
    from colo_tui.tui.screens import BY_KEY
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert app.controller.config.faults == BY_KEY[key].changes.get("faults", [])
        for name, value in BY_KEY[key].changes.items():
            assert getattr(app.controller.config, name) == value
        app.controller.run()
        app.bridge.changed()
        await pilot.pause()
        assert app.controller.finished
        assert BY_KEY[key].title in text_of(app.query_one(StatusBar))


async def test_record_key_writes_a_recording(app: ColoApp, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path / "user-data"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", *["n"] * 5)
        await pilot.pause()
        assert "REC" in text_of(app.query_one(StatusBar))
        assert app.controller.recording_path.startswith(str(tmp_path / "user-data"))
        await pilot.press("r")
        await pilot.pause()
    assert not (tmp_path / "recordings").exists()         # never beside the working dir
    files = list((tmp_path / "user-data").glob("*.colo.jsonl"))
    assert len(files) == 1
    from protocol.record import format as rf
    assert len(rf.read(files[0]).events) == len(app.controller.events)


async def test_help_screen(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_log_filter(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 8, "slash")
        await pilot.press(*"vmstate-send")
        await pilot.pause()
        log = app.bridge.log
        assert log.filter == "vmstate-send" and 0 < log.count < len(app.controller.events)
        await pilot.press("escape")
        assert isinstance(app.focused, LadderView)
        await pilot.press("n")                       # keys work again after escape
        assert app.controller.steps == 9


async def test_log_click_selects_the_event(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*["n"] * 2)
        await pilot.pause()
        lines = app.query_one("#log-lines")
        await pilot.click(lines, offset=(3, 0))
        await pilot.pause()
        first = app.bridge.log.line(lines._top())[0]
        assert app.bridge.selected_seq == first
        assert isinstance(app.query_one(EventLog), EventLog)


async def test_the_log_is_read_with_the_keys_too(app: ColoApp) -> None:
    """Tab reaches the log's lines; ↑/↓ move a cursor (the first puts it on the last
    line shown), home and end go to the ends, enter explains the cursor's event as a
    click does; the cursor's line is drawn reversed."""
    from colo_tui.tui.widgets.event_log import LogLines
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*["n"] * 6)
        await pilot.pause()
        lines = app.query_one(LogLines)
        for _ in range(8):                            # tab to it, as a keyboard user does
            if app.focused is lines:
                break
            await pilot.press("tab")
        assert app.focused is lines and lines.cursor is None
        log = app.bridge.log
        shown = lines.scrollable_content_region.height
        await pilot.press("up")
        last = min(log.count, lines._top() + shown) - 1
        assert lines.cursor == last
        await pilot.press("up", "up")
        assert lines.cursor == last - 2
        await pilot.press("enter")
        await pilot.pause()
        assert app.bridge.selected_seq == log.line(last - 2)[0]
        assert any(seg.style and seg.style.reverse
                   for seg in lines.render_line(last - 2 - lines._top()))
        await pilot.press("home", "enter")
        await pilot.pause()
        assert lines.cursor == 0 and lines._top() == 0
        assert app.bridge.selected_seq == log.line(0)[0]
        await pilot.press("end")
        await pilot.pause()
        assert lines.cursor == log.count - 1 and lines.follow
        await pilot.press("n")                        # a key of the app still works here
        await pilot.pause()
        assert app.controller.steps == 7


async def test_palette_lists_registry_and_runs_commands(app: ColoApp) -> None:
    from colo_tui.commands import REGISTRY
    from colo_tui.tui.screens import ColoCommands
    async with app.run_test(size=(100, 30)) as pilot:
        provider = ColoCommands(app.screen)
        found = [hit async for hit in provider.discover()]
        commands = {h.command.args[0] for h in found if h.command.func == provider._run}
        from colo_tui.tui.screens.palette import KEYED_COMMANDS
        assert commands == set(REGISTRY) - KEYED_COMMANDS       # quit: by its key entry
        texts = [str(h.display) for h in found]
        assert any(t.startswith("scenario 1:") for t in texts)            # the presets
        assert any("(n / →)" in t for t in texts)                        # the key bindings
        app.run_command_line("step 3")
        await pilot.pause()
        assert app.controller.steps == 3
        app.run_command_line("status")                # the output stays in a pane
        await pilot.pause()
        assert "query-colo-status" in app.bridge.view().explanation or \
            "primary" in app.bridge.view().explanation
        assert app.bridge.view().explanation.startswith("› status")
        await pilot.press("ctrl+p")
        await pilot.pause()
        from textual.command import CommandPalette
        assert isinstance(app.screen, CommandPalette)        # (the app's: ctrl+c quits)


async def test_theme_key(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        before = app.theme
        await pilot.press("t")
        assert app.theme != before


async def test_quit_key(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code in (0, None)


@pytest.mark.parametrize("size", [(80, 24), (160, 48), (60, 20)])
async def test_layouts(size) -> None:
    app = make_app(faults=["kill-primary@ram#1"])
    async with app.run_test(size=size) as pilot:
        app.controller.run()
        app.bridge.changed()
        await pilot.pause()
        ladder = app.query_one(LadderView)
        assert ladder.size.width > 10 and ladder.size.height >= 4


async def test_guest_key_shows_ram_packets_and_disk(app: ColoApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        primary = app.query_one("#primary", SidePanel)
        assert "RAM      —" in text_of(primary)
        await pilot.press("g")
        await pilot.pause()
        assert app.controller.config.guest == "model"
        app.controller.run(checkpoints=1)
        app.controller.step(3)
        app.bridge.changed()
        await pilot.pause()
        text = text_of(primary)
        assert "RAM dirty (epoch)" in text and "held" in text and "local" in text
        assert "active" in text_of(app.query_one("#secondary", SidePanel))
        await pilot.press("g", "enter")               # asked first: yes
        await pilot.pause()
        assert app.controller.config.guest == "null"


async def test_a_terminal_too_small_says_so(app: ColoApp) -> None:
    async with app.run_test(size=(50, 15)) as pilot:
        await pilot.pause()
        note = app.query_one("#too-small")
        assert note.display and "too small (50×15)" in str(note.render())
        assert not app.query_one(StatusBar).display or not app.query_one(StatusBar).region
    async with make_app().run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not pilot.app.query_one("#too-small").region


async def test_keys_behind_the_too_small_note_leave_the_session_alone(app: ColoApp) -> None:
    # n, space and k used to step, run and kill the hidden session
    async with app.run_test(size=(50, 15)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-too-small")
        for key in ("n", "right", "space", "k", "c", "1"):
            await pilot.press(key)
        await pilot.pause()
        assert app.controller.steps == 0 and not app.bridge.running
        assert app.controller.session.alive["primary"]
        await pilot.resize_terminal(100, 30)          # large enough: the keys work again
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert app.controller.steps == 1
        await pilot.resize_terminal(50, 15)
        await pilot.pause()
        await pilot.press("q")                        # as the note says
        await pilot.pause()
    assert app.return_code == 0


async def test_a_resize_with_a_dialog_open_resizes_the_main_screen(app: ColoApp) -> None:
    # shrinking the terminal with the help open hid the help's content and left the
    # main screen squeezed without the "too small" note (the size classes went to
    # the dialog); after escape it stayed that way
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        assert not app.screen.has_class("-too-small")              # the help stays whole
        await pilot.press("escape")
        await pilot.pause()
        note = app.query_one("#too-small")
        assert app.screen.has_class("-too-small") and "too small (40×12)" in str(note.render())
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert not app.screen.has_class("-too-small") and not app.screen.has_class("-narrow")


async def test_tab_moves_focus_through_every_field_of_the_fault_dialog(app: ColoApp) -> None:
    from colo_tui.tui.screens import FaultMenu
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FaultMenu)
        fields = list(app.screen.focus_chain)
        assert len(fields) >= 4                # kind, point, checkpoint, buttons …
        seen = set()
        for _ in range(len(fields) + 1):
            seen.add(app.focused)
            await pilot.press("tab")
            await pilot.pause()
        assert set(fields) <= seen, [f for f in fields if f not in seen]
        assert app.bridge.selected_side == "primary"      # tab no longer switches sides


@pytest.mark.parametrize("width", [60, 80, 120, 160])
async def test_the_footer_never_hides_help_palette_or_quit(width: int) -> None:
    app = make_app()
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        text = text_of(app.query_one(KeyBar))
        assert "? help" in text and "^p palette" in text and "q quit" in text, text
        assert "step" in text                     # the most important key comes first
        assert len(text.rstrip()) <= width


async def test_a_long_question_wraps_inside_its_dialog(app: ColoApp, tmp_path) -> None:
    """The discard question names the steps and the recording: at 80x24 it is longer
    than the dialog is wide, and every word of it shows (it was cut off mid-line)."""
    from textual.widgets import Label
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "n")
        await pilot.pause()
        app.controller.record_start(str(tmp_path / "a-rather-long-recording-name.colo.jsonl"))
        await pilot.press("v", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ChoicePrompt)
        label = app.screen.query_one(Label)
        text = app.screen.title_text
        assert len(text) > label.size.width and label.size.height >= 2
        shown = "".join(line.text for line in label.render_lines(label.region.reset_offset))
        assert "".join(shown.split()) == "".join(text.split())    # (a long path breaks)
        await pilot.press("escape")


async def test_r_with_a_record_dir_that_is_a_file_says_so(tmp_path) -> None:
    taken = tmp_path / "recs"
    taken.write_text("a file\n")
    from colo_tui.session.control import Controller
    app = ColoApp(Controller(), record_dir=str(taken))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert "the recordings directory is not a directory" in app.bridge.notice
        assert app.controller.recording_path is None


@pytest.mark.parametrize("opens", ["question_mark", "f", "v", "L", "d", "ctrl+p"])
async def test_ctrl_c_quits_from_a_dialog_too(opens: str) -> None:
    # the help screen says "q / ctrl+c quit", but with it (or a dialog) open ctrl+c
    # did nothing: the app's binding does not reach a modal screen; in the delay
    # prompt (d) and the palette (ctrl+p) their input fields took ctrl+c as "copy"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(opens)
        await pilot.pause()
        assert app.screen.is_modal
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


async def test_a_recording_that_cannot_be_written_turns_rec_off_and_says_so(tmp_path) -> None:
    # a full disk mid-recording: the REC mark stayed, the warning went at the next key
    # and quitting said "recording saved" of a file that held a third of the session
    from colo_tui.session.control import Controller
    from tests.repl.test_script import _FullDisk
    app = ColoApp(Controller(), record_dir=str(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r", "n")
        await pilot.pause()
        c = app.controller
        c._writer._fh = _FullDisk(c._writer._fh)
        await pilot.press("n")
        await pilot.pause()
        assert "recording stopped at step" in app.bridge.notice
        assert c.recording_path is None and "REC" not in str(app.query_one(StatusBar).render())
        await pilot.press("n")                       # the session goes on
        await pilot.pause()
        assert c.steps == 3 and app.is_running


async def test_back_while_recording_names_the_key_that_stops_it(tmp_path) -> None:
    # the TUI's notice named the REPL's commands ("`record stop`, then `back`")
    from colo_tui.session.control import Controller
    app = ColoApp(Controller(), record_dir=str(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r", "n", "n", "left")
        await pilot.pause()
        assert "stop recording before stepping back" in app.bridge.notice
        assert "r in the TUI" in app.bridge.notice
        assert app.controller.steps == 2
        await pilot.press("r", "left")                # stopped: back works
        await pilot.pause()
        assert app.controller.steps == 1


async def test_back_on_an_imported_capture_does_not_promise_a_fork(tmp_path) -> None:
    # "an input given now forks the future" was said of a capture that takes no inputs
    import subprocess
    import sys

    from tests.stream._synth import colo_session, make_pcap, page
    fwd, rev, _ = colo_session([[page("pc.ram", 0x2000)], [page("pc.ram", 0x4000)]])
    pcap, rec = tmp_path / "s.pcap", tmp_path / "s.colo.jsonl"
    pcap.write_bytes(make_pcap(fwd, rev))
    r = subprocess.run([sys.executable, "-m", "colo_tui", "import", str(pcap), "-o", str(rec)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from colo_tui.session.control import Controller
    app = ColoApp(Controller(), replay=str(rec))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "n", "n", "left")
        await pilot.pause()
        assert app.controller.steps == 2
        assert "takes no inputs" in app.bridge.notice and "forks" not in app.bridge.notice
    app = make_app()                                   # a simulation still forks
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "n", "left")
        await pilot.pause()
        assert "forks the future" in app.bridge.notice
