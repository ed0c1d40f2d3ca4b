"""The REPL's history file at a path that is not a regular file, or in a data folder
that cannot be made: a note, and the history kept in memory. prompt_toolkit reads the
whole history file in a thread: a FIFO there blocked every key and the exit, and a
link to /dev/zero (or /dev/full) filled memory at gigabytes a second."""
import os
import sys

import pytest

pexpect = pytest.importorskip("pexpect")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _session(data_home: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=data_home, TERM="xterm",
               PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=ROOT, env=env,
                          encoding="utf-8", timeout=15, dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("step 1")
        child.expect("step 1,")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        text = child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    return text


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_history_path_that_is_not_a_regular_file_is_not_read(tmp_path, kind):
    folder = tmp_path / "data" / "colo-testbed"
    folder.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(folder / "repl-history")
    else:
        os.symlink("/dev/zero", folder / "repl-history")
    _session(str(tmp_path / "data"))        # (before: a timeout, the REPL never answered)


def test_a_data_folder_that_cannot_be_made_is_a_note(tmp_path):
    # the history was silently kept in memory only
    (tmp_path / "data").write_text("a file where the data folder should be")
    child_text = ""
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_DATA_HOME=str(tmp_path / "data"),
               TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLO_PAGER="0")
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=ROOT, env=env,
                          encoding="utf-8", timeout=15, dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("step 1")
        child.expect("history is not kept in")
        child.expect("Not a directory")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child_text = child.before
    finally:
        child.close(force=True)
    assert "Traceback" not in child_text
