"""colo learn: the ways a learner leaves a lesson work and end the line they were on."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("word", ["quit", "exit", "q"])
def test_quit_at_a_your_turn_prompt_leaves(word):
    # 'quit' (the REPL's word, listed by `help` at the same prompt) was answered
    # 'this beat asks for: kill primary', again and again
    r = subprocess.run([sys.executable, "-m", "colo_tui", "learn", "failover-primary"],
                       input=f"\n{word}\nkill primary\n\n\n", capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "your turn, type: kill primary" in r.stdout
    assert "this beat asks for" not in r.stdout and "✓" not in r.stdout, r.stdout
