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


def _one_command(tmp_path, pager, command):
    """Run `command` in a REPL whose $PAGER is `pager`, then quit; the closed child."""
    child = _spawn(tmp_path, pager)
    try:
        child.expect("colo>")
        child.sendline(command)
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return child


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


@pytest.mark.parametrize("pager", ["no-such-pager-here", "/etc/hostname"])
def test_a_pager_that_cannot_run_leaves_the_text_on_the_screen(tmp_path, pager):
    # PAGER not found (or not executable): only "/bin/sh: 1: no-such-pager-here: not
    # found" showed, and the command's output was lost
    child = _spawn(tmp_path, pager)
    try:
        child.expect("colo>")
        child.sendline("legend")
        child.expect("Words and abbreviations")
        child.expect("docs/protocol.md")
        child.expect("the pager .* could not run")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_the_pager_gets_the_whole_text(tmp_path):
    out = tmp_path / "paged.txt"
    child = _one_command(tmp_path, f"cat > {out}", "legend")
    text = out.read_text()
    assert text.startswith("Symbols") and text.rstrip().endswith("(in the repository).")
    assert "could not run" not in child.before


@pytest.mark.parametrize("preset", [None, "-i"])
def test_less_keeps_the_text_on_the_screen_unless_told_otherwise(tmp_path, preset,
                                                                 monkeypatch):
    # less on the alternate screen took `help`'s list away as it quit, before the
    # command it was read for could be typed; LESS=FRX as git sets it, unless LESS is set
    if preset is None:
        monkeypatch.delenv("LESS", raising=False)
    else:
        monkeypatch.setenv("LESS", preset)
    seen = tmp_path / "less.txt"
    _one_command(tmp_path, f"cat >/dev/null; echo \"$LESS\" > {seen}", "help")
    assert seen.read_text().strip() == (preset or "FRX")
