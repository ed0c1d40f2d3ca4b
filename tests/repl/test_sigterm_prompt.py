"""SIGTERM or SIGHUP at the REPL's prompt ends it without drawing the prompt again.
The guard's handler raised SystemExit inside prompt_toolkit's loop, whose last
redraw drew 'colo> ' once more: a stray prompt on the terminal after the REPL had
gone, below 'recording saved: PATH' when a recording was on."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.tcp._nodes import ROOT

pexpect = pytest.importorskip("pexpect")


@pytest.mark.parametrize(("sig", "recording"), [("SIGTERM", False), ("SIGTERM", True),
                                                ("SIGHUP", True)])
def test_a_signal_at_the_prompt_leaves_no_prompt(tmp_path, sig, recording):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(tmp_path / "data"),
               COLO_RECORDINGS_DIR=str(tmp_path / "recs"), TERM="xterm",
               PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=str(ROOT), env=env,
                          encoding="utf-8", timeout=30, dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("step 3")
        child.expect("step 3,")
        if recording:
            child.expect("colo>")
            child.sendline("record start")
            child.expect("recording to")
        child.expect("colo>")
        time.sleep(0.3)                     # the prompt is up, waiting for a line
        child.kill(getattr(signal, sig))
        child.expect(pexpect.EOF)
        tail = child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 128 + getattr(signal, sig)
    assert "colo>" not in tail, repr(tail)
    if recording:
        assert "recording saved: " in tail, repr(tail)
        (path,) = (tmp_path / "recs").glob("repl-*.colo.jsonl")
        assert "digest" in path.read_text().splitlines()[-1]      # complete
