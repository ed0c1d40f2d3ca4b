"""Host-side clients of the lab guest's services (through the primary's
user-mode netdev port forwards, or inside the lab's namespace with tap).  Blocking sockets with timeouts, so every
wait is bounded; run them in a thread from asyncio."""
from __future__ import annotations

import random
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field


class Hangup:
    """Set when the lab stops (Pair.close): the client sockets made through an
    Addr that carries it are shut down, so a thread blocked in connect or recv
    returns at once, and `ready` stops retrying.  Without it a ctrl+c or SIGTERM
    waited for the thread: up to `ready`'s whole deadline (180 s) during the
    guest's boot, since asyncio.run joins its worker threads."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._socks: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()

    def track(self, s: socket.socket) -> None:
        with self._lock:
            if self.event.is_set():
                raise ConnectionAbortedError("the lab is stopping")
            self._socks.add(s)

    def set(self) -> None:
        with self._lock:
            self.event.set()
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass(frozen=True)
class Addr:
    """Where a guest service answers: a host port forward (user-mode network,
    127.0.0.1) or the guest's own address inside the lab's namespace (tap)."""

    port: int
    host: str = "127.0.0.1"
    net: object = None          # a netns.LabNet: connect from inside its namespace
    #: the lab's stop (Pair.close): cuts this address's sockets
    hangup: Hangup | None = field(default=None, compare=False)

    def stopped(self) -> bool:
        return self.hangup is not None and self.hangup.is_set()

    def connect(self, timeout: float) -> socket.socket:
        if self.net is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        else:
            s = self.net.socket()
        try:
            if self.hangup is not None:
                self.hangup.track(s)
            s.settimeout(timeout)
            s.connect((self.host, self.port))
        except BaseException:
            s.close()
            raise
        return s


def _addr(target: Addr | int) -> Addr:
    return target if isinstance(target, Addr) else Addr(target)


class Echo:
    """One TCP connection to the guest's echo service: each request is a
    seeded random line, each answer must be the same line."""

    def __init__(self, target: Addr | int, seed: int = 14, timeout: float = 10.0) -> None:
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.sock = _addr(target).connect(timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.sent = 0
        self.answered = 0

    def request(self) -> float:
        """Send one line, wait for its echo; the round trip in seconds."""
        line = b"%d:%s\n" % (self.sent, self.rng.randbytes(self.rng.randint(1, 48)).hex()
                              .encode())
        t0 = time.monotonic()
        self.sock.sendall(line)
        self.sent += 1
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError(f"the echo service closed the connection after "
                                      f"{self.answered} answers")
            self.buf += data
            if len(self.buf) > 1 << 16:
                raise ConnectionError("the echo service sent 64 KiB without a newline")
        got, self.buf = self.buf.split(b"\n", 1)
        if got + b"\n" != line:
            raise ConnectionError(f"echo mismatch at request {self.sent}: sent {line!r}, "
                                  f"got {got!r}")
        self.answered += 1
        return time.monotonic() - t0

    def close(self) -> None:
        self.sock.close()


def ready(port: Addr | int, deadline: float) -> bool:
    """True once the echo service answers (slirp accepts the host connection
    before the guest listens, so only an echoed byte proves it).  Each try waits
    up to 10 s: colo-compare may hold an answer for its 3 s compare timeout
    plus a 3 s scan cycle."""
    addr = _addr(port)
    while time.monotonic() < deadline and not addr.stopped():
        try:
            e = Echo(addr, timeout=min(10.0, max(0.5, deadline - time.monotonic())))
            try:
                e.request()
                return True
            finally:
                e.close()
        except OSError:
            if addr.hangup is not None:     # between attempts, not a synchronisation
                addr.hangup.event.wait(0.2)
            else:
                time.sleep(0.2)
    return False


def echo_load(port: Addr | int, seconds: float, seed: int = 14) -> dict:
    """Requests on one connection for `seconds`: count, rate, worst round trip."""
    addr = _addr(port)
    e = Echo(addr, seed)
    rtts: list[float] = []
    t0 = time.monotonic()
    error = None
    try:
        while time.monotonic() - t0 < seconds and not addr.stopped():
            rtts.append(e.request())
    except OSError as exc:
        error = str(exc)
    finally:
        e.close()
    wall = time.monotonic() - t0
    rtts.sort()
    return {"requests": len(rtts), "seconds": round(wall, 2),
            "per_second": round(len(rtts) / wall, 1) if wall else 0.0,
            "rtt_ms_median": round(rtts[len(rtts) // 2] * 1000, 2) if rtts else None,
            "rtt_ms_max": round(rtts[-1] * 1000, 1) if rtts else None, "error": error}


def random_probe(port: Addr | int, count: int, timeout: float = 15.0) -> dict:
    """`count` connections to the guest's random service: each answer differs
    between primary and secondary, so colo-compare must see a mismatch."""
    answers, errors = [], []
    addr = _addr(port)
    for _ in range(count):
        if addr.stopped():
            break
        try:
            with addr.connect(timeout) as s:
                s.settimeout(timeout)
                data = b""
                while len(data) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            answers.append(data.decode(errors="replace").strip())
        except OSError as exc:
            errors.append(str(exc))
    return {"connections": count, "answers": sum(1 for a in answers if len(a) == 32),
            "errors": errors[:3]}
