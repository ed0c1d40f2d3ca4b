"""A transparent, decoding, fault-injecting TCP proxy between a COLO primary and secondary.

    colo proxy --listen 127.0.0.1:47102 --connect 127.0.0.1:47101 \
        [--fault close@checkpoint-request#6]... [--record FILE] [--json-events] [--once]

Bytes are forwarded as they arrive (64 KiB reads, `drain` backpressure) while
both directions are decoded live: forward = initial migration (InitialReader),
qemu-dialect messages, the RAM part (RamPartReader), the device blob
(decode_device_blob); reverse = bare be32 ids.  Events (`Event`): listening,
connection, recv-initial, send {dir, msg, id, value, n}, checkpoint {n, phase
begin|commit}, ram {pages, zero, full, xbzrle}, device-state {bytes,
sections}, fault, held, error, closed.  A stream the decoder cannot follow
gives one ``error`` event and is then forwarded raw.

Not `faultproxy.FaultProxy`, because it stores each piece whole before
forwarding it (the initial migration = all guest RAM), does not report pages or
sections, and its value=N appends a be64 to every message (the simulator's
encoding, not QEMU's).  Same fault meanings otherwise, except: ``drop`` holds
the piece and everything after it forever (a stream cannot lose a piece and
stay framed); ``value=N`` only for vmstate-size; process faults are refused.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time

from .. import faults as fl
from ..dialects import QEMU
from ..errors import FaultSpecError
from ..events import Event
from ..stream import InitialReader, RamPartReader, StreamError, decode_device_blob

P2S, S2P = "P>S", "S>P"
SENDER = {P2S: "primary", S2P: "secondary"}
CHUNK = 65536
MAX_HELD = 64 << 20          # a piece held whole for truncate/duplicate
MAX_BLOB_DECODE = 64 << 20   # device blobs above this are forwarded, not split
SUPPORTED = ("drop", "delay", "corrupt", "truncate", "duplicate", "close", "reset",
             "partition", "unexpected", "value")
LOG_FORMAT, LOG_VERSION = "colo-proxy-log", 1


def check_faults(specs) -> list[fl.Fault]:
    """Parse and validate fault specs for a qemu-dialect wire proxy."""
    out = []
    for spec in specs:
        f = spec if isinstance(spec, fl.Fault) else fl.parse(spec)
        if f.kind not in SUPPORTED:
            raise FaultSpecError(f"{f}: {f.kind!r} is a process fault, not a wire fault; the "
                                 "proxy only touches bytes (use the harness / QMP for it); "
                                 f"proxy kinds: {', '.join(SUPPORTED)}")
        if f.point not in ("ram", "device-state") and f.point not in QEMU.ids:
            raise FaultSpecError(f"{f}: {f.point!r} is not on a qemu-dialect wire (points: "
                                 f"{', '.join(list(QEMU.ids) + ['ram', 'device-state'])})")
        if f.kind == "unexpected" and f.arg not in QEMU.ids:
            raise FaultSpecError(f"{f}: {f.arg!r} does not exist in the qemu dialect")
        if f.kind == "value" and f.point != "vmstate-size":
            raise FaultSpecError(f"{f}: in the qemu dialect only vmstate-size carries a value")
        out.append(f)
    return out


class _Dir:
    """Decode state of one direction."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sender = SENDER[name]
        self.state = "initial" if name == P2S else "msg"
        self.initial = InitialReader() if name == P2S else None
        self.ctx = None
        self.vmdesc = None
        self.offset = 0               # stream offset of the next byte
        self.msg = bytearray()        # a partial control message (<= 12 bytes)
        self.reader = None            # RamPartReader
        self.left = 0                 # device-blob bytes still to come
        self.blob_size = 0
        self.first = False            # the next streamed bytes start the piece
        self.blob = bytearray()
        self.point = None             # "ram" / "device-state" while streaming one
        self.piece_faults: list[fl.Fault] = []
        self.piece_new = False
        self.hold: bytearray | None = None
        self.discarded = 0
        self.t_initial = None


