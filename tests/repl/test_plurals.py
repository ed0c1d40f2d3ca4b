"""The REPL's counts agree with their nouns ('1 flush', '253 new events'): it said
'event(s)', 'page(s)', 'flush(es)' everywhere, whatever the count."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """step 1
step 2
run 1
show ram
show packets
show disk
set verbosity quiet
step 5
back 2
replay recordings/happy-qemu-periodic.colo.jsonl
"""


def test_counts_agree_with_their_nouns(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLO_RECORDINGS_DIR=str(tmp_path),
               XDG_DATA_HOME=str(tmp_path / "data"))
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"], input=SCRIPT, text=True,
                       cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "(s)" not in out and "(es)" not in out, out
    assert "253 new events; step 9" in out
    assert "1 flush, 0 discards" in out            # one flush: singular
    assert "events not shown at verbosity quiet" in out
    assert "later inputs will be re-applied" in out or "back from step" in out
    assert " inputs, " in out and " events; step or run to replay it" in out
