"""A standard output that cannot be written (a full disk: /dev/full) is one line and
exit 1, not a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "recordings" / "happy-qemu-periodic.colo.jsonl"
RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1"

COMMANDS = [
    ["run", "--guest", "null"],
    ["run", "--guest", "null", "--json"],
    ["explore", "--guest", "null", "--dialect", "v11"],
    ["compare-modes", "--checkpoints", "1"],
    ["faults"],
    ["learn", "--list"],
    ["replay", str(GOLDEN), "--json"],
]
if (RUN1 / "secondary_to_primary.bin").exists():
    COMMANDS.append(["decode", "--from", "secondary", str(RUN1 / "secondary_to_primary.bin")])


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_full_standard_output_is_one_line_not_a_traceback(argv, tmp_path):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "colo_tui", *argv], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=300, cwd=ROOT,
                           env={**os.environ,
                                "COLO_RECORDINGS_DIR": str(tmp_path)})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert r.stderr.strip() == f"colo {argv[0]}: error: cannot write the standard " \
                               "output: No space left on device", r.stderr
