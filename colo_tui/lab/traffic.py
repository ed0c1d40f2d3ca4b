"""Host-side clients of the lab guest's services (through the primary's
user-mode netdev port forwards, or inside the lab's namespace with tap).  Blocking sockets with timeouts, so every
wait is bounded; run them in a thread from asyncio."""
from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Addr:
    """Where a guest service answers: a host port forward (user-mode network,
    127.0.0.1) or the guest's own address inside the lab's namespace (tap)."""

    port: int
    host: str = "127.0.0.1"
    net: object = None          # a netns.LabNet: connect from inside its namespace

    def connect(self, timeout: float) -> socket.socket:
        if self.net is None:
            return socket.create_connection((self.host, self.port), timeout)
        s = self.net.socket()
        try:
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
    while time.monotonic() < deadline:
        try:
            e = Echo(port, timeout=min(10.0, max(0.5, deadline - time.monotonic())))
            try:
                e.request()
                return True
            finally:
                e.close()
        except OSError:
            time.sleep(0.2)     # between attempts, not a synchronisation
    return False


def echo_load(port: Addr | int, seconds: float, seed: int = 14) -> dict:
    """Requests on one connection for `seconds`: count, rate, worst round trip."""
    e = Echo(port, seed)
    rtts: list[float] = []
    t0 = time.monotonic()
    error = None
    try:
        while time.monotonic() - t0 < seconds:
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
    for _ in range(count):
        try:
            with _addr(port).connect(timeout) as s:
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
