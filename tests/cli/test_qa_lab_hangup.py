"""The lab's client threads return at once when the lab stops (Pair.close sets
its Hangup): a ctrl+c or SIGTERM of `colo lab` during the guest's boot waited for
`ready` to reach its 180 s deadline (asyncio.run joins its worker threads), and
one during the echo load for a 10 s recv timeout.  A server that accepts and
never answers stands in for a guest that does not answer yet."""
from __future__ import annotations

import socket
import threading
import time

from colo_tui.lab.traffic import Addr, Hangup, echo_load, random_probe, ready


def _silent_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
    threading.Thread(target=accept, daemon=True).start()
    return srv, held


def _returns_soon_after_hangup(fn, *args) -> float:
    hang = Hangup()
    srv, held = _silent_server()
    addr = Addr(srv.getsockname()[1], hangup=hang)
    out: list = []
    th = threading.Thread(target=lambda: out.append(fn(addr, *args)), daemon=True)
    try:
        th.start()
        time.sleep(0.5)
        assert th.is_alive()        # it is waiting on the silent guest
        t0 = time.monotonic()
        hang.set()
        th.join(5)
        assert not th.is_alive(), f"{fn.__name__} still waits after the lab stopped"
        return time.monotonic() - t0
    finally:
        srv.close()
        for c in held:
            c.close()


def test_ready_returns_when_the_lab_stops():
    assert _returns_soon_after_hangup(ready, time.monotonic() + 120) < 2


def test_echo_load_returns_when_the_lab_stops():
    assert _returns_soon_after_hangup(echo_load, 60) < 2


def test_random_probe_returns_when_the_lab_stops():
    assert _returns_soon_after_hangup(random_probe, 50) < 2


def test_a_stopped_lab_refuses_new_connections():
    hang = Hangup()
    hang.set()
    srv, _ = _silent_server()
    try:
        t0 = time.monotonic()
        assert ready(Addr(srv.getsockname()[1], hangup=hang), time.monotonic() + 60) is False
        assert time.monotonic() - t0 < 1
    finally:
        srv.close()
