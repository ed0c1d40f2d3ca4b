"""Start-up: commands that need neither numpy nor Textual import neither (checked in a
fresh interpreter through sys.modules), and `colo bench sim` times CPU, not wall."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.bench import sim as bench_sim

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "textual", "prompt_toolkit", "uvloop", "msgspec")

_PROBE = """
import sys
sys.argv = ["colo", *sys.argv[1:]]
from colo_tui.cli import main as cli
try:
    code = cli.main()
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\n#MODULES", " ".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
print("#CODE", code, file=sys.stderr)
"""


def loaded(*argv: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    lines = r.stderr.splitlines()
    code = next(ln for ln in lines if ln.startswith("#CODE")).split()[1]
    assert code in ("0", "None"), r.stderr
    return set(next(ln for ln in lines if ln.startswith("#MODULES")).split()[1:])


@pytest.fixture(scope="module")
def null_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("null")
    rec = d / "null.colo.jsonl"
    subprocess.run([sys.executable, "-m", "colo_tui", "run", "--guest", "null", "--checkpoints",
                    "2", "--record", str(rec), "--dump-wire", str(d)], cwd=ROOT, check=True,
                   timeout=120,
                   capture_output=True)
    return rec, d / "primary_to_secondary.bin"


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["faults"]])
def test_the_light_commands_import_no_heavy_module(argv):
    assert loaded(*argv) == set()


def test_decode_run_and_replay_of_the_null_guest_import_no_ui(null_files):
    rec, wire = null_files
    for argv in (["decode", "--initial", "--from", "primary", str(wire)],
                 ["run", "--guest", "null", "--checkpoints", "2"], ["replay", str(rec)]):
        # (a recording is read through its msgspec schema: replay and run --record need it)
        assert not loaded(*argv) & {"textual", "prompt_toolkit"}, argv


def test_decode_run_and_replay_of_the_null_guest_import_no_numpy(null_files):
    rec, wire = null_files
    for argv in (["decode", "--initial", "--from", "primary", str(wire)],
                 ["run", "--guest", "null", "--checkpoints", "2"], ["replay", str(rec)]):
        assert "numpy" not in loaded(*argv), argv


def test_bench_sim_times_cpu_not_wall(monkeypatch, capsys):
    """A loaded machine stretches wall time (here: 100 s between any two readings of
    the wall clock); the reported rates must not move."""
    wall = iter(range(0, 10**9, 100))
    monkeypatch.setattr(bench_sim.time, "perf_counter", lambda: float(next(wall)))
    monkeypatch.setattr(bench_sim.time, "monotonic", lambda: float(next(wall)))
    assert bench_sim.main(["--rounds", "2", "--checkpoints", "300", "--no-matrix",
                           "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["simulator_checkpoints_per_s"]
    assert s["value"] > 100 and s["baseline"] > 1000        # real rates: µs, not 100 s
    assert s["timing"] == "CPU time, best of 2" and s["value"] >= s["median"]
