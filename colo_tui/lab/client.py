"""The lab TUI's client: one echo connection through the primary's netdev, paced
(a request every `every_s`), so its packets stay readable on the ladder; the
counters are the client's view of COLO (answers, round trips, the longest gap
between two answers: the outage a failover costs it).

It runs in its own thread (blocking sockets with timeouts, every wait bounded)
and hands out frozen `ClientView` snapshots."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from colo_tui.lab.traffic import Echo

#: how long one request may wait for its echo (colo-compare may hold an answer for
#: its 3 s timeout plus a scan; a surviving connection waits out retransmissions)
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ClientView:
    sent: int = 0
    answered: int = 0
    connections: int = 0
    breaks: int = 0
    last_rtt_ms: float | None = None
    longest_gap_s: float = 0.0          # between two answers on one connection
    silent_s: float = 0.0               # since the last answer (0 before the first)
    error: str = ""

    def line(self) -> str:
        """The client's view in a few words (a side panel's field: keep it short)."""
        if not self.connections and not self.error:
            return "client: not connected yet"
        text = f"client {self.answered}/{self.sent}"
        if self.last_rtt_ms is not None:
            text += f", rtt {self.last_rtt_ms:.0f} ms"
        text += f", max gap {self.longest_gap_s:.1f} s"
        if self.silent_s >= 2:
            text += f", silent {self.silent_s:.0f} s"
        if self.breaks:
            text += f", {self.breaks} broke"
        if self.error and not self.connections:
            text += f" ({self.error})"
        return text


class LabClient:
    """Echo requests every `every_s` until `stop()`; reconnects after a break."""

    def __init__(self, addr, every_s: float = 0.5, on_break=None) -> None:
        self.addr = addr
        self.every_s = every_s
        self.on_break = on_break           # called (client thread) with the reason
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._view = ClientView()
        self._last_answer: float | None = None
        self._echo: Echo | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lab-client", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop at once: a request waiting for its echo is cut (its socket shut)."""
        self._stop.set()
        echo = self._echo
        if echo is not None:
            import socket
            try:
                echo.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)

    def view(self) -> ClientView:
        with self._lock:
            v = self._view
            last = self._last_answer
        if last is None:
            return v
        from dataclasses import replace
        return replace(v, silent_s=round(time.monotonic() - last, 1))

    def _set(self, **changes) -> None:
        from dataclasses import replace
        with self._lock:
            self._view = replace(self._view, **changes)

    def _run(self) -> None:
        seed = 14
        while not self._stop.is_set():
            try:
                echo = Echo(self.addr, seed=seed, timeout=REQUEST_TIMEOUT_S)
            except OSError as exc:
                self._set(error=f"connect: {exc}")
                self._stop.wait(1.0)            # between attempts, not a synchronisation
                continue
            seed += 1
            self._echo = echo
            self._set(connections=self._view.connections + 1, error="")
            prev: float | None = None
            try:
                while not self._stop.is_set():
                    self._set(sent=self._view.sent + 1)
                    rtt = echo.request()
                    now = time.monotonic()
                    gap = self._view.longest_gap_s if prev is None else \
                        max(self._view.longest_gap_s, round(now - prev, 2))
                    prev = now
                    with self._lock:
                        self._last_answer = now
                    self._set(answered=self._view.answered + 1,
                              last_rtt_ms=round(rtt * 1000, 1), longest_gap_s=gap)
                    self._stop.wait(self.every_s)   # the pace of the workload
            except OSError as exc:
                if not self._stop.is_set():
                    self._set(breaks=self._view.breaks + 1, error=str(exc))
                    if self.on_break is not None:
                        self.on_break(str(exc))
                    self._stop.wait(1.0)
            finally:
                self._echo = None
                echo.close()
