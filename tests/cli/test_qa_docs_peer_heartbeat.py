"""`colo repl --peer`: the refusal of other commands names the one that works,
`heartbeat secondary`, as the REPL, the palette and README spell it."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_peer_refusal_names_a_command_that_exists():
    # it said "here only `lost-heartbeat secondary` ... is possible"; typed as
    # told, that is "unknown command 'lost-heartbeat'"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--peer",
                        f"127.0.0.1:{_free_port()}"],
                       input="heartbeat primary\n", capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "`heartbeat secondary`" in r.stderr, r.stderr
    assert "lost-heartbeat secondary" not in r.stderr, r.stderr
