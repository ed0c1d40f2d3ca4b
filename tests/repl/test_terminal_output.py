"""The interactive REPL in a real terminal: colour by event kind (not with
NO_COLOR), and output taller than the terminal through a pager."""
import os
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
ROOT = Path(__file__).resolve().parents[2]


def _spawn(tmp_path, **env):
    full = dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(tmp_path / "data"),
                TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", **env)
    full.pop("NO_COLOR", None)
    full.update(env)
    return pexpect.spawn(sys.executable, ["-m", "colo_tui.repl", "--guest", "null"],
                         cwd=str(ROOT), env=full, encoding="utf-8", timeout=30,
                         dimensions=(20, 120))


def test_events_are_coloured_in_a_terminal(tmp_path):
    child = _spawn(tmp_path, COLO_PAGER="0")
    try:
        child.expect("colo>")
        child.sendline("step 6")
        child.expect("\x1b\\[36m[^\x1b]*checkpoint-ready")
        child.expect("colo>")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_no_color_means_no_colour(tmp_path):
    child = _spawn(tmp_path, NO_COLOR="1", COLO_PAGER="0")
    try:
        child.expect("colo>")
        child.sendline("step 6")
        child.expect("checkpoint-ready")
        seen = child.before
        child.expect("new event")
        seen += child.before
        assert "\x1b[36m" not in seen
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_long_output_goes_through_the_pager(tmp_path):
    pager = tmp_path / "pager.sh"
    pager.write_text("#!/bin/sh\necho PAGED-START\ncat\necho PAGED-END\n")
    pager.chmod(0o755)
    child = _spawn(tmp_path, PAGER=str(pager))
    try:
        child.expect("colo>")
        child.sendline("help")                       # ~25 lines in a 20-row terminal
        child.expect("PAGED-START")
        child.expect("quit")
        child.expect("PAGED-END")
        child.expect("colo>")
        child.sendline("status")                     # short: printed as it is
        child.expect("session")
        child.expect("colo>")
        assert "PAGED-START" not in child.before
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
