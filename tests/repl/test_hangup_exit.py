"""The terminal closes under the REPL at its prompt (the pty's other end goes away;
the kernel sends the REPL, its session leader, SIGHUP): it exits 128 + SIGHUP, its
recording complete.  It exited 1: prompt_toolkit's last redraw on the closed
terminal raised OSError, a traceback to nobody."""
from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _read_until(fd: int, text: bytes, seen: bytearray, timeout: float = 30) -> bool:
    """Read until `text` has come (in what was read since the last call that found
    its text: that much of `seen` is dropped)."""
    end = time.monotonic() + timeout
    while (at := seen.find(text)) < 0 and time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            seen += os.read(fd, 65536)
    if at < 0:
        return False
    del seen[:at + len(text)]
    return True


def test_a_closed_terminal_ends_the_repl_with_129_and_a_complete_recording(tmp_path):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))

    def own_terminal():                   # the REPL leads a session on the pty
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
               COLO_RECORDINGS_DIR=str(tmp_path / "recs"),
               XDG_DATA_HOME=str(tmp_path / "data"), COLO_PAGER="0")
    repl = subprocess.Popen([sys.executable, "-m", "colo_tui.repl"], cwd=ROOT, env=env,
                            stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=own_terminal)  # noqa: PLW1509 - before exec, no threads
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, b"colo>", seen), bytes(seen[-2000:])
        os.write(master, b"record start\r")
        assert _read_until(master, b"recording to", seen), bytes(seen[-2000:])
        assert _read_until(master, b"colo>", seen), bytes(seen[-2000:])
        os.write(master, b"step 3\r")
        assert _read_until(master, b"step 3,", seen), bytes(seen[-2000:])
        assert _read_until(master, b"colo>", seen), bytes(seen[-2000:])
        os.close(master)
        master = None
        status = repl.wait(30)
    finally:
        if master is not None:
            os.close(master)
        if repl.poll() is None:
            repl.kill()
            repl.wait()
    assert status == 128 + signal.SIGHUP
    (path,) = (tmp_path / "recs").glob("repl-*.colo.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines() if not x.startswith("#")]
    assert "stop" in lines[-2] and "digest" in lines[-1]
