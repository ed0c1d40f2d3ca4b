"""The asyncio shell of the proxy: a decoding, fault-injecting TCP proxy between a
COLO primary and secondary.

    colo proxy --listen 127.0.0.1:47102 --connect 127.0.0.1:47101 \
        [--fault close@checkpoint-request#6]... [--record FILE] [--json-events] [--once]

The primary connects to the proxy; the proxy connects to the secondary.  The
first connection is the COLO connection: `protocol.core.proxymachine.ProxyMachine`
decodes both directions and applies the fault plan with the simulator's
meanings; this module only moves bytes (reads of up to 1 MiB, ``drain``
backpressure) and carries out the machine's actions: forward, hold (delay),
partition, close (FIN) or reset (RST), and process faults, which go to
``on_process_fault(fault)`` (awaited if it returns an awaitable; without one,
process faults are refused when the plan is checked).  Later connections (the
nodes' out-of-band heartbeat channel) are forwarded raw; partitions hold them.

Events (`Event`): listening, connection, recv-initial, send {dir, msg, id,
value, n, offset}, checkpoint {n, phase begin|commit}, ram {pages, zero,
full, xbzrle}, device-state {bytes, sections}, fault, dropped, lost,
partition, error, closed, upstream-failed, stopped.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
import signal
import sys
import time

from protocol import TOOL
from protocol.core.dialects import QEMU
from protocol.core.events import Event
from protocol.core.proxymachine import (
    P2S,
    S2P,
    SENDER,
    Close,
    Forward,
    Hold,
    Partition,
    ProcessFault,
    ProxyMachine,
    check_faults,
)
from protocol.errors import FaultSpecError
from protocol.record.eventjson import to_json

__all__ = ["P2S", "S2P", "LOG_FORMAT", "Proxy", "check_faults", "format_event", "main",
           "run_proxy"]

CHUNK = 1 << 20            # the most one read returns: fewer wake-ups per MiB
READ_LIMIT = 1 << 20       # each reader buffers this much before it pauses the socket
LOG_FORMAT, LOG_VERSION = "colo-proxy-log", 1
MAX_LOG = 10_000
CALLBACK_TIMEOUT_S = 10


class Proxy:
    """Serve ``listen``; each COLO connection goes on to ``connect`` through a
    `ProxyMachine` for ``dialect`` with the fault plan ``faults``."""

    def __init__(self, listen: tuple[str, int], connect: tuple[str, int], faults=(),
                 on_event=None, record: str | None = None, *, dialect=QEMU, seed: int = 1,
                 on_process_fault=None, max_blob_bytes: int | None = None) -> None:
        from protocol.core import dialects
        self.dialect = dialects.get(dialect) if isinstance(dialect, str) else dialect
        self.listen, self.connect = listen, connect
        self.faults = check_faults(faults, self.dialect, process=on_process_fault is not None)
        self.on_event = on_event
        self.on_process_fault = on_process_fault
        self.seed = seed
        self.max_blob_bytes = max_blob_bytes
        self.machine: ProxyMachine | None = None
        self.fired: set[int] = set()     # over every session: a fault fires once
        self.events = 0
        self.log: list[Event] = []       # the first MAX_LOG events (tests, harnesses)
        self.partition_until = 0.0
        self.port: int | None = None
        self.server = None
        self.busy = False
        self.sessions = 0
        self.session_done = asyncio.Event()
        self._w: dict[str, asyncio.StreamWriter] = {}   # destination writer per direction
        self._conns: set = set()        # every open writer (both sides), for close()
        self._accepting: set = set()    # connection tasks under way
        self.t0 = time.monotonic()
        self._rec = None
        if record:
            self._rec = open(record, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._rec.write(json.dumps({
                "format": LOG_FORMAT, "version": LOG_VERSION, "tool": TOOL,
                "dialect": self.dialect.name, "listen": f"{listen[0]}:{listen[1]}",
                "connect": f"{connect[0]}:{connect[1]}", "faults": [str(f) for f in self.faults],
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")

    @property
    def all_fired(self) -> bool:
        return len(self.fired) == len(self.faults)

    # ------------------------------------------------------------ plumbing
    def now_ms(self) -> float:
        return round((time.monotonic() - self.t0) * 1000, 3)

    def emit(self, side: str, kind: str, **data) -> Event:
        ev = Event(self.now_ms(), side, kind, data, self.events)
        self.events += 1
        if len(self.log) < MAX_LOG:
            self.log.append(ev)
        if self._rec is not None and not self._rec.closed:
            self._rec.write(json.dumps(to_json(ev), separators=(",", ":")) + "\n")
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception as exc:  # noqa: BLE001 - a UI bug must not break the pair
                print(f"colo proxy: event callback failed: {exc!r}", file=sys.stderr)
        return ev

    async def start(self) -> int:
        from protocol.drivers.node import warn_all_interfaces
        warn_all_interfaces("colo proxy", "--listen", self.listen)
        self.server = await asyncio.start_server(self._accept, *self.listen,
                                                 limit=READ_LIMIT)
        self.port = self.server.sockets[0].getsockname()[1]
        self.emit("link", "listening", listen=f"{self.listen[0]}:{self.port}",
                  connect=f"{self.connect[0]}:{self.connect[1]}",
                  faults=[str(f) for f in self.faults])
        return self.port

    async def close(self, why: str | None = None) -> None:
        """Stop serving; the log and the recording end with a ``stopped`` event
        (`why`: what stopped the proxy).  Idempotent."""
        if self.server is not None:
            self.server.close()
            self.server = None
            busy = self.busy
            # end the connections under way: their pumps see the close and return
            # (their events still go to the log), instead of being cancelled mid-read
            for w in list(self._conns):
                w.transport.abort()
            if self._accepting:
                await asyncio.wait(list(self._accepting), timeout=5)
            self.emit("link", "stopped", why=why or "closed", sessions=self.sessions,
                      busy=busy)
        for w in list(self._w.values()):
            w.close()
        if self._rec is not None and not self._rec.closed:
            self._rec.close()

    async def _accept(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._accepting.add(task)
        self._conns.add(writer)
        try:
            await self._serve(reader, writer)
        finally:
            self._accepting.discard(task)
            self._conns.discard(writer)

    async def _serve(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(*self.connect, limit=READ_LIMIT), 10)
        except (OSError, TimeoutError) as exc:
            self.emit("link", "upstream-failed", error=str(exc) or type(exc).__name__)
            writer.transport.abort()
            return
        self._conns.add(up_w)
        colo = not self.busy
        self.emit("link", "connection", peer=f"{peer[0]}:{peer[1]}" if peer else None, colo=colo)
        if not colo:       # not the COLO connection: plain forwarding
            try:
                await asyncio.gather(self._raw(reader, up_w), self._raw(up_r, writer))
            finally:
                for w in (writer, up_w):
                    w.close()
                    self._conns.discard(w)
            return
        self.busy = True
        self.session_done.clear()
        self._w = {P2S: up_w, S2P: writer}
        # a fault fires once over the proxy's life: the next session's plan is what is left
        self.machine = ProxyMachine(self.dialect, self.faults, rng=random.Random(self.seed),
                                    emit=self.emit, process_faults=self.on_process_fault
                                    is not None, **({} if self.max_blob_bytes is None else
                                                    {"max_blob_bytes": self.max_blob_bytes}))
        self.machine.plan.fired = self.fired
        try:
            await asyncio.gather(self._pump(P2S, reader), self._pump(S2P, up_r))
        finally:                 # whatever ended the session, free the pair for the next
            for w in (writer, up_w):
                w.close()
                self._conns.discard(w)
            self.busy = False
            self.sessions += 1
            self.session_done.set()

    async def _raw(self, reader, writer) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            while data := await reader.read(CHUNK):
                await self._partition()
                writer.write(data)
                await writer.drain()
            writer.write_eof()

    async def _partition(self) -> None:
        while (left := self.partition_until - time.monotonic()) > 0:
            await asyncio.sleep(left)

    async def _act(self, actions) -> None:
        """Carry out the machine's actions, in order."""
        for a in actions:
            kind = type(a)
            if kind is Forward:
                if self.partition_until:
                    await self._partition()
                w = self._w[a.direction]
                if not w.is_closing():
                    w.write(a.data)
                    await w.drain()
            elif kind is Hold:
                await asyncio.sleep(a.ms / 1000)
            elif kind is Partition:
                self.partition_until = max(self.partition_until,
                                           time.monotonic() + a.ms / 1000)
            elif kind is Close:
                self._abort(reset=a.reset)
            elif kind is ProcessFault:
                await self._process_fault(a)

    async def _process_fault(self, a: ProcessFault) -> None:
        if self.on_process_fault is None:
            return
        res = self.on_process_fault(a.fault)
        if inspect.isawaitable(res):
            try:
                await asyncio.wait_for(res, CALLBACK_TIMEOUT_S)
            except Exception as exc:   # noqa: BLE001 - reported, not fatal
                self.emit("link", "error", dir=a.direction, error=repr(exc),
                          action=f"the harness failed on {a.fault}")

    def _abort(self, reset: bool) -> None:
        from protocol.drivers.tcp import abort_transport
        for w in self._w.values():
            if reset:
                abort_transport(w.transport, reset=True)
            else:
                w.close()

    async def _pump(self, direction: str, reader) -> None:
        machine = self.machine
        how = "fin"
        try:
            while data := await reader.read(CHUNK):
                await self._act(machine.feed(direction, data, self.now_ms()))
                if self._w[direction].is_closing():
                    how = "closed by the proxy"
                    break
            else:
                await self._act(machine.eof(direction, self.now_ms()))
                await self._partition()
                w = self._w[direction]
                if not w.is_closing() and w.can_write_eof():
                    w.write_eof()
        except (ConnectionResetError, BrokenPipeError) as exc:
            how = f"reset ({exc.__class__.__name__})"
            self._abort(reset=True)        # mirror the RST to the other side
        except (OSError, RuntimeError) as exc:
            how = f"error ({exc})"
            self._abort(reset=False)
        self.emit("link", "closed", dir=direction, by=SENDER[direction], how=how,
                  **machine.info(direction))


