"""`colo repl --lab`: a command given while the pair still boots says how to wait for
it, and --help says so before anyone tries (no QEMU needed)."""
import subprocess
import sys

import pytest

from colo_tui.lab.feed import LabSettings, lab_feed
from protocol.errors import ColoError


def test_a_command_before_colo_runs_names_the_way_to_wait():
    feed = lab_feed(LabSettings())
    with pytest.raises(ColoError, match=r"still starting: .*`run until verdict` waits for it"):
        feed.command("kill", "primary")


def test_repl_help_says_to_begin_a_lab_script_with_run_until_verdict():
    out = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--help"],
                         capture_output=True, text=True, timeout=60,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    assert "begin a script with `run until verdict`" in " ".join(out.split())
