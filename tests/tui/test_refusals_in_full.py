"""A key the session refuses says why in full: the status line cuts the sentence to
the terminal's width (its advice is at the end), the explanation pane keeps it."""
from __future__ import annotations

import pytest

from colo_tui.tui.app import ColoApp
from tests.tui.conftest import make_app


def explained(app: ColoApp) -> str:
    return str(app.query_one("#explain-text").render())


@pytest.mark.parametrize(("keys", "advice"), [
    # re-protect before any failover: what re-protect is for comes last
    (("p",), "re-protect resumes COLO after a failover"),
    # x in the simulator: the way to do it here comes last
    (("x",), "`failover` is for a real pair (colo lab)"),
    # both sides alive after a lost heartbeat: what to do comes last
    # (the primary lives on, its VM stopped: no split brain; QA stop 31)
    (("n",) * 6 + ("o", "h", "n", "n", "p"), "kill the primary first"),
])
async def test_a_refused_key_is_explained_in_full(keys, advice) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*keys)
        await pilot.pause()
        status = app.bridge.view().status.notice
        assert status.startswith("⚠") and advice in status
        assert len(status) > 100                  # longer than the status line
        text = " ".join(explained(app).split())   # the pane wraps it
        assert text.startswith("⚠") and advice in text


async def test_the_next_step_replaces_the_refusal() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("p")
        await pilot.pause()
        assert explained(app).startswith("⚠")
        await pilot.press("n")
        await pilot.pause()
        assert "⚠" not in explained(app) and "re-protect" not in explained(app)
