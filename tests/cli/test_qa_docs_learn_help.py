"""`colo learn --help` names every lesson's topic, as README's `colo learn` row does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_learn_help_names_the_reprotect_lesson():
    # the description listed nine topics; `colo learn --list` has ten (reprotect)
    r = subprocess.run([sys.executable, "-m", "colo_tui", "learn", "--help"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "re-protect" in text, text
    from colo_tui.commands.lessons import LESSONS
    assert "reprotect" in [lesson.name for lesson in LESSONS]
