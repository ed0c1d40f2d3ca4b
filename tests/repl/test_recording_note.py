"""A recording the readers refuse by default (a session of more checkpoints than
COLO_MAX_CHECKPOINTS, 1000: `set checkpoints 5000` is allowed, up to 10,000) names
the setting that reads it back however the REPL's recording ends. `record stop` and a
script's end said so; `quit` (and exit, ctrl+d), a `set` or `replay` that stops the
recording, and SIGTERM said only 'recording saved: PATH', and `colo replay PATH`
then failed."""
import os
import signal
import sys

import pytest

from colo_tui.commands import execute
from colo_tui.session.control import Controller

NOTE = "COLO_MAX_CHECKPOINTS=5000"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _readers_take_2000(monkeypatch):
    """The readers' default COLO_MAX_CHECKPOINTS (10,000) takes the longest interactive
    session: below it, a 5,000-checkpoint session is beyond them again."""
    monkeypatch.setenv("COLO_MAX_CHECKPOINTS", "2000")


def _recording(tmp_path) -> Controller:
    c = Controller()
    for line in ("set checkpoints 5000", "fault delay=5@vmstate-loaded#9",
                 f"record start {tmp_path / 'r.colo.jsonl'}", "step 3"):
        assert execute(c, line).ok
    return c


@pytest.mark.parametrize("line", ["quit", "exit", "record stop", "set seed 2",
                                  "set load-ms 5", "faults clear",
                                  "replay recordings/happy-qemu-periodic.colo.jsonl"])
def test_every_command_that_stops_the_recording_names_the_setting(tmp_path, line,
                                                                   monkeypatch):
    monkeypatch.chdir(ROOT)
    res = execute(_recording(tmp_path), line)
    assert res.ok, res.text
    assert "saved: " in res.text and NOTE in res.text, res.text


def test_a_recording_within_the_limits_has_no_note(tmp_path):
    c = Controller()
    assert execute(c, f"record start {tmp_path / 'r.colo.jsonl'}").ok
    assert "note" not in execute(c, "quit").text


def test_sigterm_names_the_setting(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl", "--checkpoints", "5000"],
                          cwd=ROOT, env=env, encoding="utf-8", timeout=20,
                          dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline(f"record start {tmp_path / 'r.colo.jsonl'}")
        child.expect("recording to")
        child.expect("colo>")
        child.kill(signal.SIGTERM)
        child.expect("recording saved: ")
        child.expect(f"note: .*{NOTE}")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
