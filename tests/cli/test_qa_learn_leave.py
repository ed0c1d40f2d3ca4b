"""colo learn: the ways a learner leaves a lesson work and end the line they were on."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
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


def test_ctrl_c_at_a_prompt_ends_the_line_and_the_lesson():
    p = subprocess.Popen([sys.executable, "-m", "colo_tui", "learn", "anatomy"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        seen = b""
        while b"(Enter)" not in seen and time.monotonic() < deadline:
            seen += p.stdout.read1(4096)
        p.send_signal(signal.SIGINT)           # waiting at the prompt, stdin still open
        rest, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    out, err = (seen + rest).decode(), err.decode()
    assert p.returncode == 130, (p.returncode, err)
    assert "Traceback" not in err, err
    assert out.endswith("(Enter)\n\n(left the lesson)\n"), repr(out[-80:])
