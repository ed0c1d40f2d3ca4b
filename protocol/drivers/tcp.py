"""The TCP engine: drives one sans-IO `Endpoint` over a real TCP connection.

* asyncio, with uvloop when it is installed unless ``COLO_NO_UVLOOP=1`` or
  ``new_loop(uvloop=False)``; asyncio and uvloop are imported lazily (inside
  functions) so ``import protocol`` never loads them.
* Receiving: an ``asyncio.BufferedProtocol`` reads into one preallocated
  buffer; every read is fed to ``Endpoint.receive_data`` at once (a small one
  as ``bytes``, a big one as a view of the buffer).
* Sending: after every wake-up (data, EOF, timer, operator input) the engine
  gathers the endpoint's output and writes it once (``coalesce=True``: joined
  when small, else one gathered ``writelines`` so a big RAM part is not copied);
  ``coalesce=False`` writes each piece separately, as QEMU's separate
  ``qemu_fflush`` calls do (with Nagle on, that is what makes QEMU's ≈40 ms
  delayed-ACK stalls).
* Streaming (with ``coalesce``): a RAM part comes as chunks encoded while the
  socket drains (`Outbox.stream_ram`): chunks are written until the transport
  holds `STREAM_HIGH_BYTES` unsent, and resumed from ``resume_writing``; what
  follows waits behind it, in order.  Before the endpoint's next input the
  rest is encoded and written at once (the chunks read the stopped VM's RAM).
* TCP_NODELAY is set explicitly (on by default; ``nodelay=False`` leaves
  Nagle on, as QEMU does).
* Timers: ``next_deadline()`` (endpoint ms) → ``loop.call_later``; endpoint
  time is ``(time.monotonic() - t0) * 1000``.  A deadline already due when a
  wake-up's output is written (checkpoint delay 0) fires in that wake-up, up to
  ``MAX_DUE_NOW`` in a row, without a round through the loop.
* EOF, RST and our own close → ``receive_eof``; ``close_requested`` →
  the socket is shut down and closed (QEMU's ``qemu_file_shutdown``).
* Bounded memory: one receive buffer; the decoder's pending-bytes limit is
  lowered to ``max_pending_bytes``; once the endpoint has left COLO (ERROR,
  DONE, SHUTDOWN) the engine stops reading (QEMU's COLO thread no longer reads
  either: the peer's kernel buffers fill and its writes block), or closes the
  connection when ``close_on_error`` (beyond QEMU) is set; if the peer does not
  read, our write buffer is capped (``max_write_buffer_bytes``) and the
  connection is aborted beyond it.
"""
from __future__ import annotations

import collections
import os
import socket
import time

_monotonic = time.monotonic

TERMINAL = frozenset(("ERROR", "DONE", "SHUTDOWN"))
#: coalesced output up to this size is joined into one bytes object; beyond it
#: the pieces go out in one gathered write (no copy of a big RAM part)
JOIN_MAX_BYTES = 64 << 10
RECV_BUFFER_BYTES = 1 << 20     # bulk: fewer wake-ups per MiB (measured +20 %)
MAX_PENDING_BYTES = 300 << 20
MAX_WRITE_BUFFER_BYTES = 1 << 30
#: a streamed RAM part (`Outbox.stream_ram`) is encoded while the transport holds
#: less than this many unsent bytes, and resumes when it holds at most the low mark
STREAM_HIGH_BYTES = 8 << 20
STREAM_LOW_BYTES = 2 << 20
#: reads up to this size are handed to the endpoint as bytes, bigger ones as a view
SMALL_READ_BYTES = 64 << 10
#: timers already due at the end of a wake-up fired in it, at most this many in a row
MAX_DUE_NOW = 8


def uvloop_wanted(flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("COLO_NO_UVLOOP", "") not in ("1", "true", "yes")


def new_loop(uvloop: bool | None = None):
    """A new event loop: uvloop's when wanted and installed, else asyncio's."""
    import asyncio
    if uvloop_wanted(uvloop):
        try:
            import uvloop as _uv
        except ImportError:
            pass
        else:
            return _uv.new_event_loop()
    return asyncio.new_event_loop()


def loop_name(loop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def set_nodelay(sock, on: bool) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)
    except (OSError, AttributeError):
        pass


def set_reset_on_close(sock) -> None:
    """SO_LINGER 0: close() sends an RST instead of a FIN."""
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))



def abort_transport(transport, reset: bool = False) -> None:
    """Drop a connection now; with ``reset`` the peer sees an RST, not a FIN."""
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                set_reset_on_close(sock)
            except OSError:
                pass
    transport.abort()


