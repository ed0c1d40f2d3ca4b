"""A recording made in the TUI replays identically in the REPL, and vice versa."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from colo_tui.commands import execute
from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from protocol.record import format as rf
from protocol.record.eventjson import to_json
from protocol.record.replay import verify
from protocol.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]


def _signature(events) -> list[tuple]:
    return [(e.seq, e.side, e.kind, sorted(e.payload().items())) for e in events]


async def test_tui_recording_replays_in_the_repl(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLO_RECORDINGS_DIR", str(tmp_path / "recordings"))
    app = ColoApp(Controller(SimConfig(seed=7, checkpoint_delay_ms=1000)))
    async with app.run_test(size=(120, 36)) as pilot:
        # h before the session ends (19 steps): an input after the end is refused
        await pilot.press("r", *["n"] * 10, "o", "h", *["n"] * 10, "r")
        await pilot.pause()
    [path] = list((tmp_path / "recordings").glob("*.colo.jsonl"))
    rec = rf.read(path)
    assert any(i["cmd"] == "lost-heartbeat" for i in rec.inputs)   # the TUI's input is kept
    assert verify(rec).ok
    repl = Controller()
    assert execute(repl, f"replay {path}").ok
    assert execute(repl, f"step {rec.stop_step}").ok
    assert _signature(repl.events) == _signature(app.controller.events)[:len(repl.events)]
    assert len(repl.events) == len(rec.events)


async def test_repl_recording_replays_in_the_tui(tmp_path: Path) -> None:
    path = tmp_path / "repl.colo.jsonl"
    # the fault before the session ends (19 steps): an input after the end is refused
    script = (f"set seed 3\nrecord start {path}\nstep 5\nfault kill-primary@ram#2\n"
              "run\nrecord stop\nquit\n")
    r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--checkpoints", "3"],
                       input=script, text=True, capture_output=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rec = rf.read(path)
    assert any(e["kind"] == "failover" for e in rec.events)        # the fault fired
    app = ColoApp(Controller())
    async with app.run_test(size=(120, 36)) as pilot:
        app.bridge.load_replay(str(path))
        await pilot.pause()
        for _ in range(400):
            if app.controller.finished:
                break
            await pilot.press("n")
        await pilot.pause()
    got = [to_json(e) for e in app.controller.events]
    want = rec.events
    assert len(got) == len(want)
    assert [(g["seq"], g["kind"], g.get("data")) for g in got] == \
        [(w["seq"], w["kind"], w.get("data")) for w in want]
