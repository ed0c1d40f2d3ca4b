"""Waiting for a QMP server that binds its socket before it listens (QEMU's race),
against real unix sockets; and the real-QEMU tests' Side surviving a failed connect."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading

import pytest

from protocol.drivers.qmpwait import QmpNotAccepting, wait_accepting


def _bound_not_listening(path) -> socket.socket:
    """What QEMU has between bind() and listen(): the file exists, connect is refused."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    return s


def test_waits_until_the_server_listens(tmp_path):
    path = tmp_path / "late.qmp"
    srv = _bound_not_listening(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe, \
            pytest.raises(ConnectionRefusedError):
        probe.connect(str(path))          # the race itself: file there, no listener
    seen = []

    def refused(n):
        seen.append(n)
        if n == 3:
            srv.listen(1)                 # QEMU gets to listen() after three tries

    async def go():
        return await wait_accepting(f"unix:{path}", 10, poll_s=0.001, on_refused=refused)
    try:
        assert asyncio.run(go()) == 3
        assert seen == [1, 2, 3]
        conn, _ = srv.accept()            # the probe really reached the listener
        conn.close()
    finally:
        srv.close()


def test_bounded_when_nothing_ever_listens(tmp_path):
    path = tmp_path / "never.qmp"
    srv = _bound_not_listening(path)
    try:
        with pytest.raises(QmpNotAccepting, match=r"did not accept a connection within "
                           r"0\.2 s after \d+ tries \(last: Connection refused\)"):
            asyncio.run(wait_accepting(f"unix:{path}", 0.2, poll_s=0.01))
    finally:
        srv.close()


def test_stops_waiting_when_the_server_process_is_gone(tmp_path):
    with pytest.raises(QmpNotAccepting, match="process exited"):
        asyncio.run(wait_accepting(f"unix:{tmp_path / 'absent.qmp'}", 10,
                                   alive=lambda: False))


def _side(tmp_path, name="secondary"):
    """A real-QEMU test Side, on a stand-in process (no QEMU here)."""
    from tests.qemu._qemu import Side
    side = Side.__new__(Side)
    side.name, side.work = name, tmp_path
    side.qmp_path = tmp_path / f"{name}.qmp"
    side.events, side.qmp, side._task = [], None, None
    side.proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE)
    return side


def _end(side) -> None:
    side.proc.stdin.close()
    side.proc.wait(10)


def _serve_blocking(srv: socket.socket, stop: threading.Event) -> None:
    """A minimal QMP peer on a listening socket (a thread): greeting, {} to every
    command, until `quit` or the client goes; the probe connections just end."""
    greet = {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7},
                                 "package": ""}, "capabilities": []}}
    srv.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            continue
        with conn:
            try:
                conn.sendall((json.dumps(greet) + "\r\n").encode())
                buf, dec = "", json.JSONDecoder()
                while data := conn.recv(4096):   # qemu.qmp ends no command with a newline
                    buf += data.decode()
                    while buf.strip():
                        msg, end = dec.raw_decode(buf.lstrip())
                        buf = buf.lstrip()[end:]
                        conn.sendall((json.dumps({"return": {}, "id": msg.get("id")})
                                      + "\r\n").encode())
                        if msg.get("execute") == "quit":
                            return
            except (OSError, ValueError):
                pass


def test_side_connects_to_a_server_that_listens_late(tmp_path):
    pytest.importorskip("qemu.qmp")
    from protocol.drivers import qmpwait
    side = _side(tmp_path)
    srv = _bound_not_listening(side.qmp_path)
    stop = threading.Event()
    server = threading.Thread(target=_serve_blocking, args=(srv, stop), daemon=True)
    real = qmpwait.wait_accepting
    refusals = []

    async def late(address, timeout_s, **kw):      # QEMU listens after two refusals
        def refused(n):
            refusals.append(n)
            if n == 2:
                srv.listen(4)
                server.start()
        return await real(address, timeout_s, poll_s=0.001, on_refused=refused, **kw)

    async def go():
        await side.connect()
        assert side._task is not None
        assert await side.ex("query-status") == {}
        await side.close()
    qmpwait.wait_accepting = late
    try:
        asyncio.run(asyncio.wait_for(go(), 20))
        assert refusals == [1, 2]
    finally:
        qmpwait.wait_accepting = real
        stop.set()
        if server.is_alive():
            server.join(5)
        srv.close()
        _end(side)


def test_side_close_is_safe_after_a_failed_connect(tmp_path):
    pytest.importorskip("qemu.qmp")
    side = _side(tmp_path)

    async def slam(reader, writer):       # accepts, then hangs up: no greeting
        writer.close()

    async def go():
        server = await asyncio.start_unix_server(slam, path=str(side.qmp_path))
        try:
            with pytest.raises(Exception) as info:
                await side.connect()
            assert not isinstance(info.value, AttributeError)
            assert side._task is None
            await side.close()            # used to fail: no attribute '_task'
        finally:
            server.close()
    try:
        asyncio.run(asyncio.wait_for(go(), 20))
    finally:
        _end(side)


def test_qmp_call_waits_for_a_server_that_is_not_there_yet(tmp_path):
    """`qmp_call` on a socket that does not exist yet (a node or QEMU still
    starting) waits within its timeout instead of failing at once."""
    from protocol.drivers.qmp import qmp_call
    path = tmp_path / "starting.qmp"

    async def serve(reader, writer):
        writer.write(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        for _ in range(2):
            req = json.loads(await reader.readuntil(b"}"))
            ret = {"status": "colo"} if req["execute"] == "query-status" else {}
            writer.write(json.dumps({"return": ret, "id": req["id"]}).encode() + b"\r\n")
            await writer.drain()
        writer.close()

    async def go():
        call = asyncio.create_task(qmp_call(f"unix:{path}", "query-status", timeout_s=10))
        for _ in range(5):
            await asyncio.sleep(0)        # the call has tried, and found no socket
        assert not path.exists() and not call.done()
        server = await asyncio.start_unix_server(serve, str(path))
        async with server:
            return await call
    assert asyncio.run(go()) == {"return": {"status": "colo"}, "id": 1}
