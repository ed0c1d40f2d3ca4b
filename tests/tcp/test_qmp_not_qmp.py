"""`colo repl|tui --attach` to an address where another service listens (HTTP, ssh, a
JSON service, a port that closes at once) says that the address did not greet as a
QMP server, and briefly what it sent.  Before, a silent HTTP port read 'no answer
within 5 s', an ssh port "not JSON: b'SSH-2.0-…'" and a closing port 'the QMP
connection closed': as if a QMP server had stopped answering."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from protocol.drivers.qmpclient import QmpClient, QmpClientError
from tests.tcp._nodes import ROOT


class _Service:
    """A loopback TCP service that greets each client with `greeting` (None: says
    nothing and waits, as HTTP does), then keeps it open or (`close`) closes it."""

    def __init__(self, greeting: bytes | None, *, close: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)       # accept() wakes up to see stop (close does not)
        self.port = self.sock.getsockname()[1]
        self.greeting, self.close_at_once = greeting, close
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import time
        conns = []
        end = time.monotonic() + 60
        try:
            while not self.stop.is_set() and time.monotonic() < end:
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                if self.greeting:
                    conn.sendall(self.greeting)
                if self.close_at_once:
                    conn.close()
                else:
                    conns.append(conn)
        finally:
            for c in conns:
                c.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sock.close()


@pytest.mark.parametrize(("greeting", "close", "said"), [
    (None, False, "it sent nothing within 0.5 s"),
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", False, "it sent 'SSH-2.0-OpenSSH_9.2p1 Debian-2'"),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", True,
     "it sent 'HTTP/1.1 400 Bad Request' … (another service"),
    (b'{"hello": "world"}\n', False, "it sent '{\"hello\": \"world\"}' (JSON, but no"),
    (b"\x00\x01\xff binary", True, "it sent '\ufffd\ufffd\ufffd binary' and closed"),
    (b"", True, "it closed the connection without a word"),
])
def test_a_service_that_is_not_qmp_is_named(greeting, close, said):
    svc = _Service(greeting, close=close)
    try:
        with pytest.raises(QmpClientError) as err:
            QmpClient(f"127.0.0.1:{svc.port}", timeout=0.5, name="primary")
        text = str(err.value)
        assert text.startswith(f"primary: 127.0.0.1:{svc.port} did not greet as a QMP "
                               "server: "), text
        assert said in text, text
        assert "no answer within" not in text and "not JSON" not in text
    finally:
        svc.close()


def test_a_long_banner_is_cut():
    svc = _Service(b"X" * 500 + b"\r\n")
    try:
        with pytest.raises(QmpClientError) as err:
            QmpClient(f"127.0.0.1:{svc.port}", timeout=0.5)
        assert "'" + "X" * QmpClient.QUOTE_CHARS + "' …" in str(err.value)
        assert "X" * (QmpClient.QUOTE_CHARS + 1) not in str(err.value)
    finally:
        svc.close()


def test_repl_attach_to_an_ssh_port_says_it_is_not_qmp():
    ssh = _Service(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    other = _Service(None)
    try:
        r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--attach",
                            f"127.0.0.1:{ssh.port}", f"127.0.0.1:{other.port}"],
                           input="", capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert r.returncode != 0
        assert (f"colo repl: error: primary: 127.0.0.1:{ssh.port} did not greet as a QMP "
                "server: it sent 'SSH-2.0-OpenSSH_9.2p1 Debian-2'") in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        ssh.close()
        other.close()
