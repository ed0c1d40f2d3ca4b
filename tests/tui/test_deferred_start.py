"""`colo tui` paints its layout before it builds the simulator's session (ColoApp's
`start`): the first frame needs neither numpy nor the guest model nor the
simulator, the session follows at once, a key pressed before it starts it, a
user error building it ends the app with its message, and the session guard
closes the session that was built (or nothing, if none was)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from colo_tui.session.control import Controller
from colo_tui.session.lifecycle import SessionGuard
from colo_tui.tui.app import ColoApp
from colo_tui.tui.widgets import StatusBar
from protocol.errors import ColoError
from protocol.record import format as rf
from protocol.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]

#: `colo tui` as a user starts it (no arguments), headless: at the first frame it
#: notes which heavy modules are loaded (the lower half's too: it mounts after that
#: frame) and whether the collector runs; then it waits for the session and prints
#: what the app shows
_CHILD = r"""
import gc, json, os, sys
from textual.app import App
HEAVY = ("numpy", "protocol.guest.model", "protocol.sim.core", "colo_tui.session.control",
         "colo_tui.tui.bridge", "colo_tui.tui.widgets.event_log")
_run = App.run
def run(self, *args, **kwargs):
    display, seen = self._display, []
    def hook(screen, renderable):
        if renderable is not None and not self._batch_count and not seen:
            seen.append([m for m in HEAVY if m in sys.modules])
            status = str(self.query_one("#status").render())
            seen.append(status)
            seen.append(gc.isenabled())
        display(screen, renderable)
    self._display = hook
    async def pilot(p):
        for _ in range(3000):
            if self._bridge is not None and self.query("#log"):
                break
            await p.pause(0.005)
        await p.pause()
        out = {"at_first_frame": seen[0], "first_status": seen[1],
               "status": str(self.query_one("#status").render()),
               "events": len(self.controller.events), "gc": list(gc.get_threshold()),
               "collecting_at_first_frame": seen[2], "collecting": gc.isenabled()}
        os.write(1, (json.dumps(out) + "\n").encode())
        self.exit()
    kwargs.update(headless=True, size=(100, 30), auto_pilot=pilot)
    return _run(self, *args, **kwargs)
App.run = run
import colo_tui.cli.tui
colo_tui.cli.tui.has_terminal = lambda: True      # headless: no terminal needed
from colo_tui.cli.main import main
sys.exit(main([]))
"""


def test_colo_tui_paints_before_it_builds_the_session(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-c", _CHILD], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["at_first_frame"] == [], out            # none of them before the first frame
    assert "starting the session" in out["first_status"]
    assert "qemu · periodic · seed 1" in out["status"], out     # then the session itself
    assert "paused" in out["status"] and out["events"] == 0    # at step 0, as before
    from protocol.drivers.memtune import GC_THRESHOLDS
    assert tuple(out["gc"]) == tuple(GC_THRESHOLDS)          # tuned with the session
    # no cyclic collection during start-up; the collector runs again after the first frame
    assert out["collecting_at_first_frame"] is False and out["collecting"] is True, out


def _start_counting(calls: list, config=None):
    def start():
        calls.append("start")
        return Controller(config or SimConfig(seed=3))
    return start


async def test_the_session_starts_after_the_first_frame():
    calls, started = [], []
    app = ColoApp(start=_start_counting(calls), on_start=started.append)
    assert app.controller is None and calls == []
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert calls == ["start"] and started == [app.controller]
        assert "seed 3" in str(app.query_one(StatusBar).render())
        await pilot.press("n", "n")
        await pilot.pause()
        assert app.controller.steps >= 2
    assert calls == ["start"]                          # once


async def test_a_key_before_the_session_starts_it_first():
    calls = []
    app = ColoApp(start=_start_counting(calls))
    async with app.run_test(size=(100, 30)) as pilot:
        # before the first refresh's callbacks ran: run the key's action at once
        await app.run_action("step")
        assert calls == ["start"] and app.controller.steps == 1
        await pilot.pause()
        assert calls == ["start"] and app.controller.steps == 1   # not started again


async def test_slash_before_the_lower_half_mounts_is_no_crash():
    # '/' pressed as colo tui opened (the log filter not mounted yet) ended the app
    # with a NoMatches traceback ('#log-filter'), seen in tmux with keys typed early
    app = ColoApp(start=_start_counting([]))
    async with app.run_test(size=(100, 30)) as pilot:
        await app.run_action("filter")                  # before the lazy mount
        await pilot.pause()
        assert app.is_running
        await pilot.press("slash")                       # mounted now: it focuses
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "log-filter"


class _Refused(ColoError, ValueError):
    pass


async def test_a_user_error_building_the_session_ends_the_app_with_its_message():
    def start():
        raise _Refused("no such thing: the session cannot start")
    app = ColoApp(start=start)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("n")                          # nothing to step: no crash
    assert app.return_code == 1
    assert app.controller is None


def test_the_guard_closes_the_session_that_was_built_or_nothing(tmp_path):
    guard = SessionGuard(None, signals=())
    with guard:
        pass
    assert guard.finish() is None                      # nothing started, nothing to close

    c = Controller(SimConfig(seed=2))
    c.record_start(str(tmp_path / "s.colo.jsonl"))
    c.step(10)
    guard = SessionGuard(None, signals=())
    with guard:
        guard.controller = c                           # what ColoApp's on_start does
    rec = rf.read(tmp_path / "s.colo.jsonl")           # complete: its stop and digest
    assert rec.stop_step == 10 and len(rec.events) == len(c.events)