async def run_proxy(listen, connect, faults, on_event, record=None, *, once: bool = False,
                    ready=None, handle_signals: bool = False, dialect=QEMU) -> None:
    """Serve until cancelled (``once``: until the first COLO connection closes).

    ``listen``/``connect`` are (host, port) tuples or "HOST:PORT"; ``ready`` (if
    given) is called with the Proxy once it listens.  With ``handle_signals``
    (the `colo proxy` process) SIGTERM and SIGINT end it cleanly: the log and the
    recording end with a ``stopped`` event naming the signal.
    """
    from protocol.drivers.node import parse_hostport
    lp = parse_hostport(listen) if isinstance(listen, str) else tuple(listen)
    cp = parse_hostport(connect) if isinstance(connect, str) else tuple(connect)
    proxy = Proxy(lp, cp, faults, on_event, record, dialect=dialect)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    why = "cancelled"
    signals = []
    if handle_signals:          # the `colo proxy` process (not a UI's loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            # a signal ends the log and the recording with a closing event, exit 0
            loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(
                signal.Signals(s).name))
            signals.append(sig)
    try:
        await proxy.start()
        if ready is not None:
            ready(proxy)
        while not stop.done():
            session = asyncio.ensure_future(proxy.session_done.wait())
            try:
                await asyncio.wait((session, stop), return_when=asyncio.FIRST_COMPLETED)
            finally:        # also when run_proxy itself is cancelled (a UI's live source)
                session.cancel()
            if stop.done():
                why = stop.result()
                break
            proxy.session_done.clear()
            if once:
                why = "the COLO connection closed (--once)"
                return
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await proxy.close(why)


