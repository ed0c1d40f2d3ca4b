"""The recording Writer never loses what it wrote and never overwrites without force."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


class _Interrupt(BaseException):
    """Stands in for the KeyboardInterrupt a signal raises in the middle of a step."""


def test_a_session_stopped_in_the_middle_of_a_step_replays(tmp_path):
    """The stop line counts the events written: a session cut between two events of
    one step (a signal handler closing the recording) replays exactly those."""
    from protocol.sim.core import Simulation
    cfg = SimConfig(checkpoints=5)
    sim = Simulation(cfg)
    path = tmp_path / "r.colo.jsonl"
    w = rf.Writer(path, rf.make_header(cfg))
    sim.on_event = w.event
    for _ in range(6):
        sim.step()
    seen = []

    def on_event(ev):                 # the 2nd event of the next step: stop there
        w.event(ev)
        seen.append(ev)
        if len(seen) == 2:
            raise _Interrupt
    sim.on_event = on_event
    with pytest.raises(_Interrupt):
        while True:                   # bounded: the 2nd event comes within two steps
            sim.step()
    w.close(stop_step=sim.steps)
    rec = rf.read(path)
    assert rec.stop_events == len(rec.events) and rec.stop_step == sim.steps
    assert json.loads(path.read_bytes().splitlines()[-2])["stop"]["events"] == len(rec.events)
    res = verify(rec)
    assert res.ok and res.events == len(rec.events)
    # the same file with the last event dropped (and no count to say so) diverges
    # when it claims a count it does not hold
    lines = path.read_bytes().splitlines()
    stop = json.loads(lines[-2])
    stop["stop"]["events"] += 1
    bad = b"\n".join(lines[:-2] + [json.dumps(stop).encode()]) + b"\n"
    with pytest.raises(RecordingError, match=r"stop line counts \d+ events, the recording has"):
        rf.parse(bad, "x")


def test_a_write_torn_by_an_interrupt_leaves_a_cut_recording(tmp_path, monkeypatch):
    """An interrupt inside a line's write: nothing more is written (no stop line, no
    trailer), and the file reads as cut at its last complete line."""
    path = tmp_path / "r.colo.jsonl"
    w = rf.Writer(path, _header())
    w.event({"t": 0.0, "seq": 0, "side": "primary", "kind": "x"})
    real = w._fh.write

    def torn(view):
        real(bytes(view[:5]))
        raise _Interrupt
    monkeypatch.setattr(w._fh, "write", torn)
    with pytest.raises(_Interrupt):
        w.event({"t": 1.0, "seq": 1, "side": "primary", "kind": "y"})
    monkeypatch.setattr(w._fh, "write", real)
    w.stop(7)
    w.close(stop_step=7)
    rec = rf.read(path)
    assert rec.cut and rec.digest is None and rec.stop_step is None
    assert [e["seq"] for e in rec.events] == [0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_colo_run_record_stopped_by_a_signal_is_complete_and_replays(tmp_path, sig):
    """Ctrl-C (or SIGTERM) in the middle of `colo run --record`: the run stops at the
    next step boundary, says so, exits 128+signal, and the recording is whole."""
    path = tmp_path / "run.colo.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "colo_tui", "run", "--checkpoints", "1000",
                             "--record", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        for _ in range(600):                         # bounded: wait for 50 kB of events
            if proc.poll() is not None or (path.exists() and path.stat().st_size > 50_000):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the signal"
        os.kill(proc.pid, sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err.decode()
    rec = rf.read(path)
    assert rec.cut is None and rec.digest and rec.stop_step and \
        rec.stop_events == len(rec.events)
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0 and "identically" in r.stdout, r.stdout + r.stderr


def test_a_recording_beyond_the_readers_default_limits_says_how_to_read_it(tmp_path, capsys,
                                                                            monkeypatch):
    """A writer may be given what its reader refuses by default (more checkpoints than
    COLO_MAX_CHECKPOINTS): it says so, with the setting that reads it back; `colo run
    --record` refuses such a run up front instead (its recordings always read back)."""
    from colo_tui.cli import main as cli
    from protocol.sim.config import SimConfig
    monkeypatch.setenv("COLO_MAX_CHECKPOINTS", "5")
    path = tmp_path / "big.colo.jsonl"
    assert cli.main(["run", "--guest", "null", "--checkpoints", "6", "--record",
                     str(path)]) == 2
    assert "COLO_MAX_CHECKPOINTS=6" in capsys.readouterr().err and not path.exists()
    w = rf.Writer(path, rf.make_header(SimConfig(checkpoints=6, guest="null")))
    w.close()
    assert "holds 6 checkpoints" in w.beyond_reader_limits()
    assert "COLO_MAX_CHECKPOINTS=6" in w.beyond_reader_limits()
    with pytest.raises(RecordingError, match="above the limit"):
        rf.read(path)
    monkeypatch.setenv("COLO_MAX_CHECKPOINTS", "6")
    path.unlink()
    assert cli.main(["run", "--guest", "null", "--checkpoints", "6", "--record",
                     str(path)]) == 0
    assert verify(rf.read(path)).ok
    monkeypatch.setenv("COLO_MAX_CHECKPOINTS", "5")
    capsys.readouterr()
    small = tmp_path / "small.colo.jsonl"
    assert cli.main(["run", "--guest", "null", "--checkpoints", "5", "--record",
                     str(small)]) == 0
    assert "COLO_MAX" not in capsys.readouterr().err
