"""The recording Writer never loses what it wrote and never overwrites without force."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.errors import OutputFileError, RecordingError
from protocol.record import format as rf
from protocol.record.replay import verify
from protocol.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]


def _header(**kw):
    return rf.make_header(SimConfig(checkpoints=2, **kw))


def test_each_line_is_in_the_file_as_soon_as_it_is_written(tmp_path):
    path = tmp_path / "r.colo.jsonl"
    w = rf.Writer(path, _header())
    w.event({"t": 0.0, "seq": 0, "side": "primary", "kind": "migration",
             "data": {"status": "active"}})
    # another reader sees both lines now, with the writer still open (no buffer)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["seq"] == 0
    rec = rf.read(path)
    assert rec.cut and "no digest trailer" in rec.cut and len(rec.events) == 1
    w.close()
    w.close()                                    # idempotent
    rec = rf.read(path)
    assert rec.cut is None and rec.digest and len(rec.events) == 1
    w.event({"t": 1.0, "seq": 1, "side": "primary", "kind": "x"})   # ignored after close
    assert rf.read(path).digest == rec.digest


def test_an_existing_file_is_refused_without_force_and_kept(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("a user's notes\n")
    with pytest.raises(OutputFileError, match=r"mine.txt already exists; give --force"):
        rf.Writer(path, _header())
    assert path.read_text() == "a user's notes\n"
    assert os.listdir(tmp_path) == ["mine.txt"]


def test_with_force_the_old_file_stays_until_close_then_is_replaced(tmp_path):
    path = tmp_path / "r.colo.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    w = rf.Writer(path, _header(), force=True)
    w.event({"t": 0.0, "seq": 0, "side": "sim", "kind": "x"})
    assert path.read_text() == "old\n"           # a crash now leaves the old file
    w.close()
    assert rf.read(path).events[0]["kind"] == "x"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert sorted(os.listdir(tmp_path)) == ["r.colo.jsonl"]       # no temp file left


def test_close_interrupting_a_write_leaves_a_cut_recording(tmp_path):
    """As from a signal handler that runs in the middle of a write."""
    path = tmp_path / "r.colo.jsonl"
    w = rf.Writer(path, _header())
    real_put = w._put

    def put_then_signal(data):
        real_put(data)
        w.close()                                # the handler runs here
    w._put = put_then_signal
    w.event({"t": 0.0, "seq": 0, "side": "sim", "kind": "x"})   # must not raise
    rec = rf.read(path)
    assert rec.cut and len(rec.events) == 1


def test_a_cut_mid_line_v2_file_reads_to_its_last_complete_line(tmp_path):
    path = tmp_path / "r.colo.jsonl"
    with rf.Writer(path, _header()) as w:
        for i in range(3):
            w.event({"t": float(i), "seq": i, "side": "sim", "kind": "x"})
    raw = path.read_bytes()
    body = raw[:raw.rindex(b'{"digest"')]
    rec = rf.parse(body + b'{"t":3.0,"seq":3,"si', "x")
    assert rec.cut and "line 5 is cut in the middle" in rec.cut and len(rec.events) == 3


def test_a_wrong_digest_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "r.colo.jsonl"
    with rf.Writer(path, _header()) as w:
        w.event({"t": 0.0, "seq": 0, "side": "sim", "kind": "x"})
        w.event({"t": 1.0, "seq": 1, "side": "sim", "kind": "y"})
    lines = path.read_bytes().splitlines()
    swapped = lines[:1] + [lines[2], lines[1]] + lines[3:]
    with pytest.raises(RecordingError, match=r"line 4: the digest does not match"):
        rf.parse(b"\n".join(swapped) + b"\n", "x")
    with pytest.raises(RecordingError, match=r"line 3: the digest trailer counts 3 lines, the recording has 2"):
        rf.parse(b"\n".join(lines[:1] + lines[2:]) + b"\n", "x")
    with pytest.raises(RecordingError, match=r"line 5: a line after the digest trailer"):
        rf.parse(b"\n".join(lines + [lines[1]]) + b"\n", "x")


def test_a_version_1_file_with_a_wrong_digest_is_an_error():
    raw = (ROOT / "recordings" / "happy-qemu-periodic.colo.jsonl").read_bytes()
    bad = raw + b'{"digest":{"lines":1,"sha256":"' + b"0" * 64 + b'"}}\n'
    with pytest.raises(RecordingError, match=r"digest trailer counts 1 lines"):
        rf.parse(bad, "x")
    assert rf.parse(raw, "x").digest is None              # no digest in v1: accepted


def test_a_sigkilled_colo_run_record_leaves_a_readable_cut_recording(tmp_path):
    """SIGKILL in the middle of `colo run --record`: every line written before it is
    there, the reader calls it cut, and `colo replay` compares what it holds."""
    path = tmp_path / "run.colo.jsonl"
    # the events go to a pipe this test stops reading: the run blocks on it once the
    # pipe is full (far before 200 checkpoints), so the kill lands mid-session
    proc = subprocess.Popen([sys.executable, "-m", "colo_tui", "run", "--checkpoints", "200",
                             "--events", "--record", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        seen = 0
        for _ in range(10_000):                      # bounded
            line = proc.stdout.readline()
            if b" primary " in line and b" checkpoint " in line and b"committed" in line:
                seen += 1
            if seen >= 10 or not line:
                break
        assert seen >= 10
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    rec = rf.read(path)
    assert rec.cut and rec.digest is None and len(rec.events) > 100
    commits = [e for e in rec.events if e["kind"] == "checkpoint"
               and e.get("data", {}).get("phase") == "commit"]
    assert 10 <= len(commits) < 2 * 200
    res = verify(rec)
    assert res.ok and res.cut and res.events == len(rec.events)
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "identically" in r.stdout and "was cut" in r.stdout


def test_close_with_a_stop_step_makes_an_unfinished_session_replay(tmp_path):
    """The lead's quit path: close(stop_step=sim.steps) on a session that had not ended."""
    from protocol.sim.core import Simulation
    cfg = SimConfig(checkpoints=5)
    sim = Simulation(cfg)
    path = tmp_path / "r.colo.jsonl"
    w = rf.Writer(path, rf.make_header(cfg))
    sim.on_event = w.event
    for _ in range(12):                          # the whole session takes 29 steps
        sim.step()
    assert not sim.finished
    at = sim.steps
    w.close(stop_step=at)
    w.close(stop_step=999)                       # idempotent: nothing more is written
    rec = rf.read(path)
    assert rec.stop_step == at and rec.cut is None and rec.digest
    assert verify(rec).ok
    closed_without_stop = tmp_path / "q.colo.jsonl"
    rf.write(closed_without_stop, rf.make_header(cfg), rec.events)
    assert not verify(rf.read(closed_without_stop)).ok      # what a quit without it gave