class Engine:
    """Drive ``endpoint`` over one connection on ``loop``.

    ``on_events(list[Event])`` receives the endpoint's events after each
    wake-up; ``before_input(now_ms)`` runs before every input (the node
    advances its guest there).  ``detail_events=False``: the endpoint builds no
    detail events (vm, migration, the actions no invariant checks), for a
    driver that neither logs nor records them.  ``wire_events=False`` goes
    further (no detail events either): nor the events of what went over the
    wire (send, recv, send-ram, recv-ram, recv-device-state: `Outbox.lean`),
    for a driver that reads only the state, checkpoint and error events.  Call
    `attach_socket` (or `connect` / `accept`) once; `closed` is a future set
    when the connection is gone.
    """

    def __init__(self, endpoint, loop, *, nodelay: bool = True, coalesce: bool = True,
                 on_events=None, before_input=None, close_on_error: bool = False,
                 on_crash=None, detail_events: bool = True, wire_events: bool = True,
                 recv_buffer_bytes: int = RECV_BUFFER_BYTES,
                 max_pending_bytes: int = MAX_PENDING_BYTES,
                 max_write_buffer_bytes: int = MAX_WRITE_BUFFER_BYTES) -> None:
        self.ep = endpoint
        self.loop = loop
        self.nodelay = nodelay
        self.coalesce = coalesce
        self.on_events = on_events
        self.on_crash = on_crash
        self.crashed: BaseException | None = None
        self.before_input = before_input
        self.close_on_error = close_on_error
        self.max_write_buffer_bytes = max_write_buffer_bytes
        out = getattr(endpoint, "out", None)
        if out is not None and not (detail_events and wire_events):
            out.detail = False      # nobody reads them: the machines skip building them
            # nor these, without wire events (no message is named in checked_msgs)
            out.lean = not wire_events
        if coalesce and out is not None:
            # a RAM part's first bytes leave while the rest is being encoded; we read
            # every stream before the endpoint's next input (`_drain`)
            out.stream_ram = True
        dec = getattr(endpoint, "decoder", None)
        if dec is not None:
            dec.max_pending_bytes = min(dec.max_pending_bytes, max_pending_bytes)
        self._buf = bytearray(recv_buffer_bytes)
        self._view = memoryview(self._buf)
        self.t0 = time.monotonic()
        self.transport = None
        self.closed = loop.create_future()
        self._timer = None
        self._timer_at: float | None = None
        self._reading = True
        self._closing = False
        self.detached = False
        self._start_on_connect = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.writes = 0
        self.last_rx_ms = 0.0
        #: output waiting behind a streamed RAM part: lists of bytes, chunk iterators
        self._queue: collections.deque = collections.deque()
        self._write_paused = False

    # ------------------------------------------------------------------ time
    def now_ms(self) -> float:
        # time.monotonic(), not loop.time(): uvloop's clock is cached per
        # iteration with 1 ms resolution
        return (_monotonic() - self.t0) * 1000.0

    def _loop_time(self, ms: float) -> float:
        return self.loop.time() + max(0.0, ms - self.now_ms()) / 1000.0

    # ---------------------------------------------------------- connections
    async def connect(self, host: str, port: int, timeout_s: float = 10.0,
                      start: bool = True):
        import asyncio
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, (host, port)), timeout_s)
        except BaseException:
            sock.close()
            raise
        await self.attach_socket(sock, start)

    async def attach_socket(self, sock, start: bool = True) -> None:
        """Run the connection on ``sock``; ``start``: call ``endpoint.start`` as
        soon as it is connected (before any byte is read)."""
        self._start_on_connect = start
        set_nodelay(sock, self.nodelay)
        cls = _protocol_class()
        await self.loop.connect_accepted_socket(lambda: cls(self), sock)
        set_nodelay(sock, self.nodelay)     # asyncio sets TCP_NODELAY itself: undo/redo

    def run(self, fn, *args):
        """Run an operator input ``fn(*args, now)`` on the endpoint, then pump.

        Exceptions (QmpCommandError) propagate after the pump."""
        if self._queue:
            self._drain(True)
        now = self.now_ms()
        if self.before_input is not None:
            self.before_input(now)
        try:
            return fn(*args, now)
        finally:
            self.pump()

    # -------------------------------------------------------------- inputs
    def _on_connection(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=STREAM_HIGH_BYTES, low=STREAM_LOW_BYTES)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_nodelay(sock, self.nodelay)
        if self._start_on_connect:
            now = self.now_ms()
            if self.before_input is not None:
                self.before_input(now)
            self.ep.start(now)
        self.pump()

    def _on_data(self, nbytes: int) -> None:
        if self.detached:
            return
        if self._queue:
            self._drain(True)
        now = (_monotonic() - self.t0) * 1000.0
        self.bytes_in += nbytes
        self.last_rx_ms = now
        before = self.before_input
        if before is not None:
            before(now)
        # a small read goes in as bytes: the decoder keeps an immutable buffer as
        # it is (no bytearray to grow, no tail to copy); a big one as a view, which
        # the decoder copies once anyway (control rate: 2–10 % less CPU, A/B medians)
        view = self._view[:nbytes]
        self.ep.receive_data(bytes(view) if nbytes <= SMALL_READ_BYTES else view, now)
        self.pump()

    def _on_eof(self) -> None:
        if self.detached:
            return
        if self._queue:
            self._drain(True)
        now = self.now_ms()
        if self.before_input is not None:
            self.before_input(now)
        self.ep.receive_eof(now)
        self.pump()

    def detach(self) -> None:
        """The process is quitting: no more inputs reach the endpoint."""
        self.detached = True
        self.on_events = None
        self._cancel_timer()

    def _on_lost(self, exc) -> None:
        if self.detached:
            if not self.closed.done():
                self.closed.set_result(exc)
            return
        self._queue.clear()         # nowhere to write it
        if not self.ep.peer_closed:
            self._on_eof()
        self._cancel_timer()
        self._reschedule()   # timers keep running (v11 default failover …)
        if not self.closed.done():
            self.closed.set_result(exc)

    def _guard(self, fn, *args) -> None:
        """A bug below (not a protocol error: those are events) must not leave a
        silent, hung process: report it through ``on_crash`` and stop."""
        try:
            fn(*args)
        except Exception as exc:   # noqa: BLE001
            self._crash(exc)

    def _crash(self, exc: BaseException) -> None:
        self.crashed = exc
        if self.on_crash is None:
            raise exc
        self.on_crash(exc)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.detached:
            return
        if self._queue:
            self._drain(True)
        now = self.now_ms()
        if self.before_input is not None:
            self.before_input(now)
        self.ep.handle_timer(now)
        self.pump()

    # -------------------------------------------------------------- outputs
    def pump(self) -> None:
        """Gather events and output after a wake-up; write once; re-arm timers.

        A timer already due when the wake-up ends (a checkpoint delay of 0,
        a save of 0 ms) fires here at once, in the same wake-up, rather than
        after one more loop iteration (an epoll round and a timer handle); at
        most `MAX_DUE_NOW` in a row, then the loop gets its turn."""
        ep = self.ep
        self._flush(ep)
        if self.detached:
            return
        dl = ep.next_deadline()
        if dl is not None and not self._closing and dl <= (_monotonic() - self.t0) * 1000.0:
            dl = self._fire_due(ep)
            if self.detached:
                return
        if dl != self._timer_at:
            self._arm(dl)

    def _fire_due(self, ep):
        """Fire the endpoint's due timers in this wake-up, at most `MAX_DUE_NOW` in
        a row; the next deadline after them."""
        for _ in range(MAX_DUE_NOW):
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = None
            if self._queue:
                self._drain(True)
            now = (_monotonic() - self.t0) * 1000.0
            before = self.before_input
            if before is not None:
                before(now)
            ep.handle_timer(now)
            self._flush(ep)
            if self.detached:
                return None
            dl = ep.next_deadline()
            if dl is None or self._closing or dl > (_monotonic() - self.t0) * 1000.0:
                return dl
        return dl

    def _flush(self, ep) -> None:
        """Write the endpoint's output (once), hand its events on, follow its
        close / terminal state."""
        segs = ep.segments_to_send()
        events = ep.take_events()
        t = self.transport
        if segs and t is not None and not t.is_closing():
            if self.coalesce:
                if self._queue or not _ready(segs):
                    self._queue_segments(segs)
                    self._drain()
                else:                   # (a wake-up's control messages: one write)
                    data = segs[0].data if len(segs) == 1 else \
                        b"".join([s.data for s in segs])
                    t.write(data)
                    self.writes += 1
                    self.bytes_out += len(data)
            else:
                for s in segs:
                    data = s.wire()
                    t.write(data)
                    self.writes += 1
                    self.bytes_out += len(data)
            if t.get_write_buffer_size() > self.max_write_buffer_bytes:
                t.abort()
        if events:
            on_events = self.on_events
            if on_events is not None:
                on_events(events)
        if t is None or self._closing:
            return
        if ep.close_requested:
            self.shutdown()
        elif self._reading and ep.state in TERMINAL:
            if self.close_on_error and ep.state == "ERROR":
                self.shutdown()
            else:
                self._reading = False
                try:
                    t.pause_reading()
                except (RuntimeError, AttributeError):
                    pass

    def _write_parts(self, t, parts: list) -> None:
        n = sum(map(len, parts))
        if len(parts) == 1:
            t.write(parts[0])
        elif n <= JOIN_MAX_BYTES:
            t.write(b"".join(parts))
        else:
            # one gathered write (uvloop: writev) instead of copying a big
            # payload into a joined buffer
            t.writelines(parts)
        self.writes += 1
        self.bytes_out += n

    def _write_chunk(self, t, chunk) -> None:
        t.write(memoryview(chunk))
        self.writes += 1
        self.bytes_out += len(chunk)

    def _queue_segments(self, segs) -> None:
        """Queue one wake-up's output in order: runs of ready bytes (written
        together), and the chunk iterator of each streamed RAM part."""
        q = self._queue
        parts: list = []
        for s in segs:
            if s.chunks is None:
                parts.append(s.data)
                continue
            if parts:
                q.append(parts)
                parts = []
            q.append(s.chunks)
        if parts:
            q.append(parts)

    def _drain(self, everything: bool = False) -> None:
        """Write queued output, encoding streamed chunks as it goes, until the
        transport holds `STREAM_HIGH_BYTES` unsent (it then calls pause_writing;
        resume_writing brings us back) or, with `everything`, all of it: before
        the endpoint's next input (it may resume the VM, whose RAM the chunks
        read).  A transport that closes on a failed write stops it (nothing more
        is encoded for it); a chunk that fails to encode resets the connection
        (a cut RAM part must not be followed by more bytes) and raises."""
        t, q = self.transport, self._queue
        while q and (everything or not self._write_paused):
            if t is None or t.is_closing():
                q.clear()
                return
            item = q[0]
            if type(item) is list:
                q.popleft()
                self._write_parts(t, item)
                continue
            try:
                chunk = next(item, None)
            except Exception:
                self.abort(reset=True)
                raise
            if chunk is None:
                q.popleft()
            else:
                self._write_chunk(t, chunk)
        if t is not None and t.get_write_buffer_size() > self.max_write_buffer_bytes:
            t.abort()

    def _reschedule(self) -> None:
        if self.detached:
            return
        dl = self.ep.next_deadline()
        if dl != self._timer_at:
            self._arm(dl)

    def _arm(self, dl: float | None) -> None:
        """(Re-)arm the one loop timer for endpoint deadline ``dl`` (ms)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = dl
        if dl is not None:
            delay = (dl - (_monotonic() - self.t0) * 1000.0) / 1000.0
            self._timer = self.loop.call_later(delay if delay > 0.0 else 0.0, self._fire)

    def _fire(self) -> None:
        try:
            self._on_timer()
        except Exception as exc:   # noqa: BLE001
            self._crash(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def shutdown(self) -> None:
        """shutdown(2) both directions (after our queued bytes), then close."""
        t = self.transport
        if t is None or self._closing:
            return
        if self._queue:
            try:
                self._drain(True)      # our queued bytes go out before the close
            except Exception as exc:   # noqa: BLE001  (a chunk failed: already reset)
                self._crash(exc)
                return
        self._closing = True
        t.close()

    def abort(self, reset: bool = False) -> None:
        t = self.transport
        if t is None:
            return
        self._queue.clear()
        self._closing = True
        abort_transport(t, reset)

    def close_timers(self) -> None:
        self._cancel_timer()


_PROTOCOL_CLASS = None


def _ready(segs) -> bool:
    """Every piece's bytes are at hand (no streamed RAM part) and, together, small
    enough to join into one write."""
    n = 0
    for s in segs:
        if s.chunks is not None:
            return False
        n += len(s.data)
    return n <= JOIN_MAX_BYTES


def _protocol_class():
    """The BufferedProtocol subclass, built on first use (asyncio loads lazily)."""
    global _PROTOCOL_CLASS
    if _PROTOCOL_CLASS is None:
        import asyncio

        class _EngineProtocol(asyncio.BufferedProtocol):
            def __init__(self, engine: Engine) -> None:
                self.engine = engine

            def connection_made(self, transport) -> None:
                self.engine._guard(self.engine._on_connection, transport)

            def get_buffer(self, sizehint: int):
                return self.engine._view

            def buffer_updated(self, nbytes: int) -> None:
                engine = self.engine
                try:
                    engine._on_data(nbytes)
                except Exception as exc:   # noqa: BLE001
                    engine._crash(exc)

            def pause_writing(self) -> None:
                self.engine._write_paused = True

            def resume_writing(self) -> None:
                engine = self.engine
                engine._write_paused = False
                if engine._queue:
                    engine._guard(engine._drain)

            def eof_received(self):
                self.engine._guard(self.engine._on_eof)
                return True    # keep our direction open: the endpoint decides

            def connection_lost(self, exc) -> None:
                self.engine._guard(self.engine._on_lost, exc)

        _PROTOCOL_CLASS = _EngineProtocol
    return _PROTOCOL_CLASS
