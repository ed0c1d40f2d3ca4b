"""A palette command's output (or a refusal) stays in the explanation pane until the
next step: a run is steps, so space starts with the steps' explanations. It used to
keep the output through the whole run and after its end (a '⚠ › failover secondary'
read beside 'ended: ok')."""
from __future__ import annotations

from colo_tui.tui.bridge import SPEEDS
from tests.tui.conftest import make_app, run_to_the_end


def explained(app) -> str:
    return str(app.query_one("#explain-text").render())


async def test_space_replaces_a_palette_commands_output() -> None:
    app = make_app(checkpoints=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "n")
        app.run_command_line("failover secondary")        # refused in the simulator
        await pilot.pause()
        assert "› failover secondary" in explained(app)
        await run_to_the_end(app, pilot, pauses=100)
        assert "failover secondary" not in explained(app)


async def test_a_refusal_while_paused_stays_until_the_run() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        await pilot.pause()
        assert explained(app).startswith("⚠")
        app.bridge.speed_index = SPEEDS.index(100)
        await pilot.press("space")
        await pilot.pause(0.3)
        assert not explained(app).startswith("⚠")
