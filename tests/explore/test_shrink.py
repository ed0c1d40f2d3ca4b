"""Shrinking with hypothesis: a failing world becomes a small recording plus the
`colo run` line that reproduces it."""
import os
import shlex
import subprocess
import sys
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from colo_tui.cli.core import _config
from colo_tui.cli.main import build_parser
from protocol.record import format as rf
from protocol.record.replay import verify
from protocol.sim import shrink, swarm
from protocol.sim.config import SimConfig
from tests.explore.bugs import BUGS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = int(os.environ.get("COLO_FUZZ_EXAMPLES", 60))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(st.integers(0, 2**40))
def test_the_command_line_gives_back_the_world(seed):
    cfg = swarm.draw(seed)
    line = shrink.run_command(cfg)
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert _config(args) == replace(cfg, max_time_ms=None)


def test_a_failure_shrinks_to_a_smaller_world_that_fails_the_same_way(monkeypatch,
                                                                        tmp_path):
    BUGS["filter_buffer_keeps_released"](monkeypatch)
    big = SimConfig(dialect="v11", mode="periodic", seed=7, checkpoints=9, guest="model",
                    ram_mib=64, workload="hot", xbzrle=True, checkpoint_delay_ms=733,
                    jitter_ms=40.0, load_ms=120.0, arbiter_ms=2600.0,
                    client_every_ms=25.0, liveness_checkpoints=2,
                    faults=["delay=300@vmstate-loaded#4", "kill-secondary@load#6"])
    assert swarm.failure_of(swarm.run_config(big)) == "client_history"
    res = shrink.shrink(big, max_examples=60)
    small = res["config"]
    assert res["shrunk"] and res["failure"] == "client_history"
    assert swarm.failure_of(swarm.run_config(small)) == "client_history"
    assert small.checkpoints < big.checkpoints and len(small.faults) < len(big.faults)
    assert not small.xbzrle and small.jitter_ms == 0 and small.load_ms == 0
    out = shrink.write_repro(small, str(tmp_path / "repro.colo.jsonl"), res["failure"])
    rec = rf.read(out["recording"])
    assert rec.config == small
    assert out["command"].startswith("colo run ") and "--mode periodic" in out["command"]
    text = (tmp_path / "repro.colo.jsonl").read_text()
    assert out["command"] in text
    assert verify(rec).ok                       # the bug is still in: it replays exactly


def test_a_config_that_does_not_fail_is_refused():
    import pytest
    with pytest.raises(ValueError, match="does not fail"):
        shrink.shrink(SimConfig(checkpoints=1))


def test_explore_prints_the_shrunk_reproducer(tmp_path):
    """End to end through the CLI with a bug injected in the process."""
    script = (
        "import sys, pytest\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from tests.explore.bugs import BUGS\n"
        "mp = pytest.MonkeyPatch(); BUGS['vmstate_size_without_eof'](mp)\n"
        "from colo_tui.cli.main import main\n"
        "sys.exit(main(['explore', '--swarm', '3', '--json']))\n"
    )
    recs = tmp_path / "recs"          # no --repro-dir: the recordings directory, not the cwd
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path,
                       env={**os.environ, "COLO_RECORDINGS_DIR": str(recs)})
    import json
    assert r.returncode == 1, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["violations_by_invariant"]["vmstate_size"] >= 1
    [s] = out["shrunk"]
    assert s["failure"] == "vmstate_size" and s["command"].startswith("colo run ")
    assert os.path.exists(s["recording"]) and os.path.dirname(s["recording"]) == str(recs)
    assert not list(tmp_path.glob("*.colo.jsonl"))
    assert rf.read(s["recording"]).header["seed"] == s["seed"]
