"""A scripted QMP server on loopback TCP, for tests of `--attach` (QmpFeed).

It greets as QEMU 7.2 does, answers qmp_capabilities and the three status queries
from `state`, and sends the events a test asks for, each with a QMP timestamp
(``emit``), at once or just before the reply to a command (``before``: the test
decides what arrives in the middle of a status poll).
"""
from __future__ import annotations

import json
import socket
import threading
import time


class FakeQmp:
    def __init__(self, *, status: str = "running", migration: str = "none",
                 mode: str = "none") -> None:
        self.state = {"status": status, "migration": migration,
                      "colo": {"mode": mode, "last-mode": "none", "reason": "none"}}
        #: command -> callables run (in order, once each) just before its next reply
        self.hooks: dict[str, list] = {}
        self.seen: list[str] = []           # the commands received
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)          # accept() wakes up to see stop
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.conn: socket.socket | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # -- what a test does ------------------------------------------------------------
    def emit(self, name: str, data: dict | None = None, *, at: float | None = None) -> float:
        """Send event `name` now, stamped `at` (wall clock; default now); the stamp."""
        t = time.time() if at is None else at
        sec = int(t)
        msg = {"timestamp": {"seconds": sec, "microseconds": int((t - sec) * 1e6)},
               "event": name}
        if data is not None:
            msg["data"] = data
        self._send(msg)
        return t

    def before(self, command: str, fn) -> None:
        """Run fn(self) just before the reply to the next `command`."""
        with self.lock:
            self.hooks.setdefault(command, []).append(fn)

    def count(self, command: str) -> int:
        with self.lock:
            return self.seen.count(command)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        if self.conn is not None:
            self.conn.close()
        self.sock.close()

    # -- the server --------------------------------------------------------------------
    def _send(self, msg: dict) -> None:
        with self.lock:
            conn = self.conn
        if conn is not None:
            conn.sendall(json.dumps(msg).encode() + b"\r\n")

    def _answer(self, cmd: str):
        st = self.state
        if cmd == "query-status":
            return {"status": st["status"], "singlestep": False,
                    "running": st["status"] == "running"}
        if cmd == "query-migrate":
            return {} if st["migration"] == "none" else {"status": st["migration"]}
        if cmd == "query-colo-status":
            return dict(st["colo"])
        if cmd == "query-migrate-parameters":
            return {"x-checkpoint-delay": 20000}
        return {}

    def _serve(self) -> None:
        end = time.monotonic() + 120            # no test runs this long
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                conn, _ = self.sock.accept()
                break
            except TimeoutError:
                continue
        else:
            return
        conn.settimeout(0.05)
        with self.lock:
            self.conn = conn
        self._send({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7},
                                        "package": "fake"}, "capabilities": ["oob"]}})
        buf = b""
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                cmd = msg.get("execute")
                with self.lock:
                    self.seen.append(cmd)
                    hooks = self.hooks.pop(cmd, [])
                for fn in hooks:
                    fn(self)
                self._send({"return": self._answer(cmd), "id": msg.get("id")})
