"""QA round (stop 31), the TUI: re-protect offered then refused as a 'split brain'
after a failover that left one VM running; cut text with no …; three quits in the
palette; `f` on an imported capture opened the whole fault menu; a capture's mode
claimed; a checkpoint the primary ignores said 'checkpoint requested'."""
from __future__ import annotations

from pathlib import Path

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from colo_tui.tui.widgets import StatusBar
from colo_tui.tui.widgets.event_log import FILTER_PLACEHOLDERS, filter_placeholder
from colo_tui.tui.widgets.failover import FailoverDiagram
from tests.tui.conftest import make_app
from tests.tui.test_capture_end import _capture
from tests.tui.test_failover_diagram_narrow import painted

#: seed 5: x-colo-lost-heartbeat on the secondary mid-checkpoint; the primary's
#: process lives on, its VM stopped in error, the secondary runs alone
HEARTBEAT_KEYS = ("n",) * 6 + ("o", "h") + ("n",) * 10


async def test_no_reprotect_offered_while_the_old_primary_lives() -> None:
    app = make_app(seed=5)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*HEARTBEAT_KEYS)
        await pilot.pause()
        c = app.controller
        assert c.status()["outcome"] == "failover"
        assert "p = re-protect" not in app.bridge.notice          # not offered …
        assert "reprotect" not in c.after_the_end()
        await pilot.press("p")
        await pilot.pause()
        notice = app.bridge.notice
        assert notice.startswith("⚠ cannot re-protect")          # … and refused, truly
        assert "split brain" not in notice
        assert "primary's process is still alive" in notice and "kill the primary" in notice
        assert c.session.reprotects == 0


def test_the_refusal_says_what_to_do_and_that_works() -> None:
    c = Controller(make_app(seed=5).controller.config)
    for _ in range(6):
        c.step(1)
    c.lost_heartbeat("secondary")
    for _ in range(10):
        c.step(1)
    assert "go back before its end and kill the primary" in c.reprotect_refusal()
    c.back(1)
    c.kill("primary")
    c.run()
    assert c.status()["outcome"] == "failover"
    assert c.reprotect_refusal() is None and "reprotect" in c.after_the_end()
    c.reprotect()
    c.run()
    assert c.status()["outcome"] == "ok"


async def test_a_plain_failover_still_offers_reprotect() -> None:
    app = make_app(faults=["kill-primary@ram#1"])
    async with app.run_test(size=(120, 40)) as pilot:
        app.controller.run()
        app.bridge.changed()
        await pilot.pause()
        assert "reprotect" in app.controller.after_the_end()


async def _diagram_rows(size) -> list[str]:
    app = make_app(seed=5)
    async with app.run_test(size=size) as pilot:
        await pilot.press(*HEARTBEAT_KEYS)
        await pilot.pause()
        return painted(app.query_one(FailoverDiagram))


async def test_failover_names_cut_end_in_an_ellipsis() -> None:
    for size in ((80, 24), (60, 18)):
        _, p, s = (line.rstrip() for line in await _diagram_rows(size))
        for row in (p, s):
            names = row[2:].replace("▸", "").replace("↺", "→").split("→")
            for name in names:
                full = ("none", "require", "active", "completed", "relaunch")
                assert name in full or (name.endswith("…") and any(
                    f.startswith(name[:-1]) for f in full)), (size, row)
        assert "…" in p, p


def test_filter_placeholder_never_cut_mid_word() -> None:
    for cells in range(1, 60):
        text = filter_placeholder(cells)
        assert len(text) <= cells
        assert text in FILTER_PLACEHOLDERS or text.endswith("…"), (cells, text)
    assert filter_placeholder(34) == "filter (text or kind) — / to focus"


async def test_the_filter_placeholder_fits_at_80_and_60_columns() -> None:
    from textual.widgets import Input
    for size in ((80, 24), (60, 18)):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            inp = app.query_one("#log-filter", Input)
            assert len(inp.placeholder) < inp.content_size.width, (size, inp.placeholder)


def _text(hit) -> str:
    return str(hit.text or hit.match_display)


async def test_the_palette_lists_one_quit() -> None:
    from textual.system_commands import SystemCommandsProvider

    from colo_tui.tui.screens import ColoCommands
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        ours = [_text(h) async for h in ColoCommands(app.screen).search("quit")]
        system = [_text(h) async for h in
                  SystemCommandsProvider(app.screen).search("quit")]
        quits = [t for t in ours + system if "quit" in t.lower()]
        assert quits == ["quit  (q)"], quits


async def test_f_on_an_imported_capture_refuses_at_once(tmp_path: Path) -> None:
    app = ColoApp(Controller(), replay=str(_capture(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "f")
        await pilot.pause()
        assert type(app.screen).__name__ != "FaultMenu"
        assert "imported real session" in app.bridge.notice and "not changed" in \
            app.bridge.notice


async def test_a_capture_claims_no_mode(tmp_path: Path) -> None:
    app = ColoApp(Controller(), replay=str(_capture(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        bar = str(app.query_one(StatusBar).render())
        assert "periodic" not in bar and "seed" not in bar and "real capture" in bar
        st = app.controller.status()
        assert st["mode_known"] is False and st["invariants_checked"] is False


async def test_a_checkpoint_the_primary_ignores_is_said_so() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        assert app.bridge.notice.startswith("the primary ignores the checkpoint request")
        assert "INIT" in app.bridge.notice
