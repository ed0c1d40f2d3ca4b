"""`colo lab --keep` names the directory it keeps, however the lab ends: the
headless report never said where it was (only --json's "work" did), and a lab
that failed to start kept it without a word.  Runs without QEMU: a PATH with no
tools makes the lab fail at once, after the work directory was made."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra", [[], ["--pair-fault", "kill-primary@checkpoint-request"]],
                         ids=["session", "pair-fault"])
def test_keep_names_the_kept_directory_when_the_lab_fails(tmp_path, extra):
    bare = tmp_path / "bin"
    bare.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PATH=str(bare), TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "colo_tui", "lab", "--headless", "--keep",
                          "--net", "user", *extra], capture_output=True, text=True,
                         timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stderr
    kept = list(tmp.glob("colo-lab-*"))
    assert len(kept) == 1, kept
    assert f"work directory kept: {kept[0]}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
