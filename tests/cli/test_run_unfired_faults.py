"""`colo run` says which faults did nothing: `reprotect@failover` in a run without a
failover gave no word (exit 0, as if it had re-protected), and neither did a link fault
whose checkpoint the run never reached.  One path (colo_tui.present.faultnotes) for
every kind; a fault that fired says nothing."""
import subprocess
import sys

import pytest

from colo_tui.present.faultnotes import fault_notes
from protocol.core.faults import parse


def run(*faults):
    argv = [sys.executable, "-m", "colo_tui", "run", "--guest", "null", "--checkpoints", "3"]
    for f in faults:
        argv += ["--fault", f]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def notes(stderr: str) -> list[str]:
    return [ln.removeprefix("colo run: note: ") for ln in stderr.splitlines()
            if ln.startswith("colo run: note: ")]


def test_reprotect_at_a_failover_that_never_happens_is_named():
    r = run("reprotect@failover")
    assert r.returncode == 0, r.stderr
    assert notes(r.stderr) == ["fault reprotect@failover#1 never fired: no failover "
                               "happened in this run"], r.stderr


def test_a_later_failover_than_the_run_had_is_named():
    r = run("kill-primary@checkpoint-request#2", "reprotect@failover#2")
    assert notes(r.stderr) == ["fault reprotect@failover#2 never fired: the run had 1 "
                               "failover, not 2"], r.stderr


def test_a_link_fault_after_the_run_ended_is_named_the_same_way():
    r = run("kill-primary@checkpoint-request#2", "drop@checkpoint-request#4")
    assert notes(r.stderr) == ["fault drop@checkpoint-request#4 never fired: the run did "
                               "not reach checkpoint-request of checkpoint 4 (it ended "
                               "with 1 checkpoint committed)"], r.stderr


def test_a_reprotect_that_fired_and_was_refused_says_why():
    r = run("heartbeat-secondary@checkpoint-request#2", "reprotect@failover")
    assert notes(r.stderr) == ["fault reprotect@failover#1 fired but could not run: both "
                               "sides are alive (split brain): a re-protect starts a new "
                               "secondary for a lone survivor; kill one side first"], r.stderr


@pytest.mark.parametrize("faults", [(), ("drop@checkpoint-request#2",),
                                    ("kill-primary@checkpoint-request#2", "reprotect@failover")])
def test_faults_that_fired_say_nothing(faults):
    r = run(*faults)
    assert notes(r.stderr) == [], r.stderr


def test_fault_notes_is_one_path_for_every_kind():
    plan = [parse("drop@vmstate-send#5"), parse("reprotect@failover#1"),
            parse("kill-secondary@load#9")]
    assert [n.split(":")[0] for n in fault_notes(plan, {0}, failovers=0, committed=4)] == [
        "fault reprotect@failover#1 never fired", "fault kill-secondary@load#9 never fired"]
