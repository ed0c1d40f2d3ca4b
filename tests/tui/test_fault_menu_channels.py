"""The fault dialog on the lab's colo-compare channels says what a fault does to a
packet there: corrupt flips bits in its last payload byte (the link's corrupt flips
the piece's first bytes, which the dialog said on the lab too)."""
import asyncio

from textual.app import App
from textual.widgets import Label

from colo_tui.tui.screens.fault_menu import FaultMenu


def _help(menu: FaultMenu) -> str:
    got = []

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(menu)

    async def go():
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.1)
            got.append(str(menu.query_one("#fault-help", Label).render()))
    asyncio.run(go())
    return got[0]


def test_corrupt_on_a_channel_names_the_last_payload_byte():
    assert "last payload byte" in _help(FaultMenu("corrupt", "primary-in", 1, channels=True))
    assert "first bytes" in _help(FaultMenu("corrupt", "checkpoint-request", 1))
