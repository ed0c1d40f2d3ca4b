"""`run N` on live peers ends after N checkpoints have committed on the primary, as
its help says and as in a simulation. It counted every stepped commit, and the
secondary's comes first (it commits, then sends vmstate-loaded): `run 1` on
`--transport tcp` ended with 'primary WAIT_RECEIVED ...; checkpoint 0'."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.tcp._nodes import ROOT


def test_run_1_ends_with_the_primary_at_checkpoint_1():
    script = "set checkpoint-delay 100\nset verbosity quiet\nrun 1\nrun 2\n"
    p = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--transport", "tcp"],
                       input=script, capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr
    ends = re.findall(r"new events?; step \d+, .*; checkpoint (\d+)", p.stdout)
    assert ends == ["1", "3"], p.stdout[-2000:]
