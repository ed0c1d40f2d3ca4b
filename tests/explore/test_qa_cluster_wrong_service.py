"""colo explore --cluster pointed at another service (an ssh port) says so, in one line;
it ended in a traceback: Dask read the banner as a frame length and numpy failed to
allocate 2.8 EiB."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_cluster_address_of_another_service_is_named(tmp_path):
    pytest.importorskip("distributed")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(30)
    stop = threading.Event()

    def serve() -> None:           # an ssh server's banner, then silence
        conns = []
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.sendall(b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n")
            conns.append(c)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    address = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    try:
        r = subprocess.run([sys.executable, "-m", "colo_tui", "explore", "--swarm", "2",
                            "--cluster", address, "--repro-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        stop.set()
        srv.close()
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr, r.stderr[-2000:]
    assert f"{address} does not answer as a Dask scheduler" in r.stderr, r.stderr
