"""The status line names no seed for a real QEMU session (an imported capture): it
showed 'seed 0', the recording header's, as if the capture had been simulated. A
simulated recording replayed still shows its seed."""
from __future__ import annotations

from pathlib import Path

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from colo_tui.tui.widgets import StatusBar
from tests.tui.test_capture_end import _capture

GOLDEN = Path(__file__).resolve().parents[2] / "recordings" / "happy-qemu-periodic.colo.jsonl"


async def test_a_capture_shows_no_seed(tmp_path: Path) -> None:
    app = ColoApp(Controller(), replay=str(_capture(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert app.bridge.view().status.seed is None
        assert "seed" not in str(app.query_one(StatusBar).render())


async def test_a_simulated_recording_keeps_its_seed() -> None:
    app = ColoApp(Controller(), replay=str(GOLDEN))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert app.bridge.view().status.seed is not None
        assert "seed " in str(app.query_one(StatusBar).render())
