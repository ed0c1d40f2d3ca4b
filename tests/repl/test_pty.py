"""One real interactive session through a pty: start, step, fault, record, run, quit."""
import os
import sys

import pytest

pexpect = pytest.importorskip("pexpect")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spawn_repl(tmp_path, **env_extra):
    """`colo repl` in a 160x40 pseudo-terminal, its data (history) under tmp_path."""
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", **env_extra)
    return pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=ROOT, env=env,
                         encoding="utf-8", timeout=30, dimensions=(40, 160))


def test_interactive_session(tmp_path):
    rec = tmp_path / "live.colo.jsonl"
    child = _spawn_repl(tmp_path)
    try:
        child.expect("colo>")
        child.sendline("step 3")
        child.expect("step 3,")
        child.expect("colo>")
        child.sendline("fault drop@vmstate-loaded#2")
        child.expect("armed")
        child.expect("colo>")
        child.sendline("kill nobody")               # an error does not end the REPL
        child.expect("error: kill: side must be")
        child.expect("colo>")
        child.sendline(f"record start {rec}")
        child.expect("recording to")
        child.expect("colo>")
        child.sendline("run")
        child.expect("the scenario has ended")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(r"\[y/N\]")                     # still recording: confirm
        child.sendline("y")
        child.expect("recording saved")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert os.path.exists(tmp_path / "data" / "colo-testbed" / "repl-history")
    from protocol.record import format as rf
    from protocol.record.replay import verify
    assert verify(rf.read(rec)).ok


def test_ctrl_c_ends_a_live_step_wait_at_once(tmp_path):
    # on live peers `step N` waits up to 10 s for N events; ctrl+c did nothing there
    # (the wait ran out its 10 s), while it pauses `run` at once
    import time
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl", "--transport", "tcp"],
                          cwd=ROOT, env=env, encoding="utf-8", timeout=30, dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("step 1000")                 # more than arrive: it waits
        child.expect("WAIT_READY → IDLE")            # COLO has started; nothing more comes
        time.sleep(0.5)
        sent = time.monotonic()
        child.sendintr()
        child.expect(r"paused; [\d,]+ +new events?", timeout=5)
        assert time.monotonic() - sent < 3
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def test_a_history_file_that_cannot_be_used_is_a_note_not_a_traceback(tmp_path):
    # a history path that cannot be read or written (here a directory; also another
    # user's file, a full disk) printed prompt_toolkit's "Unhandled exception in event
    # loop" traceback and "Press ENTER to continue..." at every prompt
    (tmp_path / "data" / "colo-testbed" / "repl-history").mkdir(parents=True)
    child = _spawn_repl(tmp_path, COLO_PAGER="0")
    try:
        child.expect("colo>")
        child.sendline("step 1")
        child.expect("history is not kept in")
        child.expect("step 1,")
        child.expect("colo>")
        child.sendline("step 1")
        child.expect("step 2,")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        assert "Unhandled exception" not in child.before
    finally:
        child.close()
    assert child.exitstatus == 0
