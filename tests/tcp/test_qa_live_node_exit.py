"""`colo node`: what its log and recording say when it cannot start."""
import json
import socket
import subprocess
import sys

from tests.tcp._nodes import ROOT, free_port


def _node(tmp_path, *args):
    rec = tmp_path / "n.jsonl"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "node", *args, "--record", str(rec)],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    lines = [json.loads(line) for line in rec.read_text().splitlines()[1:]]
    return r, lines


def test_a_refused_connection_is_recorded_as_exit_1_with_its_error(tmp_path):
    """The primary exits 1 on a refused connection; its recording (and log) said
    '"what": "exit", "code": 0' and not why.  Now code 1 and the error."""
    port = free_port()
    r, lines = _node(tmp_path, "primary", "--connect", f"127.0.0.1:{port}")
    assert r.returncode == 1 and "Connection refused" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    last = lines[-1]
    assert last["kind"] == "node" and last["data"]["what"] == "exit"
    assert last["data"]["code"] == 1, last
    assert "Connection refused" in last["data"]["error"], last
    assert "code=1" in r.stdout, r.stdout


def test_a_port_in_use_is_recorded_as_exit_1_and_named_once(tmp_path):
    """A secondary on a port in use: exit 1, the recording says code 1, and the message
    names the address once ('Address already in use', not asyncio's '(while attempting
    to bind on address ('127.0.0.1', P))' after it)."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        r, lines = _node(tmp_path, "secondary", "--listen", f"127.0.0.1:{port}")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == (f"colo: error: cannot listen on 127.0.0.1:{port}: "
                                "Address already in use"), r.stderr
    assert lines[-1]["data"]["code"] == 1 and "in use" in lines[-1]["data"]["error"]


def test_a_qmp_port_in_use_is_named_once(tmp_path):
    """--qmp tcp:H:P on a port in use said "error while attempting to bind on address
    ('127.0.0.1', P): address already in use" (asyncio's text) after the address."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        r, lines = _node(tmp_path, "secondary", "--listen", "127.0.0.1:0",
                         "--qmp", f"tcp:127.0.0.1:{port}")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == (f"colo: error: cannot open the QMP socket "
                                f"tcp:127.0.0.1:{port}: Address already in use"), r.stderr
