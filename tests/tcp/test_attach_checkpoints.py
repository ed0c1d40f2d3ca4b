"""`colo repl --attach`: the primary's checkpoints are counted from its QMP STOP/RESUME
pairs while in COLO, so `run N` ends after N checkpoints.  QMP gives no checkpoint
count, and the attach counted none: `run N` always ran out its 120 s."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from colo_tui.session.live_sources import QmpCheckpoints
from tests.tcp._nodes import ROOT, NodeProc, free_port, wait_for

RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1"


@pytest.mark.skipif(not (RUN1 / "qmp_primary.jsonl").exists(),
                    reason="../shared/qemu-colo/run1 is not beside the repo")
def test_the_real_primarys_qmp_stream_counts_its_complete_checkpoints():
    """QEMU 7.2's primary in run1, in stream order: the initial migration's STOP (while
    'active') and COLO's first RESUME are no checkpoint; 20 STOP/RESUME pairs are its 20
    complete checkpoints (the 21st failed at its request: COLO_EXIT, no STOP); the
    STOP/RESUME of x-colo-lost-heartbeat after the COLO_EXIT is none either, though
    query-migrate still says colo."""
    counter = QmpCheckpoints()
    asked: dict = {}
    done = []
    for line in (RUN1 / "qmp_primary.jsonl").read_text().splitlines():
        rec = json.loads(line)
        msg = rec["msg"]
        if rec["dir"] == "send":
            asked[msg.get("id")] = msg.get("execute")
        elif "event" in msg:
            ms = counter.event(msg["event"], rec["host_time"] * 1000)
            if ms is not None:
                done.append(ms)
        elif asked.get(msg.get("id")) == "query-migrate":
            counter.status(msg["return"].get("status"))
    assert counter.n == 20 == len(done)
    # the VM is stopped about 90 ms per checkpoint (the capture's README)
    assert all(50 < ms < 150 for ms in done), done
    assert counter.phase == "out" and counter.in_flight == 0


def test_the_count_leaves_out_colos_start_and_a_failover():
    c = QmpCheckpoints()
    assert c.event("STOP", 0) is None and c.event("RESUME", 1) is None   # before a poll
    c.status(None)                          # query-migrate {}: no migration yet
    c.status("active")
    c.event("STOP", 10)                     # migration completion
    c.event("RESUME", 20)                   # COLO starts (no poll in between)
    assert c.n == 0 and c.phase == "colo"
    c.event("STOP", 100)
    assert c.in_flight == 1
    assert c.event("RESUME", 190) == 90 and c.n == 1 and c.in_flight == 0
    c.status("colo")
    c.event("STOP", 300)                    # a failover: STOP, COLO_EXIT, RESUME
    c.event("COLO_EXIT", 301)
    assert c.event("RESUME", 302) is None and c.n == 1
    c.status("colo")                        # 7.2 after a COLO error: still 'colo'
    c.event("STOP", 400)
    assert c.event("RESUME", 401) is None and c.n == 1


def test_run_n_under_attach_ends_after_n_checkpoints(tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    sec = NodeProc("secondary", tmp_path, addr, "--checkpoint-delay", "200")
    pri = None
    try:
        sec.wait_ready()
        pri = NodeProc("primary", tmp_path, addr, "--checkpoint-delay", "200")
        pri.wait_ready()
        wait_for(lambda: pri.commits() >= 1, what="a first checkpoint")
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--attach",
                            f"unix:{pri.qmp_path}", f"unix:{sec.qmp_path}"],
                           input="run 3\nstatus\n", capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
        took = time.monotonic() - start
        out = r.stdout
        assert r.returncode == 0, out + r.stderr
        assert "stopped after" not in out, out
        for n in (1, 2, 3):
            assert f"P   checkpoint {n} committed (seen over QMP: the primary's VM stopped " \
                   "for " in out, out
        assert "checkpoint 4 committed" not in out
        assert "; checkpoint 3\n" in out and "machine colo, checkpoint 3" in out, out
        assert took < 30, took           # 3 checkpoints 200 ms apart, not 120 s
    finally:
        if pri is not None:
            pri.stop()
        sec.stop()


def test_the_nodes_primary_emits_one_stop_resume_per_checkpoint(tmp_path):
    """What the count rests on, for `colo node`: its primary's QMP shows STOP (while the
    migration is active) and RESUME (COLO starts), then STOP/RESUME per checkpoint,
    as QEMU 7.2's does; the recording's commits are as many as the pairs."""
    addr = f"127.0.0.1:{free_port()}"
    sec = NodeProc("secondary", tmp_path, addr, "--checkpoint-delay", "100")
    pri = None
    try:
        sec.wait_ready()
        pri = NodeProc("primary", tmp_path, addr, "--checkpoint-delay", "100")
        pri.wait_ready()
        wait_for(lambda: pri.commits() >= 3, what="three checkpoints")
    finally:
        if pri is not None:
            pri.stop()
        sec.stop()
    vm = [(e["data"]["qmp"], e["data"]["run"]) for e in pri.kinds("vm")
          if e["data"].get("qmp")]
    assert vm[:2] == [("STOP", "finish-migrate"), ("RESUME", "running")], vm
    pairs = vm[2:]
    assert pairs[0::2] == [("STOP", "colo")] * len(pairs[0::2]), vm
    assert pairs[1::2] == [("RESUME", "running")] * len(pairs[1::2]), vm
    assert len(pairs) // 2 == pri.commits(), (vm, pri.commits())
