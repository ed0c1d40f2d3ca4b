"""Snapshots (pytest-textual-snapshot): fixed seed, paused, no wall-clock text.

Each picture at 80x24 and 160x48: the start, after the first checkpoint,
during a fault, after a failover, and replaying a recording.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from colo_tui.tui.screens import BY_KEY, config_changes
from protocol.sim.config import SimConfig

SIZES = [(80, 24), (160, 48)]


def _app(**config) -> ColoApp:
    return ColoApp(Controller(SimConfig(**{"seed": 1, **config})))


async def _settle(pilot) -> None:
    pilot.app.bridge.changed()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_start(snap_compare, size) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_after_first_checkpoint(snap_compare, size) -> None:
    async def before(pilot) -> None:
        pilot.app.controller.run(checkpoints=1)
        await _settle(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_during_a_fault(snap_compare, size) -> None:
    async def before(pilot) -> None:
        c = pilot.app.controller
        c.run(until="fault")            # kill-primary@ram#1 fires
        c.step(2)
        await _settle(pilot)

    app = _app(**config_changes(BY_KEY["3"], 1))
    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_after_a_failover(snap_compare, size) -> None:
    async def before(pilot) -> None:
        pilot.app.controller.run()
        await _settle(pilot)

    app = _app(**config_changes(BY_KEY["3"], 1))
    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "lost-heartbeat.colo.jsonl"
    c = Controller(SimConfig(seed=1))
    c.record_start(str(path))
    c.run(checkpoints=1)
    c.lost_heartbeat("secondary")
    c.run()
    c.record_stop()
    return path


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_replaying_a_recording(snap_compare, size, recording: Path) -> None:
    async def before(pilot) -> None:
        await pilot.press(*["n"] * 24)
        await _settle(pilot)

    controller = Controller()
    controller.load_replay(str(recording))
    assert snap_compare(ColoApp(controller), terminal_size=size, run_before=before)
