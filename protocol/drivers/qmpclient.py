"""A small synchronous QMP client: talk to a `colo node` (or a real QEMU).

Used by `colo repl --attach` and `colo tui --attach`.  Addresses are
``unix:PATH`` or ``tcp:HOST:PORT`` (``HOST:PORT`` alone means tcp).  Every
read has a timeout; replies are matched by id; events that arrive in between
are queued for ``events()``.
"""
from __future__ import annotations

import json
import socket
import time
from collections import deque

from protocol.drivers.qmpjson import parse_json
from protocol.errors import ColoError, QmpCommandError

MAX_LINE_BYTES = 1 << 20


class QmpClientError(ColoError):
    """The peer is not reachable, not QMP, or went away."""


class QmpTimeout(QmpClientError, TimeoutError):
    """The peer did not answer in time."""


def parse_client_address(address: str) -> tuple[str, object]:
    """What a client connects to: ``unix:PATH``, ``tcp:HOST:PORT`` or ``HOST:PORT`` (tcp;
    an empty host is 127.0.0.1), as ``(kind, target)``; ValueError quoting it otherwise
    (`colo tui|repl --attach` checks its addresses with this before anything starts)."""
    from protocol.drivers.qmp import parse_address
    if not address:
        raise ValueError("an empty QMP address (give unix:PATH, tcp:HOST:PORT or HOST:PORT)")
    text = address if address.startswith(("unix:", "tcp:")) else "tcp:" + address
    try:
        kind, target = parse_address(text)
    except ValueError:
        raise ValueError(f"bad QMP address {address!r}: use unix:PATH, tcp:HOST:PORT or "
                         "HOST:PORT (a port 1..65535)") from None
    if kind == "tcp" and target[1] == 0:
        raise ValueError(f"bad QMP address {address!r}: port 0 is no server's port "
                         "(a port 1..65535)")
    return kind, target


def _connect(address: str, timeout: float) -> socket.socket:
    try:
        kind, target = parse_client_address(address)
    except ValueError as exc:
        raise QmpClientError(str(exc)) from None
    sock = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET,
                         socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        raise QmpClientError(f"cannot connect to QMP at {address}: "
                             f"{exc.strerror or exc}") from None
    return sock


