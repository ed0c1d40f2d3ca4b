"""The terminal closes under the REPL at its prompt (the pty's other end goes away;
the kernel sends the REPL, its session leader, SIGHUP): it exits 128 + SIGHUP, its
recording complete.  It exited 1: prompt_toolkit's last redraw on the closed
terminal raised OSError, a traceback to nobody."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from tests._pty import assert_complete_recording, run_then_close

ROOT = Path(__file__).resolve().parents[2]


def test_a_closed_terminal_ends_the_repl_with_129_and_a_complete_recording(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
               COLO_RECORDINGS_DIR=str(tmp_path / "recs"),
               XDG_DATA_HOME=str(tmp_path / "data"), COLO_PAGER="0")
    steps = [(None, b"colo>"), (b"record start\r", b"recording to"), (None, b"colo>"),
             (b"step 3\r", b"step 3,"), (None, b"colo>")]
    status = run_then_close([sys.executable, "-m", "colo_tui.repl"], ROOT, env, steps,
                            cols=160, rows=40)   # the REPL leads a session on the pty
    assert status == 128 + signal.SIGHUP
    assert_complete_recording(tmp_path / "recs", "repl-*.colo.jsonl")
