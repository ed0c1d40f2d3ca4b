"""The REPL's `reprotect`: refused with plain words until a failover finished, then a
new secondary, a fresh initial migration and COLO again; a live session says no."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from colo_tui.commands import execute
from colo_tui.commands.registry import REGISTRY
from colo_tui.repl.completer import fault_candidates
from colo_tui.session.control import Controller
from colo_tui.session.live import LiveSession
from protocol.core.session import Input, SessionError
from protocol.record import format as rf
from protocol.record.replay import verify
from protocol.sim.config import SimConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _c() -> Controller:
    return Controller(SimConfig(guest="model", checkpoints=4, checkpoint_delay_ms=300))


def ok(c, line: str) -> str:
    res = execute(c, line)
    assert res.ok, res.text
    return res.text


def test_refused_before_a_failover_in_plain_words():
    c = _c()
    ok(c, "step 5")
    res = execute(c, "reprotect")
    assert not res.ok
    assert "no failover has finished yet" in res.text and "Traceback" not in res.text
    assert c.inputs == [] and not any(e.kind == "reprotect" for e in c.events)


def test_after_a_failover_colo_resumes_with_the_survivor_as_primary():
    c = _c()
    ok(c, "run 1")
    ok(c, "kill primary")
    ok(c, "run until failover")
    ok(c, "run")                              # the failover settles: one VM runs alone
    assert c.status()["outcome"] == "failover"
    text = ok(c, "reprotect")
    assert "the secondary that survived is the primary of a new pair" in text
    assert "checkpoints go on after 1" in text
    assert c.inputs[-1]["cmd"] == "reprotect"
    ok(c, "run 2")
    status = ok(c, "status")
    assert "invariants all hold" in status
    assert c.session.both_in_colo() and c.side("primary").checkpoint == 3
    assert "last-mode secondary" in status      # QEMU keeps the survivor's last mode
    res = execute(c, "re-protect")               # the alias; the new pair never failed over
    assert not res.ok and "no failover has finished yet" in res.text


def test_help_completion_and_the_fault_step():
    assert "reprotect" in REGISTRY and "docs/COLO-FT.txt" in REGISTRY["reprotect"].help
    assert fault_candidates("reprotect@") == ["reprotect@failover"]
    assert "reprotect@failover" not in fault_candidates("drop@")
    c = _c()
    text = ok(c, "fault kill-secondary@checkpoint-request#2")
    text = ok(c, "fault reprotect@failover#1")
    assert "armed" in text and "after the N-th failover" in text
    ok(c, "run")
    assert [e.payload()["survivor"] for e in c.events if e.kind == "reprotect"] == ["primary"]
    assert c.status()["outcome"] == "ok"
    res = execute(c, "fault drop@failover#1")
    assert not res.ok and "reprotect@failover#N" in res.text


def test_a_recorded_reprotect_replays(tmp_path):
    c = _c()
    rec = tmp_path / "rp.colo.jsonl"
    ok(c, f"record start {rec}")
    ok(c, "run 1")
    ok(c, "kill secondary")
    ok(c, "run")
    ok(c, "reprotect")
    ok(c, "run")
    ok(c, "record stop")
    recording = rf.read(str(rec))
    assert [i["cmd"] for i in recording.inputs] == ["kill", "reprotect"]
    assert verify(recording).ok


def test_a_live_session_says_it_cannot():
    live = object.__new__(LiveSession)        # no peers needed to refuse
    with pytest.raises(SessionError, match="a live session cannot re-protect"):
        live.send(Input("reprotect"))


def test_a_script_runs_failover_then_reprotect():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = ("set verbosity quiet\nfault kill-primary@checkpoint-request#2\n"
              "run until failover\nrun\nreprotect\nrun 2\nstatus\n")
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"], input=script,
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert "re-protect 1: the secondary that survived is the primary of a new pair" in r.stdout
    assert "invariants all hold" in r.stdout and "Traceback" not in r.stderr
