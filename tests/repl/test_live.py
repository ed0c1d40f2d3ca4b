"""The REPL on live peers: `colo repl --transport tcp` and `colo repl --peer LISTEN`,
as separate processes fed a script on stdin (commands wait for real events,
bounded)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.tcp._nodes import ROOT, NodeProc, free_port, wait_for


def _repl(*args: str, script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "colo_tui", "repl", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_repl_drives_an_in_process_tcp_pair():
    script = ("set checkpoint-delay 100\nrun 2\nstatus\nheartbeat secondary\n"
              "run until colo-exit\nstatus\n")
    p = _repl("--transport", "tcp", script=script)
    out, err = p.communicate(script, timeout=120)
    assert p.returncode == 0, err
    assert "stopped at colo-exit" in out
    assert "query-colo-status (mode none, last-mode secondary, reason request)" in out
    assert "live       tcp: real peers" in out and "invariants all hold" not in out


def test_repl_peer_follows_a_primary_process(tmp_path):
    port = free_port()
    script = ("run 3\nshow ram\nshow screen\nheartbeat secondary\nrun until colo-exit\n"
              "status\n")
    p = _repl("--peer", f"127.0.0.1:{port}", script=script)
    pri = None
    try:
        p.stdin.write(script)
        p.stdin.close()
        # the REPL listens before it reads the script; the primary may connect now
        wait_for(lambda: _listening(port), 20, "the REPL's --peer port")
        pri = NodeProc("primary", tmp_path, f"127.0.0.1:{port}", "--guest", "model",
                       "--checkpoint-delay", "150", "--workload", "hot")
        p.stdin = None                       # written and closed above
        out, err = p.communicate(timeout=150)
    finally:
        if pri is not None:
            pri.stop()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err + out[-2000:]
    assert "mirror of the real guest: pc.ram 16 MiB" in out
    assert ("checkpoints flushed" in out or "checkpoint flushed" in out) and "device sections" in out
    assert "VGA text as of checkpoint" in out          # the model guest's screen is blank
    assert "stopped at colo-exit" in out
    assert "query-colo-status (mode none, last-mode secondary, reason request)" in out


def _listening(port: int) -> bool:
    """Is something listening on `port`?  Read from /proc: a probe connection would
    be taken as the COLO connection."""
    with open("/proc/net/tcp") as fh:
        rows = [line.split() for line in fh.readlines()[1:]]
    return any(r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows)


def test_repl_peer_on_a_busy_port_is_a_clear_error():
    import socket
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        p = _repl("--peer", f"127.0.0.1:{port}", script="status\n")
        out, err = p.communicate("status\n", timeout=60)
    assert p.returncode == 1      # as `colo node` on a busy port: not a usage error
    assert err.startswith("colo repl: error:") and "in use" in err, err
    assert "Traceback" not in err


def test_a_live_recording_replays_as_one_from_a_live_session(tmp_path):
    # `colo replay` called it "imported from a real session"
    rec = tmp_path / "live.colo.jsonl"
    script = f"record start {rec}\nset checkpoint-delay 100\nrun 2\nrecord stop\n"
    p = _repl("--transport", "tcp", script=script)
    out, err = p.communicate(script, timeout=120)
    assert p.returncode == 0, err
    r = subprocess.run([sys.executable, "-m", "colo_tui", "replay", str(rec)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert "recorded from a live session (tcp), so it cannot be re-simulated" in r.stdout
    assert "imported" not in r.stdout
