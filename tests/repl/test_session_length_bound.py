"""An interactive session keeps every event (time travel, the log, the ladder): its
length is bounded, so memory is.  `--checkpoints 1000000` in the TUI or the REPL, or
`set checkpoints 1000000`, would have kept about 150 GB of events with the guest
model (150 KB a checkpoint); a fault planned far ahead lengthens a session to reach
it, so it is bounded too."""
import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.commands.parser import CommandError, parse
from colo_tui.commands.registry import REGISTRY
from colo_tui.session.control import Controller
from colo_tui.session.options import INTERACTIVE_MAX_CHECKPOINTS
from protocol.core.session import SessionError
from protocol.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]
TOO_LONG = INTERACTIVE_MAX_CHECKPOINTS + 1


def _repl(*args, script: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--guest", "null",
                           *args], input=script, text=True, capture_output=True,
                          timeout=120, cwd=ROOT)


def test_the_command_line_refuses_a_longer_session():
    r = _repl("--checkpoints", str(TOO_LONG))
    assert r.returncode == 2 and f"between 1 and {INTERACTIVE_MAX_CHECKPOINTS:,}" in r.stderr
    assert "Traceback" not in r.stderr


def test_set_checkpoints_refuses_it_and_takes_the_bound():
    with pytest.raises(CommandError, match=f"between 1 and {INTERACTIVE_MAX_CHECKPOINTS:,}"):
        parse(f"set checkpoints {TOO_LONG}", REGISTRY)
    c = Controller(SimConfig(checkpoints=4, guest="null"))
    c.restart(checkpoints=INTERACTIVE_MAX_CHECKPOINTS)
    assert c.config.checkpoints == INTERACTIVE_MAX_CHECKPOINTS


def test_a_session_or_a_fault_beyond_the_bound_is_refused_and_nothing_changes():
    with pytest.raises(SessionError, match="colo run"):
        Controller(SimConfig(checkpoints=TOO_LONG, guest="null"))
    c = Controller(SimConfig(checkpoints=4, guest="null"))
    with pytest.raises(SessionError, match=f"checkpoint {TOO_LONG:,}"):
        c.add_fault(f"kill-primary@vmstate-send#{TOO_LONG}")
    with pytest.raises(SessionError):
        c.restart(checkpoints=TOO_LONG)
    assert c.faults() == [] and c.config.checkpoints == 4
    c.add_fault(f"kill-primary@vmstate-send#{INTERACTIVE_MAX_CHECKPOINTS}")
    assert c.faults() == [f"kill-primary@vmstate-send#{INTERACTIVE_MAX_CHECKPOINTS}"]


def test_the_repl_says_why_and_points_at_colo_run():
    r = _repl(script=f"fault kill-primary@ram#{TOO_LONG}\n")
    assert r.returncode == 1 and "colo run" in r.stderr and "Traceback" not in r.stderr
