"""The terminal closes under the app (the pty's other end goes away; the kernel
sends the app, its session leader, SIGHUP and SIGCONT): it exits 128 + SIGHUP,
its recording complete.  It exited 1: printing 'recording saved' to the closed
terminal raised ('lost sys.stderr')."""
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

from tests.tui._term import ROOT


def _read_until(fd: int, text: bytes, seen: bytearray, timeout: float = 30) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            seen += os.read(fd, 65536)
            if text in seen:
                return True
    return False


def test_a_closed_terminal_ends_the_app_with_129_and_a_complete_recording(tmp_path):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def own_terminal():                   # the app leads a session on the pty
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    env = dict(os.environ, TERM="xterm-256color", COLO_RECORDINGS_DIR=str(tmp_path))
    app = subprocess.Popen([sys.executable, "-m", "colo_tui.cli.tui"], cwd=ROOT, env=env,
                           stdin=slave, stdout=slave, stderr=slave,
                           preexec_fn=own_terminal)  # noqa: PLW1509 - before exec, no threads
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, b"press n", seen), bytes(seen[-2000:])
        os.write(master, b"r")
        assert _read_until(master, b"recording to", seen), bytes(seen[-2000:])
        os.write(master, b"nnn ")                # running: it draws all the time
        assert _read_until(master, b"running", seen), bytes(seen[-2000:])
        time.sleep(0.3)
        os.close(master)
        master = None
        status = app.wait(30)
    finally:
        if master is not None:
            os.close(master)
        if app.poll() is None:
            app.kill()
            app.wait()
    assert status == 128 + signal.SIGHUP
    (path,) = tmp_path.glob("tui-*.colo.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines() if not x.startswith("#")]
    assert "stop" in lines[-2] and "digest" in lines[-1]


def test_a_closed_terminal_that_sends_no_sighup_ends_the_app_too(tmp_path):
    """The same terminal, but not the app's controlling one, so no SIGHUP comes (as
    under nohup): the app ran on for ever, its input thread spinning on the closed
    terminal at 100 % CPU, the recording never completed.  A refused write ends it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLO_RECORDINGS_DIR=str(tmp_path))
    app = subprocess.Popen([sys.executable, "-m", "colo_tui.cli.tui"], cwd=ROOT, env=env,
                           stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, b"press n", seen), bytes(seen[-2000:])
        os.write(master, b"r")
        assert _read_until(master, b"recording to", seen), bytes(seen[-2000:])
        os.write(master, b"nnn ")
        assert _read_until(master, b"running", seen), bytes(seen[-2000:])
        time.sleep(0.3)
        os.close(master)
        master = None
        status = app.wait(30)
    finally:
        if master is not None:
            os.close(master)
        if app.poll() is None:
            app.kill()
            app.wait()
    assert status == 1
    (path,) = tmp_path.glob("tui-*.colo.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines() if not x.startswith("#")]
    assert "stop" in lines[-2] and "digest" in lines[-1]
