"""Engine contract tests, on asyncio's loop and on uvloop."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from protocol.core import dialects
from protocol.core.endpoint import make_endpoint
from protocol.drivers.tcp import Engine, loop_name, new_loop

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def loop(request):
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    lp = new_loop(uvloop=request.param == "uvloop")
    assert loop_name(lp) == request.param
    yield lp
    _CHANGES.pop(id(lp), None)
    lp.close()


def _pair(loop, dialect="qemu", delay=5, nodelay=True, **kw):
    d = dialects.get(dialect)
    p = make_endpoint("primary", d, checkpoint_delay_ms=delay)
    s = make_endpoint("secondary", d)
    events = {"primary": [], "secondary": []}
    ch = changes(loop)
    ep = Engine(p, loop, nodelay=nodelay, on_events=ch.sink(events["primary"]), **kw)
    es = Engine(s, loop, nodelay=nodelay, on_events=ch.sink(events["secondary"]), **kw)
    ch.watch(ep, es)
    return p, s, ep, es, events


async def _connect(loop, ep, es):
    a, b = socket.socketpair()  # AF_UNIX is fine for the contract; TCP below
    a.close()
    b.close()
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    accept = loop.create_task(loop.sock_accept(lsock))
    await ep.connect("127.0.0.1", port)
    conn, _ = await accept
    lsock.close()
    await es.attach_socket(conn)


class Changes:
    """Wakes a waiter when an engine reports events or a connection closes: the
    conditions the tests wait for change only then (no polling)."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self.waiters: list = []

    def sink(self, events: list):
        def on_events(evs) -> None:
            events.extend(evs)
            self.poke()
        return on_events

    def watch(self, *engines) -> None:
        for e in engines:
            e.closed.add_done_callback(lambda _f: self.poke())

    def poke(self) -> None:
        for pred, fut in self.waiters:
            if not fut.done() and pred():
                fut.set_result(True)

    async def until(self, pred, timeout_s: float = 5.0) -> None:
        import asyncio
        if pred():
            return
        entry = (pred, self.loop.create_future())
        self.waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout_s)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout_s} s") from None
        finally:
            self.waiters.remove(entry)


_CHANGES: dict[int, Changes] = {}


def changes(loop) -> Changes:
    return _CHANGES.setdefault(id(loop), Changes(loop))


async def _until(loop, pred, timeout_s=5.0):
    await changes(loop).until(pred, timeout_s)


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
def test_checkpoints_in_each_dialect(loop, dialect):
    p, s, ep, es, ev = _pair(loop, dialect)

    async def go():
        await _connect(loop, ep, es)
        await _until(loop, lambda: p.checkpoint >= 5 and s.checkpoint >= 5)
    loop.run_until_complete(go())
    # the pair runs on (the 6th checkpoint may have begun): healthy, not necessarily IDLE
    assert p.state not in ("ERROR", "DONE") and s.state not in ("ERROR", "DONE")
    assert p.error is None and s.error is None
    n = [e.payload()["n"] for e in ev["primary"] if e.kind == "checkpoint" and e.payload()["phase"] == "commit"]
    assert n[:5] == [1, 2, 3, 4, 5]          # monotonic, no gaps
    assert ep.writes > 0 and 0 < es.bytes_in <= ep.bytes_out


@pytest.mark.parametrize("nodelay", [True, False])
def test_nodelay_option_is_applied(loop, nodelay):
    p, s, ep, es, _ = _pair(loop, nodelay=nodelay)

    async def go():
        await _connect(loop, ep, es)
        sock = ep.transport.get_extra_info("socket")
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert bool(loop.run_until_complete(go())) is nodelay


def test_coalesced_write_per_wakeup(loop):
    p, s, ep, es, _ = _pair(loop)

    async def go():
        await _connect(loop, ep, es)
        await _until(loop, lambda: p.checkpoint >= 3)
    loop.run_until_complete(go())
    # per checkpoint the primary wakes 4 times (timer, reply, received, loaded) but
    # writes only twice: the request, then vmstate-send+ram+size+blob in one write
    assert ep.writes <= 1 + 2 * (p.checkpoint + 1)


def test_failover_closes_and_peer_sees_eof(loop):
    p, s, ep, es, ev = _pair(loop, delay=30)

    async def go():
        await _connect(loop, ep, es)
        await _until(loop, lambda: p.checkpoint >= 1)
        es.run(s.lost_heartbeat)
        await _until(loop, lambda: s.state == "DONE" and ep.closed.done() or p.state == "ERROR")
        await _until(loop, lambda: p.state == "ERROR", 3)
    loop.run_until_complete(go())
    assert s.close_requested and es.closed.done()
    kinds = [(e.kind, e.payload().get("reason")) for e in ev["secondary"] if e.kind == "colo-exit"]
    assert kinds == [("colo-exit", "request")]
    assert [e.payload()["reason"] for e in ev["primary"] if e.kind == "colo-exit"] == ["error"]


BLOCKED_S = 0.5


async def _writable(loop, sock: socket.socket, timeout_s: float) -> bool:
    """Wait until `sock` can take more bytes (True) or `timeout_s` passed (False)."""
    import asyncio
    ready = loop.create_future()
    loop.add_writer(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout_s)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_writer(sock.fileno())


def _hostile(loop, payload: bytes, close_on_error: bool):
    d = dialects.PROTOTYPE
    s = make_endpoint("secondary", d)
    ch = changes(loop)
    es = Engine(s, loop, close_on_error=close_on_error, max_pending_bytes=1 << 20,
                on_events=ch.sink([]))
    ch.watch(es)

    async def go():
        import asyncio
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        accept = loop.create_task(loop.sock_accept(lsock))
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = await accept
        lsock.close()
        await es.attach_socket(conn)
        c.sendall(payload)
        await _until(loop, lambda: s.state == "ERROR")
        # an endless stream: we stop reading (or close), so the sender blocks or fails
        c.setblocking(False)
        sent = 0
        chunk = b"\xff" * 65536
        for _ in range(4096):                   # at most 256 MiB
            try:
                sent += c.send(chunk)
            except BlockingIOError:
                # the socket buffers are full: wait for the engine to drain them; still
                # full after BLOCKED_S, the sender is blocked (nobody reads)
                if not await _writable(loop, c, BLOCKED_S):
                    break
            except OSError:
                break
        if close_on_error:
            await asyncio.wait_for(asyncio.shield(es.closed), 5)
        c.close()
        return sent
    sent = loop.run_until_complete(go())
    return s, es, sent


@pytest.mark.parametrize("payload,text", [
    (b"\x00\x00\x00\x00\xde\xad\xbe\xef", "Invalid message"),
    (bytes.fromhex("0000000000000047" "0000000000000049") + (1 << 40).to_bytes(8, "big"),
     "exceeds the limit"),
])
@pytest.mark.parametrize("close_on_error", [False, True])
def test_hostile_peer_bounded(loop, payload, text, close_on_error):
    s, es, sent = _hostile(loop, payload, close_on_error)
    assert text in s.error
    assert len(s.decoder._buf) < (1 << 20)
    assert es.bytes_in < 8 << 20              # we stopped reading
    assert sent < 64 << 20                    # the peer could not push 128 MiB at us
    if close_on_error:
        assert es.closed.done()


def test_import_protocol_loads_no_event_loop():
    code = ("import sys, protocol, protocol.drivers.node, protocol.drivers.qmp, protocol.drivers.tcp, "
            "protocol.core.proxymachine; "
            "bad = [m for m in ('asyncio', 'uvloop') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