class QmpClient:
    def __init__(self, address: str, *, timeout: float = 5.0, name: str = "") -> None:
        self.address = address
        self.name = name or address
        self.timeout = timeout
        self._sock = _connect(address, timeout)
        self._buf = bytearray()
        self._closed = False
        self._events: deque[dict] = deque(maxlen=10_000)
        self._next_id = 0
        try:
            self.greeting = self._greet()
            self.execute("qmp_capabilities")
        except (QmpClientError, QmpCommandError) as exc:
            self.close()
            if isinstance(exc, QmpCommandError):
                raise QmpClientError(f"{address}: qmp_capabilities failed: {exc}") from None
            raise

    # -- the greeting ---------------------------------------------------------
    #: how much of what a non-QMP service sent is quoted
    QUOTE_CHARS = 60

    def _greet(self) -> dict:
        """The server's greeting's ``QMP`` member, or a QmpClientError that says the
        address did not greet as a QMP server and, briefly, what it sent instead.  A QMP
        server (QEMU's -qmp, `colo node --qmp`) sends {"QMP": …} to every client at once;
        an HTTP port waits for the client to speak first, ssh sends its banner."""
        where = self.address if self.name == self.address else f"{self.name}: {self.address}"
        not_qmp = f"{where} did not greet as a QMP server"
        raw = bytearray()
        try:
            greeting = self._read_message(raw=raw)
        except QmpTimeout:
            if raw:
                raise QmpClientError(f"{not_qmp}: it sent {self._quote(raw)} (a QMP server "
                                     'sends {"QMP": …} at once; another service listens '
                                     "there?)") from None
            raise QmpClientError(
                f"{not_qmp}: it sent nothing within {self.timeout:g} s (a QMP server sends "
                '{"QMP": …} at once: another service listens there, e.g. HTTP, which '
                "waits for the client to speak first? or a QEMU whose QMP socket already "
                "has a client: it serves one at a time)") from None
        except QmpClientError:
            if not raw:
                raise QmpClientError(f"{not_qmp}: it closed the connection without a "
                                     "word") from None
            raise QmpClientError(f"{not_qmp}: it sent {self._quote(raw)}"
                                 + (" and closed the connection" if self._closed else "")
                                 + " (another service listens there?)") from None
        qmp = greeting.get("QMP")
        if not isinstance(qmp, dict):
            raise QmpClientError(f"{not_qmp}: it sent {self._quote(raw)} (JSON, but no "
                                 '{"QMP": …} greeting)')
        return qmp

    @classmethod
    def _quote(cls, raw: bytes) -> str:
        """The first line of `raw`, printable, quoted and cut to QUOTE_CHARS."""
        line = bytes(raw).split(b"\n", 1)[0].rstrip(b"\r")
        text = line.decode("utf-8", "replace")
        text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
        cut = len(text) > cls.QUOTE_CHARS or b"\n" in bytes(raw).rstrip(b"\r\n")
        return repr(text[:cls.QUOTE_CHARS]) + (" …" if cut else "")

    # -- io -------------------------------------------------------------------
    def _read_message(self, timeout: float | None = None, deadline: float | None = None,
                      raw: bytearray | None = None) -> dict:
        """The next JSON object from the server (`raw`, if given, collects the first
        bytes received meanwhile, for the greeting's diagnosis)."""
        if deadline is None:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                if not line.strip():
                    continue
                try:
                    msg = parse_json(line)
                except (ValueError, RecursionError):
                    raise QmpClientError(f"{self.name}: not JSON: {line[:80]!r}") from None
                if not isinstance(msg, dict):
                    raise QmpClientError(f"{self.name}: not a JSON object: {line[:80]!r}")
                return msg
            if len(self._buf) > MAX_LINE_BYTES:
                raise QmpClientError(f"{self.name}: a QMP line longer than {MAX_LINE_BYTES}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpTimeout(f"{self.name}: no answer within {self.timeout:g} s")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise QmpTimeout(f"{self.name}: no answer within {self.timeout:g} s") from None
            except OSError as exc:
                raise QmpClientError(f"{self.name}: {exc.strerror or exc}") from None
            if not chunk:
                self._closed = True
                raise QmpClientError(f"{self.name}: the QMP connection closed")
            if raw is not None and len(raw) < 4 * self.QUOTE_CHARS:
                raw += chunk[:4 * self.QUOTE_CHARS]
            self._buf += chunk

    def _pull_nowait(self) -> None:
        """The bytes that have arrived, into the buffer, without waiting (an EOF is left
        for the next read to report, after the messages before it)."""
        self._sock.setblocking(False)
        try:
            for _ in range(64):
                if len(self._buf) > MAX_LINE_BYTES:
                    return
                try:
                    chunk = self._sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    raise QmpClientError(f"{self.name}: {exc.strerror or exc}") from None
                if not chunk:
                    return
                self._buf += chunk
        finally:
            self._sock.settimeout(self.timeout)

    def execute(self, command: str, arguments: dict | None = None) -> object:
        self._next_id += 1
        ident = self._next_id
        msg = {"execute": command, "id": ident}
        if arguments:
            msg["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            raise QmpClientError(f"{self.name}: {exc.strerror or exc}") from None
        # one deadline for the reply: events and stray replies do not extend it
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline=deadline)
            if "event" in reply:
                self._events.append(reply)
                continue
            if reply.get("id") != ident:
                continue
            if "error" in reply:
                err = reply["error"]
                if not isinstance(err, dict):
                    raise QmpClientError(f"{self.name}: malformed error reply: {reply!r:.80}")
                raise QmpCommandError(str(err.get("desc", "?")),
                                      str(err.get("class", "GenericError")))
            return reply.get("return")

    def events(self, wait: float = 0.0) -> list[dict]:
        """Events received so far (waiting up to ``wait`` seconds for a first one), and
        every one that has arrived by now, not only the first: a burst is taken whole."""
        if not self._events:
            try:
                msg = self._read_message(timeout=max(wait, 0.001))
                if "event" in msg:
                    self._events.append(msg)
            except QmpTimeout:
                pass
        self._pull_nowait()
        for _ in range(self._events.maxlen or 0):
            if b"\n" not in self._buf:
                break
            msg = self._read_message(deadline=time.monotonic())     # a whole line is there
            if "event" in msg:
                self._events.append(msg)
        out = list(self._events)
        self._events.clear()
        return out

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
