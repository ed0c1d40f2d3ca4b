"""Every way out of the REPL leaves a complete recording, in the user's data
directory unless the user names a file; a recording made while replaying an
imported capture is itself a playback of it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol.record import format as rf
from protocol.record.replay import verify

ROOT = Path(__file__).resolve().parents[2]
pexpect = pytest.importorskip("pexpect")


def _env(tmp_path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(tmp_path / "data"),
                COLO_RECORDINGS_DIR=str(tmp_path / "recs"), TERM="xterm",
                PROMPT_TOOLKIT_NO_CPR="1")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x and x[0] != "#"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_completes_the_recording(tmp_path, sig):
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl"], cwd=str(ROOT),
                          env=_env(tmp_path), encoding="utf-8", timeout=30,
                          dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("record start")                   # no file: the user's data dir
        child.expect("recording to")
        child.expect("colo>")
        child.sendline("step 3")
        child.expect("step 3,")
        child.expect("colo>")
        child.kill(getattr(signal, sig))
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.signalstatus is None and child.exitstatus == 128 + getattr(signal, sig)
    (path,) = (tmp_path / "recs").glob("repl-*.colo.jsonl")
    lines = _lines(path)
    assert "stop" in lines[-2] and "digest" in lines[-1]
    assert verify(rf.read(path)).ok
    assert not list(ROOT.glob("recordings/repl-*"))


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_during_a_command_ends_the_repl_after_it(tmp_path, sig):
    """The signal comes while `run` is printing (a terminal that reads slowly: here one
    that does not read until after the signal).  The handler ended the session there
    and then: 'recording saved' came in the middle of the line being printed
    ('… request 521recording saved: …').  The run now pauses at its next step and
    the REPL ends after it, the message on a line of its own."""
    child = pexpect.spawn(sys.executable, ["-m", "colo_tui.repl", "--checkpoints", "1000"],
                          cwd=str(ROOT), env={**_env(tmp_path), "COLO_PAGER": "0"},
                          encoding="utf-8", timeout=30, dimensions=(40, 160))
    try:
        child.expect("colo>")
        child.sendline("set verbosity all")
        child.expect("colo>")
        child.sendline("record start")
        child.expect("colo>")
        child.sendline("run")
        child.expect("checkpoint-request")
        time.sleep(0.5)              # not read: the terminal fills, a write blocks
        child.kill(getattr(signal, sig))
        child.expect(pexpect.EOF, timeout=60)
        text = child.before.replace("\r\n", "\n")
    finally:
        child.close()
    assert child.signalstatus is None and child.exitstatus == 128 + getattr(signal, sig)
    said = [line for line in text.split("\n") if "recording saved" in line]
    assert len(said) == 1 and said[0].startswith("recording saved: "), said
    assert "Traceback" not in text
    (path,) = (tmp_path / "recs").glob("repl-*.colo.jsonl")
    lines = _lines(path)
    assert "stop" in lines[-2] and "digest" in lines[-1]
    assert verify(rf.read(path)).ok


def test_a_script_ending_mid_recording_completes_it(tmp_path):
    script = "record start\nstep 4\n"
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"], input=script, text=True,
                       cwd=ROOT, env=_env(tmp_path), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (path,) = (tmp_path / "recs").glob("repl-*.colo.jsonl")
    assert f"recording saved: {path}" in r.stdout
    assert verify(rf.read(path)).ok


def _imported_run1(tmp_path):
    """The real capture run1 imported by `colo import` (skips without ../shared)."""
    from tests.tui._term import run1_dir
    run1 = run1_dir()
    if run1 is None:
        pytest.skip("the real capture run1 is not beside the repository (../shared)")
    imported = tmp_path / "run1.colo.jsonl"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "import", str(run1 / "capture.pcap"),
                        "-o", str(imported)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return imported


def test_recording_a_replayed_capture_keeps_it_a_playback(tmp_path):
    imported = _imported_run1(tmp_path)
    out = tmp_path / "again.colo.jsonl"
    script = f"replay {imported}\nstep 5\nrecord start {out}\nstep 20\nquit\n"
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"], input=script, text=True,
                       cwd=ROOT, env=_env(tmp_path), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    head = _lines(out)[0]
    assert head.get("imported") is True
    original = [e for e in _lines(imported) if "seq" in e]
    again = [e for e in _lines(out) if "seq" in e]
    assert len(again) >= 25
    # the playback derives each message's bytes (hex) for the views: compare the rest
    def strip(e):
        return {**e, "data": {k: v for k, v in e["data"].items() if k != "hex"}}
    assert [strip(e) for e in again] == [strip(e) for e in original[:len(again)]]
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_show_ram_of_a_replayed_capture_says_what_the_capture_holds(tmp_path):
    imported = _imported_run1(tmp_path)
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"],
                       input=f"replay {imported}\nstep 5\nshow ram\n", text=True, cwd=ROOT,
                       env=_env(tmp_path), capture_output=True, timeout=120)
    assert "plays back an imported capture" in r.stderr, r.stdout + r.stderr
    assert "set guest model" not in r.stdout + r.stderr     # it would restart a simulation


def test_record_start_refuses_an_existing_file_unless_forced(tmp_path):
    path = tmp_path / "mine.colo.jsonl"
    path.write_text("my notes\n")
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"], input=f"record start {path}\n",
                       text=True, cwd=ROOT, env=_env(tmp_path), capture_output=True, timeout=60)
    assert r.returncode == 1 and "add 'force'" in r.stderr
    assert path.read_text() == "my notes\n"
    r = subprocess.run([sys.executable, "-m", "colo_tui.repl"],
                       input=f"record start {path} force\nstep 3\nquit\n", text=True, cwd=ROOT,
                       env=_env(tmp_path), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert verify(rf.read(path)).ok
