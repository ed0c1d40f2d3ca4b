"""Output taller than the terminal goes through $PAGER; the REPL outlives what
happens there."""
import os
import sys
import time

import pytest

pexpect = pytest.importorskip("pexpect")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: a pager that reads its input, says so and stays a while, deaf to ctrl+c (as less is)
SLOW_PAGER = (f"{sys.executable} -c \"import signal, sys, time; "
              "signal.signal(signal.SIGINT, signal.SIG_IGN); sys.stdin.read(); "
              "print('PAGER-HAS-IT', flush=True); time.sleep(1.5)\"")


def _spawn(tmp_path, pager):
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", PAGER=pager)
    env.pop("COLO_PAGER", None)
    return pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=ROOT, env=env,
                         encoding="utf-8", timeout=20, dimensions=(20, 120))


def test_ctrl_c_in_the_pager_does_not_end_the_repl(tmp_path):
    # ctrl+c while `legend` paged through less, then q: the REPL had exited (130)
    child = _spawn(tmp_path, SLOW_PAGER)
    try:
        child.expect("colo>")
        child.sendline("legend")
        child.expect("PAGER-HAS-IT")
        time.sleep(0.2)
        child.sendintr()
        child.expect("colo>")
        child.sendline("step 1")
        child.expect("step 1,")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
