"""colo export's failures name what failed: a full standard output is not 'None'."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "recordings" / "happy-qemu-periodic.colo.jsonl"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("fmt", ["mermaid", "json"])
def test_a_full_standard_output_is_named(fmt):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "colo_tui", "export", str(GOLDEN),
                            "--to", fmt], stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=120, cwd=ROOT)
    assert r.returncode == 1
    assert "None" not in r.stderr and "Traceback" not in r.stderr
    assert "the standard output" in r.stderr and "No space left" in r.stderr
