"""A program on a pseudo-terminal whose other end the test closes: what a closed
terminal window does to it (the hang-up tests of the TUI and the REPL)."""
from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import time
from pathlib import Path


def read_until(fd: int, text: bytes, seen: bytearray, timeout: float = 30) -> bool:
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


def run_then_close(argv: list[str], cwd: Path, env: dict, steps, *, cols: int, rows: int,
                   controlling: bool = True, settle_s: float = 0.0) -> int:
    """Start `argv` on a new pty (its controlling terminal, as a session leader, when
    `controlling`: the kernel then sends it SIGHUP as the terminal goes), play `steps`
    ((bytes to type or None, text to wait for) each), close the terminal, and return
    the exit status (killed after 30 s)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def own_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    kw = {"preexec_fn": own_terminal} if controlling else {"start_new_session": True}
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            **kw)  # noqa: PLW1509 - before exec, no threads
    os.close(slave)
    seen = bytearray()
    try:
        for keys, text in steps:
            if keys:
                os.write(master, keys)
            assert read_until(master, text, seen), bytes(seen[-2000:])
        time.sleep(settle_s)
        os.close(master)
        master = None
        return proc.wait(30)
    finally:
        if master is not None:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_complete_recording(folder: Path, pattern: str) -> None:
    """One recording in `folder`, ended as a finished one ends: stop, then digest."""
    (path,) = folder.glob(pattern)
    lines = [json.loads(x) for x in path.read_text().splitlines() if not x.startswith("#")]
    assert "stop" in lines[-2] and "digest" in lines[-1]
