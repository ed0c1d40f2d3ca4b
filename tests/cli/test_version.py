"""One version string: the installed package's metadata, `colo --version`, and the
header of every file the tool writes (recordings, proxy logs, the fake QMP greeting)
carry `protocol.__version__`, so a user can tell which build wrote a recording."""
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import protocol
from protocol.record import format as rf
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_metadata_is_the_package_version():
    assert metadata.version("colo-testbed") == protocol.__version__
    assert protocol.TOOL == f"colo-testbed {protocol.__version__}"


def test_colo_version_prints_it():
    r = subprocess.run([sys.executable, "-m", "colo_tui", "--version"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == protocol.TOOL


def test_a_recording_header_names_the_version_that_wrote_it(tmp_path):
    cfg = SimConfig(checkpoints=1)
    sim = Simulation(cfg)
    sim.run()
    path = tmp_path / "one.colo.jsonl"
    rf.write(path, rf.make_header(cfg), sim.events)
    header = json.loads(next(x for x in path.read_text().splitlines() if not x.startswith("#")))
    assert header["tool"] == protocol.TOOL
