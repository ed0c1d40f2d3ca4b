"""`colo lab --pair-fault SPEC` in a terminal runs the fault and prints JSON, as
its help and the README say: it opened the TUI on the pair instead (the fault
never armed), since only --headless or a non-terminal took the scripted path.
Runs without QEMU: with no tools on PATH the scripted path fails at once (exit 1,
a one-line error); the TUI would have started on the terminal."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pair_fault_in_a_terminal_takes_the_scripted_path(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    env = dict(os.environ, PATH=str(bare), TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT),
               TERM="xterm-256color")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "colo_tui", "lab", "--net", "user",
                             "--pair-fault", "kill-primary@checkpoint-request#2"],
                            stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    out = b""
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        try:
            proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running (the TUI?): {out[-400:]!r}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    text = out.decode(errors="replace")
    assert proc.returncode == 1, (proc.returncode, text[-400:])
    assert "colo lab: error:" in text and "\x1b[?1049h" not in text, text[-400:]
