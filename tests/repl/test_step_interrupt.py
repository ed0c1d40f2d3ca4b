"""ctrl+c stops a long `step N` in a simulation, as it stops `run`. `step 1000000` on
a 10,000-checkpoint session (the guest model: about 25 s here) ran to its end
whatever was pressed; `run` said 'paused' at once."""
import os
import sys
import time

import pytest

from colo_tui.commands import execute
from colo_tui.commands.handlers import state_of
from colo_tui.session.control import Controller

pexpect = pytest.importorskip("pexpect")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ctrl_c_pauses_a_long_step(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl", "--checkpoints", "10000"],
                          cwd=ROOT, env=env, encoding="utf-8", timeout=20,
                          dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("set verbosity quiet")
        child.expect("colo>")
        child.sendline("step 1000000")
        child.expect("sends checkpoint-request")       # it is stepping
        time.sleep(0.5)
        sent = time.monotonic()
        child.sendintr()
        child.expect(r"paused; [\d,]+ new events?; step \d+", timeout=10)
        assert time.monotonic() - sent < 5
        assert "the scenario has ended" not in child.readline()
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_step_n_still_takes_n_steps():
    c = Controller()
    assert execute(c, "set checkpoints 100").ok
    assert execute(c, "step 123").ok and c.steps == 123
    assert not state_of(c).running
    text = execute(c, "step 1000000").text           # to the end, not 'paused'
    assert "the scenario has ended" in text and not text.startswith("paused")