def format_event(ev: Event) -> str:
    d = ev.payload()
    head = f"{ev.t_ms / 1000:9.3f} {ev.side:9} {ev.kind:13}"
    if ev.kind == "send":
        return f"{head} {d['dir']} {d['msg']}" + (f" {d['value']}" if d["value"] else "") \
            + f"  #{d['n']}"
    return head + " " + " ".join(f"{k}={v}" for k, v in d.items() if k != "blocks")


def main(args) -> int:
    """Sync entry for `colo proxy` (args: listen, connect, fault, record, json_events, once,
    dialect)."""
    from protocol.core import dialects
    from protocol.drivers.node import parse_hostport
    dialect = dialects.get(getattr(args, "dialect", None) or QEMU.name)
    try:
        listen, connect = parse_hostport(args.listen), parse_hostport(args.connect)
        check_faults(args.fault or [], dialect)
    except (ValueError, FaultSpecError) as exc:
        print(f"colo proxy: error: {exc}", file=sys.stderr)
        return 2

    def show(ev: Event) -> None:
        line = json.dumps(to_json(ev)) if args.json_events else format_event(ev)
        print(line, flush=True)

    try:
        asyncio.run(run_proxy(listen, connect, args.fault or [], show, args.record,
                              once=getattr(args, "once", False), handle_signals=True,
                              dialect=dialect))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"colo proxy: error: {_os_error_text(exc, args)}", file=sys.stderr)
        return 1
    return 0


def _os_error_text(exc: OSError, args) -> str:
    """An OSError in words that name what it was about: the file, or the addresses."""
    import socket
    why = exc.strerror or str(exc)
    if exc.filename:
        return f"{exc.filename}: {why}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve an address (listen {args.listen}, connect {args.connect}): {why}"
    return f"{why} (listen {args.listen}, connect {args.connect})"
