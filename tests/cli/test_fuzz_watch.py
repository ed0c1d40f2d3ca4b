"""The secondary fuzzer's watch: a QMP socket that breaks while QEMU is dying is
QEMU's death (then classified by how it exited), not a hang.  A real process
stands in for QEMU; the QMP client (tested against real QEMU in tests/qemu)
is replaced by one whose socket has just been reset."""
from __future__ import annotations

import signal
import subprocess
import sys
from types import SimpleNamespace

from protocol.drivers import fuzz_secondary
from protocol.drivers.fuzz_secondary import Outcome, Runner
from protocol.drivers.qmpclient import QmpClientError


class ResetQmp:
    def execute(self, *_a, **_k):
        raise QmpClientError("secondary: Connection reset by peer")


def _watch(tmp_path, qemu_code: str) -> tuple[Outcome, subprocess.Popen]:
    qemu = subprocess.Popen([sys.executable, "-c", qemu_code])
    node = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    out = Outcome("size-huge", "vmstate-size says 2^40")
    try:
        Runner._watch(SimpleNamespace(bound_s=20, checkpoints=3, delay_ms=100), out, qemu,
                      node, ResetQmp(), tmp_path / "node.out", tmp_path / "secondary.stderr")
    finally:
        node.kill()
        node.wait()
    return out, qemu


def test_a_qmp_reset_as_qemu_aborts_is_not_a_hang(tmp_path):
    # QEMU's abort: the socket goes first, the process exits a moment later
    out, qemu = _watch(tmp_path, "import os, time; time.sleep(0.3); os.abort()")
    assert out.outcome == "" and out.extra["qmp"].endswith("reset by peer")
    assert qemu.poll() == -signal.SIGABRT        # run() then calls it a crash


def test_a_qmp_reset_with_qemu_still_alive_is_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(fuzz_secondary, "QMP_GONE_GRACE_S", 0.3)
    out, qemu = _watch(tmp_path, "import time; time.sleep(30)")
    try:
        assert out.outcome == "hang"
    finally:
        qemu.kill()
        qemu.wait()

