"""The terminal closes under the app (the pty's other end goes away; the kernel
sends the app, its session leader, SIGHUP and SIGCONT): it exits 128 + SIGHUP,
its recording complete.  It exited 1: printing 'recording saved' to the closed
terminal raised ('lost sys.stderr')."""
from __future__ import annotations

import os
import signal
import sys

import pytest

from tests._pty import assert_complete_recording, run_then_close
from tests.tui._term import ROOT

STEPS = [(None, b"press n"), (b"r", b"recording to"),
         (b"nnn ", b"running")]               # running: it draws all the time


@pytest.mark.parametrize("controlling, status", [(True, 128 + signal.SIGHUP), (False, 1)],
                         ids=["sighup", "no-sighup"])
def test_a_closed_terminal_ends_the_app_with_a_complete_recording(tmp_path, controlling,
                                                                  status):
    """The app's controlling terminal closes: SIGHUP, exit 129.  A terminal that is not
    its controlling one (as under nohup) sends no SIGHUP: the app ran on for ever, its
    input thread spinning on the closed terminal at 100 % CPU, the recording never
    completed; a refused write now ends it, exit 1."""
    env = dict(os.environ, TERM="xterm-256color", COLO_RECORDINGS_DIR=str(tmp_path))
    got = run_then_close([sys.executable, "-m", "colo_tui.cli.tui"], ROOT, env, STEPS,
                         cols=120, rows=40, controlling=controlling, settle_s=0.3)
    assert got == status
    assert_complete_recording(tmp_path, "tui-*.colo.jsonl")
