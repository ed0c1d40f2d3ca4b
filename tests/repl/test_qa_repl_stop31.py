"""QA round (stop 31), the REPL: long prose broke mid-word at the terminal's edge
(`explain`, errors, notes); `replay /nonexistent` asked to discard the session
first; `--peer 0.0.0.0:PORT` listened on every interface without a word and said
the primary's VM ran before any QEMU had connected; a capture's mode was claimed."""
import os
import subprocess
import sys

import pytest

from colo_tui.repl import render
from colo_tui.repl.session import wrapped

pexpect = pytest.importorskip("pexpect")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(tmp_path) -> dict:
    return dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
                HOME=str(tmp_path), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")


def _spawn(tmp_path, *args, cols=120):
    return pexpect.spawn(sys.executable, ["-m", "colo_tui.repl", *args], cwd=ROOT,
                         env=_env(tmp_path), encoding="utf-8", timeout=30,
                         dimensions=(40, cols))


def test_wrapped_breaks_at_spaces_and_keeps_the_indent() -> None:
    text = "x" * 10 + " could not release yet are released now" + "\n  " + "word " * 30
    out = wrapped(text, 30)
    lines = out.split("\n")
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(out.split()) == " ".join(text.split())          # no word broken
    assert all(line.startswith("  ") for line in lines[2:])
    assert wrapped(text, None) == text                # a pipe, a file: as it was
    assert wrapped("/a/very/long/path/" * 5, 30) == "/a/very/long/path/" * 5


def _words_whole(screen: str, width: int) -> list[str]:
    import re
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")
    return [line for line in plain.split("\n") if len(line) > width]


def test_explain_and_errors_wrap_at_the_terminal_width(tmp_path) -> None:
    child = _spawn(tmp_path, cols=100)
    try:
        child.expect("colo>")
        child.sendline("step 5")
        child.expect("colo>")
        child.sendline("explain")
        child.expect(r"qemu: 00000001\.")
        shown = child.before
        child.expect("colo>")
        assert "Event 220" in shown
        assert not _words_whole(shown.split("Event 220", 1)[1], 100)
        # the explanation's lines end on whole words
        assert "colo-compare saw outputs diverge" in " ".join(shown.split())
        child.sendline("set checkpoint-delay abcdefghijklmnopqrstuvwxyz0123456789")
        child.expect("error:")
        child.expect("colo>")
        err = child.before
        assert "usage:" in err and not _words_whole(err, 100)
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_replay_of_a_missing_file_is_refused_before_the_question(tmp_path) -> None:
    child = _spawn(tmp_path)
    try:
        child.expect("colo>")
        child.sendline("step 3")
        child.expect("colo>")
        child.sendline("replay /nonexistent/x.colo.jsonl")
        i = child.expect([r"\[y/N\]", "cannot read recording"])
        assert i == 1, "asked to discard the session for a file that is not there"
        child.expect("colo>")
        child.sendline("status")                      # the session is still there
        child.expect("step 3")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_replay_of_a_readable_file_still_asks(tmp_path) -> None:
    from colo_tui.repl.session import _unreadable_replay
    rec = tmp_path / "r.colo.jsonl"
    rec.write_text("{}\n")
    assert _unreadable_replay(f"replay {rec}") is None
    assert "cannot read recording" in _unreadable_replay(f"replay {tmp_path / 'nope'}")
    assert _unreadable_replay("step 3") is None


def test_peer_on_all_interfaces_warns_and_waits(tmp_path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("status\n")
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl", "--peer", "0.0.0.0:0", "-f",
                        str(script)], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--peer 0.0.0.0:" in r.stderr and "binds all interfaces" in r.stderr
    primary = next(line for line in r.stdout.splitlines() if line.startswith("primary"))
    assert "vm running" not in primary and "waiting for a peer" in primary
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl", "--peer", "127.0.0.1:0", "-f",
                        str(script)], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert "binds all interfaces" not in r.stderr


def test_the_toolbar_claims_no_mode_for_a_capture() -> None:
    side = {"alive": True, "stalled": False, "state": "IDLE", "run_state": "running",
            "failover_state": "none", "checkpoint": 1}
    st = {"primary": side, "secondary": side, "step": 1, "dialect": "qemu",
          "mode": "periodic", "seed": 0, "seeded": False, "mode_known": False}
    text = render.toolbar_text(st, "paused")
    assert "periodic" not in text and "seed" not in text and "real capture" in text
    st["mode_known"] = True
    assert "qemu periodic" in render.toolbar_text(st, "paused")


def test_checkpoint_at_step_0_says_one_true_thing() -> None:
    """`checkpoint` before COLO has started printed 'P ignores the request: no
    checkpoint in state INIT' and then 'checkpoint requested; step or run to see it'."""
    from colo_tui.commands import execute
    from colo_tui.session.control import Controller
    res = execute(Controller(), "checkpoint")
    assert res.ok and "ignores the checkpoint request" in res.text, res.text
    assert "step or run to see it" not in res.text
    c = Controller()
    for _ in range(6):                  # COLO runs: the request is taken
        execute(c, "step")
    assert "checkpoint requested" in execute(c, "checkpoint").text


def test_a_capture_claims_no_mode_and_no_checked_invariants(tmp_path) -> None:
    """`replay` and `status` of an imported real capture named 'periodic mode, seed 0'
    (its header's defaults) and said 'invariants all hold' (none are checked on it)."""
    from colo_tui.commands import execute
    from colo_tui.session.control import Controller
    from tests.tui.test_capture_end import _capture
    c = Controller()
    res = execute(c, f"replay {_capture(tmp_path)}")
    assert res.ok and "a real capture" in res.text and "seed" not in res.text, res.text
    execute(c, "step")
    text = execute(c, "status").text
    assert "invariants not checked" in text and "all hold" not in text, text
    assert "periodic mode" not in text and "a real capture" in text, text


def test_replay_of_a_fifo_is_refused_before_the_question_without_blocking(tmp_path) -> None:
    """The check before the question opened the file: a FIFO with no writer blocked it
    (and the REPL) in open().  The shared regular-file check comes first."""
    from colo_tui.repl.session import _unreadable_replay
    fifo = tmp_path / "f.colo.jsonl"
    os.mkfifo(fifo)
    text = _unreadable_replay(f"replay {fifo}")
    assert text is not None and "not a regular file" in text and "FIFO" in text, text