class LiveProxy:
    def __init__(self, listen: tuple[str, int], connect: tuple[str, int], faults=(),
                 on_event=None, record: str | None = None, *, seed: int = 1) -> None:
        self.listen, self.connect = listen, connect
        self.faults = check_faults(faults)
        self.on_event = on_event
        self.fired: set[int] = set()
        self.events = 0
        self.n = 0                      # current checkpoint
        self.cp: dict = {}
        self.partition_until = 0.0
        self.port: int | None = None
        self.server = None
        self.busy = False
        self.sessions = 0
        self.session_done = asyncio.Event()
        self._w: dict[str, asyncio.StreamWriter] = {}   # destination writer per direction
        self._conns: set = set()        # every open writer (both sides), for close()
        self._accepting: set = set()    # connection tasks under way
        self._xor = 0x5A ^ (seed & 0xFF) or 0xFF
        self.t0 = time.monotonic()
        self._rec = None
        if record:
            self._rec = open(record, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._rec.write(json.dumps({
                "format": LOG_FORMAT, "version": LOG_VERSION, "tool": "colo-testbed 0.1.0",
                "dialect": "qemu", "listen": f"{listen[0]}:{listen[1]}",
                "connect": f"{connect[0]}:{connect[1]}", "faults": [str(f) for f in self.faults],
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")

    # ------------------------------------------------------------ plumbing
    def emit(self, side: str, kind: str, **data) -> Event:
        ev = Event(round((time.monotonic() - self.t0) * 1000, 3), side, kind, data, self.events)
        self.events += 1
        if self._rec is not None and not self._rec.closed:
            self._rec.write(json.dumps(ev.to_json(), separators=(",", ":")) + "\n")
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception as exc:  # noqa: BLE001 - a UI bug must not break the pair
                print(f"colo proxy: event callback failed: {exc!r}", file=sys.stderr)
        return ev

    async def start(self) -> int:
        from ..node import warn_all_interfaces
        warn_all_interfaces("colo proxy", "--listen", self.listen)
        self.server = await asyncio.start_server(self._accept, *self.listen)
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
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.connect), 10)
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
        self.busy, self.n, self.cp = True, 0, {}
        self.session_done.clear()
        self._w = {P2S: up_w, S2P: writer}
        try:
            await asyncio.gather(self._pump(_Dir(P2S), reader), self._pump(_Dir(S2P), up_r))
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

    async def _out(self, d: _Dir, data) -> None:
        if not data:
            return
        await self._partition()
        w = self._w[d.name]
        if w.is_closing():
            return
        w.write(bytes(data))
        await w.drain()

    def _abort(self, reset: bool) -> None:
        for w in self._w.values():
            if reset:
                sock = w.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        from .tcp import set_reset_on_close
                        set_reset_on_close(sock)
                w.transport.abort()
            else:
                w.close()

    async def _pump(self, d: _Dir, reader) -> None:
        how = "fin"
        try:
            while data := await reader.read(CHUNK):
                await self._feed(d, memoryview(data))
                if self._w[d.name].is_closing():
                    how = "closed by the proxy"
                    break
            else:
                await self._partition()
                w = self._w[d.name]
                if not w.is_closing() and w.can_write_eof():
                    w.write_eof()
        except (ConnectionResetError, BrokenPipeError) as exc:
            how = f"reset ({exc.__class__.__name__})"
            self._abort(reset=True)        # mirror the RST to the other side
        except (OSError, RuntimeError) as exc:
            how = f"error ({exc})"
            self._abort(reset=False)
        self.emit("link", "closed", dir=d.name, by=d.sender, how=how, bytes=d.offset,
                  discarded=d.discarded, state=d.state)

    # ------------------------------------------------------------ decoding
    def _garbled(self, d: _Dir, exc: Exception) -> None:
        self.emit("link", "error", dir=d.name, offset=d.offset, state=d.state,
                  error=str(exc), action="decoding stopped; bytes forwarded raw")
        d.state = "raw"

    async def _feed(self, d: _Dir, mv: memoryview) -> None:
        pos = 0
        while pos < len(mv):
            st = d.state
            if st == "raw":
                await self._out(d, mv[pos:])
                d.offset += len(mv) - pos
                return
            if st == "black":
                d.discarded += len(mv) - pos
                d.offset += len(mv) - pos
                return
            if st == "initial":
                if d.offset == 0 and d.initial.consumed == 0 and mv[pos] != ord("Q"):
                    d.state = "msg"        # no initial migration (a non-QEMU primary)
                    continue
                if d.t_initial is None:
                    d.t_initial = time.monotonic()
                try:
                    n = d.initial.feed(mv[pos:])
                except StreamError as exc:
                    self._garbled(d, exc)
                    continue
                await self._out(d, mv[pos:pos + n])
                pos += n
                d.offset += n
                if d.initial.done:
                    self._initial_done(d)
            elif st == "msg":
                pos = await self._msg_bytes(d, mv, pos)
            else:
                pos = await self._stream_bytes(d, mv, pos)

    def _initial_done(self, d: _Dir) -> None:
        s = d.initial.summary
        d.ctx, d.vmdesc, d.state = d.initial.ctx, s.vmdesc, "msg"
        self.emit("primary", "recv-initial", bytes=s.bytes, machine=s.machine,
                  enable_colo=s.enable_colo, blocks=len(s.blocks), mem_size=s.mem_size,
                  zero=s.pages_by_kind.get("zero", 0), full=s.pages_by_kind.get("page", 0),
                  device_sections=len(s.device_sections), vmdesc_len=s.vmdesc_len,
                  ms=round((time.monotonic() - d.t_initial) * 1000, 3))

    async def _msg_bytes(self, d: _Dir, mv: memoryview, pos: int) -> int:
        need = 4
        if len(d.msg) >= 4 and int.from_bytes(d.msg[:4], "big") == QEMU.ids["vmstate-size"]:
            need = 12
        take = min(need - len(d.msg), len(mv) - pos)
        d.msg += mv[pos:pos + take]
        pos += take
        if len(d.msg) == 4:
            mid = int.from_bytes(d.msg, "big")
            if not QEMU.in_range(mid):
                raw, d.msg = bytes(d.msg), bytearray()
                self._garbled(d, ValueError(f"invalid COLO message id {mid:#010x}"))
                d.offset += len(raw)
                await self._out(d, raw)
                return pos
            if mid == QEMU.ids["vmstate-size"] and d.name == P2S:
                return pos
        if len(d.msg) in (4, 12):
            raw, d.msg = bytes(d.msg), bytearray()
            await self._message(d, raw)
            d.offset += len(raw)
        return pos

    async def _message(self, d: _Dir, raw: bytes) -> None:
        name = QEMU.names[int.from_bytes(raw[:4], "big")]
        value = int.from_bytes(raw[4:12], "big") if len(raw) == 12 else 0
        if d.name == P2S and name == "checkpoint-request":
            self.n += 1
            self.cp = {"n": self.n, "t": time.monotonic()}
            self.emit("primary", "checkpoint", n=self.n, phase="begin")
        n = 1 if name == "checkpoint-ready" else self.n
        self.emit(d.sender, "send", dir=d.name, msg=name, id=int.from_bytes(raw[:4], "big"), value=value, n=n, offset=d.offset)
        faults = self._fire(d, name, n)
        if not await self._before(d, faults, name, n):
            return
        data = raw
        for f in faults:
            if f.kind == "unexpected":
                data = QEMU.encode(f.arg, 0)
            elif f.kind == "value":
                data = QEMU.encode(name, int(f.arg) & (1 << 64) - 1)
        await self._deliver(d, self._corrupt(data, faults), faults, name, n)
        if d.name == P2S and name == "vmstate-send":
            d.state, d.point = "ram", "ram"
            d.reader = RamPartReader(d.ctx) if d.ctx is not None else None
            if d.reader is None:
                self._garbled(d, ValueError("vmstate-send before any initial migration"))
                return
            self._piece_start(d)
        elif d.name == P2S and name == "vmstate-size":
            d.left, d.blob_size, d.blob = value, value, bytearray()
            d.state, d.point = "blob", "device-state"
            self._piece_start(d)
            if value == 0:
                await self._piece_end(d)
        elif d.name == S2P and name == "vmstate-loaded" and self.cp.get("n") == self.n:
            cp = self.cp
            self.emit("primary", "checkpoint", n=self.n, phase="commit",
                      ms=round((time.monotonic() - cp["t"]) * 1000, 3),
                      **{k: cp[k] for k in ("zero", "full", "xbzrle", "device_bytes",
                                            "sections") if k in cp})

    def _piece_start(self, d: _Dir) -> None:
        d.piece_faults = self._fire(d, d.point, self.n)
        d.piece_new = True
        d.hold = bytearray() if any(f.kind in ("truncate", "duplicate")
                                    for f in d.piece_faults) else None

    async def _stream_bytes(self, d: _Dir, mv: memoryview, pos: int) -> int:
        if d.piece_new:
            d.piece_new = False
            if not await self._before(d, d.piece_faults, d.point, self.n):
                return pos
        chunk = mv[pos:]
        try:
            if d.state == "ram":
                k = d.reader.feed(chunk)
                d.reader.take_records()     # counted; the proxy keeps no page
            else:
                k = min(d.left, len(chunk))
                d.left -= k
                if len(d.blob) + k <= MAX_BLOB_DECODE:
                    d.blob += chunk[:k]
        except StreamError as exc:
            await self._flush_hold(d)
            self._garbled(d, exc)
            return pos
        part = chunk[:k]
        done = d.reader.done if d.state == "ram" else d.left == 0
        if d.hold is not None:
            d.hold += part
            if len(d.hold) > MAX_HELD:
                self.emit("link", "error", dir=d.name, offset=d.offset,
                          error=f"{d.point} above {MAX_HELD} bytes: fault not applied")
                await self._flush_hold(d)
        else:
            await self._out(d, self._corrupt(part, d.piece_faults) if d.first else part)
        d.first = False
        d.offset += k
        if done:
            await self._piece_end(d)
        return pos + k

    async def _flush_hold(self, d: _Dir) -> None:
        if d.hold is not None:
            held, d.hold = bytes(d.hold), None
            await self._out(d, self._corrupt(held, d.piece_faults))

    async def _piece_end(self, d: _Dir) -> None:
        if d.state == "ram":
            rd = d.reader
            kinds = {"zero": 0, "page": 0, "xbzrle": 0, **rd.kind_counts}
            self.cp.update(zero=kinds["zero"], full=kinds["page"], xbzrle=kinds["xbzrle"])
            self.emit("primary", "ram", n=self.n, pages=rd.pages, zero=kinds["zero"],
                      full=kinds["page"], xbzrle=kinds["xbzrle"], bytes=rd.consumed,
                      blocks=dict(rd.block_counts))
            d.reader = None
        else:
            sections = None
            try:
                if len(d.blob) == d.blob_size:
                    sections = len(decode_device_blob(bytes(d.blob), d.vmdesc))
            except StreamError as exc:
                self.emit("link", "error", dir=d.name, offset=d.offset, error=str(exc),
                          action="device blob not split; stream still followed")
            self.cp["device_bytes"], self.cp["sections"] = d.blob_size, sections
            self.emit("primary", "device-state", n=self.n, bytes=d.blob_size, sections=sections)
            d.blob = bytearray()
        if d.hold is not None:
            held, d.hold = bytes(d.hold), None
            await self._deliver(d, self._corrupt(held, d.piece_faults), d.piece_faults,
                                d.point, self.n)
        d.state, d.point, d.piece_faults = "msg", None, []

    # -------------------------------------------------------------- faults
    def _fire(self, d: _Dir, point: str, n: int) -> list[fl.Fault]:
        out = []
        for i, f in enumerate(self.faults):
            if i not in self.fired and f.point == point and f.checkpoint == max(n, 1):
                self.fired.add(i)
                out.append(f)
                self.emit("link", "fault", spec=str(f), dir=d.name, point=point, n=n)
        return out

    async def _before(self, d: _Dir, faults, point: str, n: int) -> bool:
        """Faults that act before the piece; False: the piece goes nowhere."""
        d.first = True
        for f in faults:
            if f.kind == "partition":
                self.partition_until = max(self.partition_until,
                                           time.monotonic() + int(f.arg) / 1000)
            elif f.kind == "delay":
                await asyncio.sleep(int(f.arg) / 1000)
            elif f.kind in ("close", "reset"):
                self._abort(reset=f.kind == "reset")
                d.state = "black"
                return False
            elif f.kind == "drop":
                self.emit("link", "held", dir=d.name, point=point, n=n,
                          why="drop: this piece and everything after it are held forever")
                d.state = "black"
                return False
        return True

    def _corrupt(self, data, faults):
        if data and any(f.kind == "corrupt" for f in faults):
            buf = bytearray(data)
            buf[min(3, len(buf) - 1) if len(buf) <= 12 else 0] ^= self._xor
            return bytes(buf)
        return data

    async def _deliver(self, d: _Dir, data: bytes, faults, point: str, n: int) -> None:
        if d.state == "black":
            return
        if any(f.kind == "truncate" for f in faults):
            await self._out(d, data[:len(data) // 2])
            self._abort(reset=False)
            d.state = "black"
            return
        await self._out(d, data)
        if any(f.kind == "duplicate" for f in faults):
            await self._out(d, data)


async def run_proxy(listen, connect, faults, on_event, record=None, *, once: bool = False,
                    ready=None, handle_signals: bool = False) -> None:
    """Serve until cancelled (``once``: until the first COLO connection closes).

    ``listen``/``connect`` are (host, port) tuples or "HOST:PORT"; ``ready`` (if
    given) is called with the LiveProxy once it listens.  With ``handle_signals``
    (the `colo proxy` process) SIGTERM and SIGINT end it cleanly: the log and the
    recording end with a ``stopped`` event naming the signal.
    """
    from ..node import parse_hostport
    lp = parse_hostport(listen) if isinstance(listen, str) else tuple(listen)
    cp = parse_hostport(connect) if isinstance(connect, str) else tuple(connect)
    proxy = LiveProxy(lp, cp, faults, on_event, record)
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
            await asyncio.wait((session, stop), return_when=asyncio.FIRST_COMPLETED)
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
    d = dict(ev.data)
    head = f"{ev.t_ms / 1000:9.3f} {ev.side:9} {ev.kind:13}"
    if ev.kind == "send":
        return f"{head} {d['dir']} {d['msg']}" + (f" {d['value']}" if d["value"] else "") \
            + f"  #{d['n']}"
    return head + " " + " ".join(f"{k}={v}" for k, v in d.items() if k != "blocks")


def main(args) -> int:
    """Sync entry for `colo proxy` (args: listen, connect, fault, record, json_events, once)."""
    from ..node import parse_hostport
    try:
        listen, connect = parse_hostport(args.listen), parse_hostport(args.connect)
        check_faults(args.fault or [])
    except (ValueError, FaultSpecError) as exc:
        print(f"colo proxy: error: {exc}", file=sys.stderr)
        return 2

    def show(ev: Event) -> None:
        line = json.dumps(ev.to_json()) if args.json_events else format_event(ev)
        print(line, flush=True)

    try:
        asyncio.run(run_proxy(listen, connect, args.fault or [], show, args.record,
                              once=getattr(args, "once", False), handle_signals=True))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"colo proxy: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
