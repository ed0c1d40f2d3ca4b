"""Inputs given after a simulated session has ended, in the REPL and the palette (the
one command registry over the Controller). Stepping stops at the end, so such an
input was never seen to happen: `checkpoint` had the primary send checkpoint-request,
then the simulator finished again at once ('every checkpoint committed') with the
request in flight for good; `kill` played a whole failover past the end. The
Controller now refuses them (SessionEnded), saying what still works: back (an input
there forks the future), reprotect after a failover, a new session. The TUI's keys
say the same refusal in their words (tests/tui/test_inputs_after_the_end.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.commands import execute
from colo_tui.session.control import Controller, SessionEnded
from protocol.record import format as rf
from protocol.record.replay import verify
from protocol.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]

INPUTS = ["checkpoint", "kill primary", "stall secondary", "heartbeat primary",
          "failover secondary", "fault drop@vmstate-loaded#5", "set checkpoint-delay 500"]


def _ended(**config) -> Controller:
    c = Controller(SimConfig(**{"seed": 1, "checkpoints": 2, **config}))
    assert execute(c, "run").ok
    assert c.finished
    return c


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"),
                XDG_DATA_HOME=str(tmp_path / "data"),
                COLO_RECORDINGS_DIR=str(tmp_path / "recs"))


@pytest.mark.parametrize("line", INPUTS)
def test_an_input_after_the_end_is_refused_and_says_why(line) -> None:
    c = _ended()
    events, status = len(c.events), c.status()
    res = execute(c, line)
    assert not res.ok
    name = line.split()[0]
    assert res.text.startswith(f"{name}: the session has ended (ok); back [N] = step back "
                               "(an input there forks the future)"), res.text
    assert "set seed S = a new session" in res.text and "reprotect" not in res.text
    assert len(c.events) == events and c.inputs == [] and c.status() == status
    assert c.finished and execute(c, "status").ok


def test_shutdown_after_the_end_is_refused_too() -> None:
    c = _ended()                       # (no command: the Controller's own input)
    with pytest.raises(SessionEnded, match=r"the session has ended \(ok\)"):
        c.shutdown()
    assert c.inputs == []


def test_a_checkpoint_after_the_end_leaves_no_request_in_flight() -> None:
    c = _ended()
    execute(c, "checkpoint")
    st = c.status()["primary"]
    assert st["state"] == "IDLE" and not st["in_flight"]
    assert sum(e.kind == "end" for e in c.events) == 1


def test_after_a_failover_reprotect_is_named_and_still_works() -> None:
    c = _ended(faults=["kill-primary@ram#1"])
    assert c.outcome() == "failover"
    res = execute(c, "checkpoint")
    assert not res.ok and "(failover)" in res.text and "reprotect = COLO again" in res.text
    res = execute(c, "reprotect")
    assert res.ok, res.text
    assert not c.finished
    assert execute(c, "checkpoint").ok       # a session again: inputs are taken


def test_reprotect_after_an_ok_end_keeps_its_own_reason() -> None:
    c = _ended()
    res = execute(c, "reprotect")
    assert not res.ok and "the session has ended" not in res.text


def test_back_then_an_input_forks_the_future_as_before() -> None:
    c = _ended()
    assert execute(c, "back 3").ok and not c.finished
    res = execute(c, "checkpoint")
    assert res.ok, res.text
    assert c.inputs[-1]["cmd"] == "checkpoint"
    assert execute(c, "run").ok and c.finished
    assert not c.status()["primary"]["in_flight"]


def test_a_fault_this_dialect_cannot_have_is_told_the_session_ended_first() -> None:
    # guest-shutdown is a v11 message; the qemu dialect's check came first, as if the
    # fault could be armed once the spec were right
    res = execute(_ended(), "fault drop@guest-shutdown")
    assert not res.ok and "the session has ended" in res.text, res.text


def test_a_refused_input_stops_a_script_with_exit_1(tmp_path: Path) -> None:
    script = tmp_path / "late.colo"
    script.write_text("set checkpoints 2\nrun\ncheckpoint\nstatus\n")
    r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "-f", str(script)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=_env(tmp_path))
    assert r.returncode == 1, r.stderr
    assert f"{script}:3: error: 'checkpoint' failed: checkpoint: the session has ended (ok)" \
        in r.stderr
    assert "colo> status" not in r.stdout and "Traceback" not in r.stderr


def test_a_refused_input_is_not_recorded_and_the_recording_replays(tmp_path: Path) -> None:
    path = tmp_path / "late.colo.jsonl"
    c = Controller(SimConfig(seed=1, checkpoints=2))
    assert execute(c, f"record start {path}").ok
    assert execute(c, "run").ok
    assert not execute(c, "kill primary").ok
    assert execute(c, "record stop").ok
    rec = rf.read(path)
    assert rec.inputs == [] and verify(rec).ok
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=_env(tmp_path))
    assert r.returncode == 0 and "identically" in r.stdout, r.stdout + r.stderr


def test_an_old_recording_with_an_input_after_the_end_still_replays(tmp_path, monkeypatch):
    """A recording made before inputs after the end were refused may hold one: it
    replays as it was, in `colo replay` and stepped through in the REPL."""
    path = tmp_path / "old.colo.jsonl"
    with monkeypatch.context() as m:      # the old Controller: no refusal
        m.setattr(Controller, "refuse_after_the_end", lambda self: None)
        old = Controller(SimConfig(seed=1, checkpoints=2))
        assert execute(old, f"record start {path}").ok
        assert execute(old, "run").ok
        end = old.steps
        assert execute(old, "kill primary").ok
        assert execute(old, "run").ok                 # the failover played past the end
        assert execute(old, "record stop").ok
    rec = rf.read(path)
    assert [(i["step"], i["cmd"]) for i in rec.inputs] == [(end, "kill")]
    assert verify(rec).ok
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=_env(tmp_path))
    assert r.returncode == 0 and "identically" in r.stdout, r.stdout + r.stderr
    c = Controller()
    assert execute(c, f"replay {path}").ok
    for _ in range(100):                     # bounded: it is 20-odd steps long
        if c.finished:
            break
        assert execute(c, "step").ok
    assert [(e.seq, e.kind) for e in c.events] == [(e.seq, e.kind) for e in old.events]
    assert c.outcome() == "failover"


def test_while_recording_the_refusal_does_not_offer_back(tmp_path) -> None:
    """back is refused while a recording runs (a recording is one linear history),
    so the refusal after the end does not offer it then."""
    c = _ended()
    assert execute(c, f"record start {tmp_path / 'r.colo.jsonl'}").ok
    res = execute(c, "checkpoint")
    assert not res.ok and "back [N]" not in res.text, res.text
    assert "set seed S = a new session" in res.text
    assert not execute(c, "back").ok                  # (what it would have offered)
    c.record_stop()
    assert "back [N]" in execute(c, "checkpoint").text
