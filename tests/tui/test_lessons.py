"""Lessons and presets keep their promises: each runs to its end, and what it
says will happen happens."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.commands.lessons import BY_NAME, LESSONS, LessonRun, matches
from colo_tui.session.control import Controller
from colo_tui.tui.app import ColoApp
from colo_tui.tui.screens.presets import PRESETS, config_changes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: x.name)
def test_every_lesson_keeps_its_promises(lesson) -> None:
    run = LessonRun(lesson, Controller())
    run.start()
    while not run.done:
        if run.waiting_for_learner():
            assert run.act().ok
        run.advance()
    assert run.broken_promises() == []


def test_a_lesson_waits_for_the_learner_and_refuses_other_changes() -> None:
    run = LessonRun(BY_NAME["failover-primary"], Controller())
    run.start()
    run.advance()
    assert run.waiting_for_learner()
    with pytest.raises(ValueError, match="kill primary"):
        run.advance()
    assert not run.act("kill secondary").ok                 # would spoil the lesson
    assert run.act("status").ok and run.waiting_for_learner()   # looking is fine
    assert run.act("kill primary").ok and not run.waiting_for_learner()


def test_a_lesson_that_does_not_show_its_promise_says_so() -> None:
    run = LessonRun(BY_NAME["relaunch"], Controller())
    run.start()
    while not run.done:                 # never arms the fault: no relaunch can happen
        run.acted = True
        run.advance()
    assert any("relaunch" in p for p in run.broken_promises())


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: f"{p.key}-{p.title}")
def test_every_preset_shows_what_it_describes(preset) -> None:
    c = Controller()
    c.restart(**config_changes(preset, 1))
    c.run()
    assert preset.shows, "a preset promises something"
    for m in preset.shows:
        assert any(matches(e, m) for e in c.events), m
    if preset.outcome:
        assert c.status()["outcome"] == preset.outcome


async def test_the_app_runs_a_lesson_with_the_learner_acting() -> None:
    app = ColoApp(Controller())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("L")
        await pilot.pause()
        names = [x.name for x in LESSONS]
        await pilot.press(*["down"] * names.index("failover-primary"), "enter")
        await pilot.pause()
        assert "The primary dies" in app.bridge.view().explanation
        await pilot.press("n")                      # beat 1: a checkpoint commits
        await pilot.pause()
        await pilot.press("n")                      # beat 2 waits for the learner
        await pilot.pause()
        assert "your turn: kill primary" in app.bridge.notice
        await pilot.press("k")                      # the primary is selected
        await pilot.press("n", "n")
        await pilot.pause()
        assert "✓" in app.bridge.view().explanation
        assert app.controller.status()["outcome"] == "failover"


def test_colo_learn_in_the_terminal() -> None:
    r = subprocess.run([sys.executable, "-m", "colo_tui", "learn", "relaunch"],
                       input="\nfault drop@ram\nfault kill-primary@load#1\n\n\n\n",
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "this beat asks for: fault kill-primary@load#1" in r.stdout
    assert "✓" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "colo_tui", "learn", "nope"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "no lesson 'nope'" in bad.stderr
