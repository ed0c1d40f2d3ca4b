"""Wait, bounded, until a QMP server accepts connections.

QEMU's ``-qmp unix:PATH,server=on,wait=off`` creates the socket file (bind) a
moment before it listens: a client that connects as soon as the file exists gets
ECONNREFUSED.  A just-started `colo node` has the same window.  Nothing signals
the listen(), so this polls: connect, and on "refused" or "no such file" try
again every `poll_s` until `timeout_s`.  The probe connection is closed at once
(QEMU's monitor keeps listening and takes the next client).
"""
from __future__ import annotations

import asyncio
import socket
import time

from protocol.errors import ColoError


class QmpNotAccepting(ColoError, TimeoutError):
    """The QMP server did not accept within the bound."""


_RETRY = (ConnectionRefusedError, FileNotFoundError)


async def wait_accepting(address: str, timeout_s: float = 10.0, *, poll_s: float = 0.05,
                         alive=None, on_refused=None) -> int:
    """Return once `address` (``unix:PATH`` or ``tcp:HOST:PORT``) accepts a
    connection; the number of refused tries before that.  `alive()` (optional)
    False: the server's process is gone, stop waiting.  `on_refused(n)` is called
    after each refused try (tests use it to start listening).  QmpNotAccepting
    after `timeout_s`; other OSErrors (permission, not a socket) at once."""
    from protocol.drivers.qmp import parse_address
    kind, where = parse_address(address)
    deadline = time.monotonic() + timeout_s
    refused = 0
    last: OSError | None = None
    while True:
        sock = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            left = max(0.001, deadline - time.monotonic())
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, where),
                                   left)
            return refused
        except _RETRY as exc:
            last = exc
        except TimeoutError:
            last = None
        finally:
            sock.close()
        refused += 1
        if on_refused is not None:
            on_refused(refused)
        if alive is not None and not alive():
            raise QmpNotAccepting(f"QMP {address}: the server's process exited before it "
                                  "accepted a connection")
        if time.monotonic() >= deadline:
            why = f" (last: {last.strerror or last})" if last is not None else ""
            raise QmpNotAccepting(f"QMP {address} did not accept a connection within "
                                  f"{timeout_s:g} s after {refused} tries{why}")
        await asyncio.sleep(poll_s)       # polling: nothing signals the server's listen()
