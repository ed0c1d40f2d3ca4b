"""Shared helpers for the Textual app tests: a fixed seed, a paused start."""
from __future__ import annotations

import asyncio
import inspect

import pytest

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from protocol.sim.config import SimConfig


def make_app(**config) -> ColoApp:
    cfg = {"seed": 1, **config}
    return ColoApp(Controller(SimConfig(**cfg)))


async def run_to_the_end(app: ColoApp, pilot, pauses: int = 200) -> None:
    """Run the session at full speed (space) until it has ended: at most `pauses`
    pauses of 20 ms."""
    from colo_tui.tui.bridge import SPEEDS
    app.bridge.speed_index = SPEEDS.index(0)
    await pilot.press("space")
    for _ in range(pauses):
        await pilot.pause(0.02)
        if app.controller.finished:
            break
    await pilot.pause()
    assert app.controller.finished


@pytest.fixture
def app() -> ColoApp:
    return make_app()


def ladder_labels(app: ColoApp) -> list[str]:
    return [r.label for r in app.bridge.view().ladder]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests on a fresh event loop (no asyncio plugin needed)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None


def app_on_live(c, check, size=(160, 40)) -> None:
    """Run the app on controller `c` (a live session) headless, wait (bounded) for its
    log to mount, then `await check(app, pilot)`; the controller is closed after."""

    async def go():
        app = ColoApp(c)
        try:
            async with app.run_test(size=size) as pilot:
                for _ in range(200):            # the log mounts after the first frame
                    await pilot.pause(0.05)
                    if app.query("#log-lines"):
                        break
                await check(app, pilot)
        finally:
            c.close()
    asyncio.run(go())
