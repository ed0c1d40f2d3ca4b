"""Several lines pasted at once into the interactive REPL. A terminal's bracketed
paste hands prompt_toolkit the lines as one input, and the REPL ran them as one
command: 'error: step: unexpected extra words: 'step 1 status ...''. Each line now
runs in turn, as in a script; a failing line stops the rest, and says so."""
import os
import sys

import pytest

pexpect = pytest.importorskip("pexpect")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START, END = "\x1b[200~", "\x1b[201~"     # bracketed paste, as xterm, tmux, VTE send it


def _spawn(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    return pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=ROOT, env=env,
                         encoding="utf-8", timeout=20, dimensions=(40, 160))


def test_pasted_lines_run_one_by_one(tmp_path):
    child = _spawn(tmp_path)
    try:
        child.expect("colo>")
        child.send(START + "step 1\nstep 1   # a comment\n\nstatus\n" + END)
        child.send("\r")
        child.expect("step 1,")
        child.expect("step 2,")
        child.expect("invariants all hold")
        child.expect("colo>")
        assert "extra words" not in child.before
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_a_failing_pasted_line_stops_the_rest(tmp_path):
    child = _spawn(tmp_path)
    try:
        child.expect("colo>")
        child.send(START + "step 1\nkill nobody\nstep 1\nstep 1\n" + END)
        child.send("\r")
        child.expect("step 1,")
        child.expect("error: kill: side must be")
        child.expect(r"\(2 more pasted lines not run, from 'step 1' on\)")
        child.expect("colo>")
        child.sendline("status")
        child.expect(r"step 1, t=")               # the two later steps did not run
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
