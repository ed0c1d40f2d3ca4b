"""`colo node`: one COLO role in its own OS process.

Engine (`protocol.drivers.tcp`) + guest + QMP server (`protocol.drivers.qmp`) +
logging (one readable line per event, or JSON lines) + an optional recording
(JSON Lines: a header ``{"format": "colo-node-log", "version": 1, ...}``, then
one event per line).  SIGTERM and SIGINT end the process cleanly (exit 0).

The secondary listens (``--listen``) and takes the first connection as the
COLO connection; the primary connects (``--connect``) and starts at once (as
``migrate`` with x-colo on would).  A guest shutdown or ``quit`` ends the
process; the v11 secondary that "exits in default" exits with status 1, and so
does a secondary whose incoming migration fails before COLO runs (QEMU's "load
of migration failed"); an error once COLO runs leaves it up, as QEMU does.

Heartbeat (``heartbeat_ms``; beyond QEMU, off by default — QEMU has none and
waits for the operator's x-colo-lost-heartbeat).  It never changes the COLO
wire bytes:

* an out-of-band keepalive channel: the primary opens a *second* TCP
  connection to the secondary's listening port, sends the 8-byte magic
  ``COLOHB1\\n`` and then both sides send one ``\\0`` byte every T/4 ms.  The
  secondary treats any connection after the first as a heartbeat channel
  (and closes it if it does not start with the magic or heartbeats are off).
  Once established, silence for T ms or its EOF means the peer is gone;
* on the COLO connection itself: while this side awaits the peer's next
  message inside a checkpoint (primary WAIT_READY/REPLY/RECEIVED/LOADED,
  secondary WAIT_SEND … RECV_BLOB), T ms without a byte means the peer is gone.

Progress (``progress_timeout_ms``, default 60 s, 0 = off like QEMU): silence
is not the only way a peer stalls; one byte every 0.5 s inside a RAM part keeps
the socket busy forever.  Inside the initial migration (from the connection on,
even before its first byte), a message, a RAM part or a blob, the peer must
complete a record, section, message or 64 KiB at least this often; otherwise
COLO ends with an error naming the stage and the bound (a ``progress-timeout``
event), as any broken stream does.

On expiry the node starts failover exactly as x-colo-lost-heartbeat would
(and logs a ``heartbeat-lost`` event).  Both nodes need the option for the
keepalive channel; T must exceed the secondary's load time.  Through a fault
proxy the keepalive channel is forwarded too, so partitions cut it.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

from protocol.core.events import EventKind, make
from protocol.errors import ColoError
from protocol.record.eventjson import to_json

HB_MAGIC = b"COLOHB1\n"
#: beyond QEMU (no timeout anywhere, bug B13): a peer that completes no record,
#: message or 64 KiB for this long inside the initial migration, a message, a RAM
#: part or a blob is a broken peer (``--progress-timeout-ms``; 0: wait forever)
DEFAULT_PROGRESS_TIMEOUT_MS = 60_000
# WAIT_READY is not counted: the secondary may take long to load the initial
# migration (the keepalive channel still tells whether it lives)
AWAITING = {"primary": ("WAIT_REPLY", "WAIT_RECEIVED", "WAIT_LOADED"),
            "secondary": ("WAIT_SEND", "RECV_RAM", "WAIT_SIZE", "RECV_BLOB")}


class NodeError(ColoError):
    """A clear, one-line startup error (port in use, connection refused …)."""


def _why(exc: OSError) -> str:
    """An OSError's reason, without the address a bind error repeats (socket's
    "… (while attempting to bind on address ('127.0.0.1', P))", asyncio's "error
    while attempting to bind on address …: …"): the message names it already.  A
    reason of our own (a QMP path that "is a regular file") is kept."""
    why = exc.strerror or str(exc)
    if "while attempting to bind" in why and exc.errno:
        return os.strerror(exc.errno)
    return why


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    # (ASCII digits: str.isdigit takes '٣', and int() reads it as 3)
    if not sep or not (port.isascii() and port.isdigit() and len(port) <= 5) \
            or not 0 <= int(port) < 65536:
        raise ValueError(f"bad address {text!r}: use HOST:PORT (port 0..65535)")
    return host.strip("[]") or "127.0.0.1", int(port)


ALL_INTERFACES = ("0", "0.0.0.0", "::", "0:0:0:0:0:0:0:0")


def warn_all_interfaces(prog: str, option: str, addr, out=None) -> bool:
    """Say so when an explicit wildcard host binds every interface (the default,
    no host, is loopback).  True if it warned."""
    host, port = addr[0], addr[1]
    if host not in ALL_INTERFACES:
        return False
    where = f"{option}{host}:{port}" if option.endswith(":") else f"{option} {host}:{port}"
    print(f"{prog}: warning: {where} binds all interfaces: any host that "
          "reaches this one can connect (give 127.0.0.1, or no host, for loopback only)",
          file=out or sys.stderr, flush=True)
    return True


def make_guest(role: str, kind: str, *, seed: int, ram_mib: int, workload: str,
               mode: str, dialect: str):
    if kind == "null":
        from protocol.core.guestport import NullGuest
        return NullGuest()
    if kind == "mirror":
        from protocol.core import dialects
        if role != "secondary" or not dialects.get(dialect).real_qemu:
            raise ValueError("--guest mirror follows a real QEMU primary: it needs the "
                             "secondary role and --dialect qemu")
        from protocol.guest.mirror import MirrorGuest
        return MirrorGuest()
    if kind != "model":
        raise ValueError(f"--guest must be null, model or mirror, not {kind!r}")
    from protocol.guest.model import Guest
    primary = Guest("primary", seed=seed, ram_mib=ram_mib, workload=workload, mode=mode,
                    dialect=dialect)
    return primary if role == "primary" else primary.clone_for_secondary()


class Node:
    def __init__(self, role: str, *, dialect: str = "qemu", mode: str = "periodic",
                 listen: str | None = None, connect: str | None = None,
                 qmp: str | None = None, checkpoint_delay_ms: int | None = None,
                 checkpoints: int | None = None, guest: str = "null", ram_mib: int = 16,
                 workload: str = "toggle", seed: int = 1, record: str | None = None,
                 log_json: bool = False, heartbeat_ms: int | None = None,
                 nagle: bool = False, uvloop: bool | None = None, load_ms: float = 0.0,
                 save_ms: float = 0.0,
                 close_on_error: bool = False, out=None, guest_obj=None,
                 progress_timeout_ms: int | None = DEFAULT_PROGRESS_TIMEOUT_MS) -> None:
        from protocol.core import dialects
        from protocol.core.endpoint import make_endpoint
        if role not in ("primary", "secondary"):
            raise ValueError(f"role must be primary or secondary, not {role!r}")
        if role == "secondary" and not listen:
            raise ValueError("the secondary needs --listen HOST:PORT")
        if role == "primary" and not connect:
            raise ValueError("the primary needs --connect HOST:PORT")
        if checkpoints is not None and checkpoints < 1:
            raise ValueError("--checkpoints must be at least 1")
        if heartbeat_ms is not None and save_ms and save_ms >= heartbeat_ms:
            raise ValueError(f"--save-ms {save_ms} must stay below --heartbeat-ms "
                             f"{heartbeat_ms}: the secondary would take the save for silence")
        if heartbeat_ms is not None and heartbeat_ms < 10:
            raise ValueError("--heartbeat-ms must be at least 10")
        self.role = role
        self.addr = parse_hostport(listen if role == "secondary" else connect)
        self.dialect = dialects.get(dialect)
        self.qmp_address = qmp
        if qmp:
            from protocol.drivers.qmp import parse_address
            parse_address(qmp)
        self.target = checkpoints
        self.heartbeat_ms = heartbeat_ms
        self.nagle = nagle
        self.uvloop = uvloop
        self.close_on_error = close_on_error
        self.log_json = log_json
        self.out = out or sys.stdout
        self.params = dict(role=role, dialect=dialect, mode=mode, guest=guest, seed=seed,
                           ram_mib=ram_mib, workload=workload,
                           checkpoint_delay_ms=checkpoint_delay_ms, checkpoints=checkpoints,
                           heartbeat_ms=heartbeat_ms, nagle=nagle, load_ms=load_ms,
                           save_ms=save_ms, progress_timeout_ms=progress_timeout_ms or 0)
        self.guest = guest_obj if guest_obj is not None else make_guest(
            role, guest, seed=seed, ram_mib=ram_mib, workload=workload, mode=mode,
            dialect=dialect)
        kw = {}
        if self.dialect.initial_migration and not hasattr(self.guest, "initial_stream") \
                and not hasattr(self.guest, "initial_page"):
            kw["initial_stream"] = False     # a guest model without an initial migration
        self.ep = make_endpoint(role, self.dialect, mode=mode, guest=self.guest,
                                checkpoint_delay_ms=checkpoint_delay_ms, load_ms=load_ms,
                                save_ms=save_ms, progress_timeout_ms=progress_timeout_ms,
                                **kw)
        self.record_path = record
        self._rec = None
        self.seq = 0
        self.engine = None
        self.qmp = None
        self.loop = None
        self._stop = None
        self.exit_code = 0
        self.shutdown_reason = "host-signal"
        self._exit_error: str | None = None
        self._lsock = None
        self._hb = None
        self._hb_last_rx = None
        self._state_since = 0.0
        self._tasks: set = set()
        self._tick_ms = 0

    # ---------------------------------------------------------------- running
    def run(self) -> int:
        # load the stream codec (and numpy) now, not while the first COLO bytes and a
        # heartbeat are waiting
        from protocol.drivers.tcp import new_loop
        from protocol.migration import stream  # noqa: F401
        loop = new_loop(self.uvloop)
        try:
            return loop.run_until_complete(self.main(loop))
        finally:
            loop.close()

    async def main(self, loop) -> int:
        from protocol.drivers.tcp import Engine, loop_name
        self.loop = loop
        self._stop = loop.create_future()
        # --nagle is QEMU's socket: Nagle on and one write per message or payload
        self.engine = Engine(self.ep, loop, nodelay=not self.nagle, coalesce=not self.nagle,
                             on_events=self._on_events,
                             # a guest with nothing to run (the null guest) gets no hook
                             before_input=self._before_input
                             if hasattr(self.guest, "advance") else None,
                             close_on_error=self.close_on_error, on_crash=self._crash)
        self._open_record(loop_name(loop))
        try:
            if self.role == "secondary":
                self._bind()
            if self.qmp_address:
                from protocol.drivers.qmp import QmpServer
                self.qmp = QmpServer(self, self.qmp_address)
                try:
                    await self.qmp.start()
                except OSError as exc:
                    raise NodeError(f"cannot open the QMP socket {self.qmp_address}: "
                                    f"{_why(exc)}") from None
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_quit, "host-signal")
            self._node_event("node", what="started", loop=loop_name(loop),
                             address=f"{self.addr[0]}:{self.listen_address()[1]}"
                             if self._lsock else f"{self.addr[0]}:{self.addr[1]}")
            if self.role == "secondary":
                self._spawn(self._accept_loop())
            else:
                try:
                    await self.engine.connect(*self.addr)
                except (OSError, TimeoutError) as exc:
                    err = getattr(exc, "errno", None)
                    why = os.strerror(err) if err else (str(exc) or "timed out")
                    raise NodeError(f"cannot connect to {self.addr[0]}:{self.addr[1]}: "
                                    f"{why}") from None
                if self.heartbeat_ms:
                    self._spawn(self._hb_connect())
            if self.heartbeat_ms:
                self._spawn(self._watchdog())
            if hasattr(self.guest, "advance"):
                self._spawn(self._ticker())
            await self._stop
        except NodeError as exc:
            # the process exits 1 with this message: its log and recording say so too
            self.exit_code, self._exit_error = 1, str(exc)
            raise
        finally:
            await self._cleanup()
        return self.exit_code

    def _spawn(self, coro):
        """A task the node cancels at exit; a finished one is forgotten at once (a
        heartbeat connection per peer connection must not pile up)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cleanup(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self.qmp is not None:
            self.qmp.event("SHUTDOWN", {"guest": self.shutdown_reason == "guest-shutdown",
                                        "reason": self.shutdown_reason})
            await self.qmp.close()
        self._node_event("node", what="exit", code=self.exit_code,
                         **({"error": self._exit_error} if self._exit_error else {}))
        if self.engine is not None:
            self.engine.detach()
            self.engine.shutdown()
        if self._hb is not None:
            self._hb.close()
        if self._lsock is not None:
            self._lsock.close()
        if self._rec is not None:
            self._rec.close()
        import asyncio
        await asyncio.sleep(0.01)      # let the transport flush its close

    def _crash(self, exc: BaseException) -> None:
        import traceback
        traceback.print_exception(exc, file=sys.stderr)
        self._node_event("node", what="crash", error=repr(exc))
        self.request_quit("host-error", 1)

    def request_quit(self, reason: str = "host-qmp-quit", code: int | None = None) -> None:
        if code is not None:
            self.exit_code = code
        self.shutdown_reason = reason
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(reason)

    def _bind(self) -> None:
        import socket
        host, port = self.addr
        warn_all_interfaces("colo node", "--listen", self.addr)
        try:
            self._lsock = socket.create_server(
                (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            raise NodeError(f"cannot listen on {host}:{port}: {_why(exc)}") from None
        self._lsock.setblocking(False)

    def listen_address(self):
        if self._lsock is None:
            return None if self.role == "primary" else self.addr
        return self._lsock.getsockname()[:2]

    async def _accept_loop(self) -> None:
        first = True
        while True:
            sock, _peer = await self.loop.sock_accept(self._lsock)
            if first:
                first = False
                await self.engine.attach_socket(sock)
            else:
                self._spawn(self._hb_accept(sock))

    # ----------------------------------------------------------------- inputs
    def _before_input(self, now: float) -> None:
        g = self.guest
        adv = getattr(g, "advance", None)
        if adv is None:
            return
        adv(int(now))
        if self.role == "primary":
            want = getattr(g, "checkpoint_needed", False)
            if want:
                g.checkpoint_needed = False
            fn = getattr(g, "checkpoint_requested", None)
            if fn is not None and fn():
                want = True
            if want:
                self.ep.request_checkpoint(now, "colo-compare")

    async def _ticker(self) -> None:
        import asyncio
        while True:
            await asyncio.sleep(0.02)
            self.engine.run(lambda now: None)

    def lost_heartbeat(self, origin: str = "qmp") -> None:
        """x-colo-lost-heartbeat (raises QmpCommandError as QEMU would)."""
        self.engine.run(self.ep.lost_heartbeat)

    def set_checkpoint_delay(self, ms: int) -> None:
        self.engine.run(self.ep.set_checkpoint_delay, ms)

    def guest_shutdown(self) -> None:
        self.engine.run(self.ep.guest_shutdown)

    # ----------------------------------------------------------------- events
    def _node_event(self, kind: str, **data) -> None:
        now = self.engine.now_ms() if self.engine is not None else 0.0
        self._on_events([make(now, self.role, kind, **data)])

    def _on_events(self, events) -> None:
        for ev in events:
            ev.stamp(self.seq)
            self.seq += 1
            self._log(ev)
            if self._rec is not None:
                self._rec.write(json.dumps(to_json(ev), default=str) + "\n")
            if self.qmp is not None:
                self.qmp.on_endpoint_event(ev)
            if ev.kind is EventKind.STATE:
                self._state_since = ev.t_ms
        ep = self.ep
        # the endpoint's committed-checkpoint counter, not the event stream, decides
        if self.target is not None and ep.checkpoint >= self.target and \
                self._stop is not None and not self._stop.done():
            self.request_quit("host-qmp-quit")
        if ep.state == "SHUTDOWN":
            self.request_quit("guest-shutdown", 1 if ep.exited else None)
        elif self.role == "secondary" and ep.state == "ERROR" and \
                ep.migration_status != "colo" and self._exit_error is None:
            # QEMU (7.2 too) exits 1 when the incoming migration fails before COLO
            # runs ("load of migration failed"), so the next primary to connect is
            # refused instead of left hanging on a process that reads no more
            self.exit_code, self._exit_error = 1, f"load of migration failed: {ep.error}"
            self.request_quit("incoming-migration-failed", 1)

    def _log(self, ev) -> None:
        try:
            if self.log_json:
                self.out.write(json.dumps(to_json(ev), default=str) + "\n")
            else:
                data = " ".join(f"{k}={v}" for k, v in ev.payload().items() if k != "hex")
                self.out.write(f"{ev.t_ms:11.3f} #{ev.seq:<5} {ev.side:9} {ev.kind:18} "
                               f"{data}\n")
            self.out.flush()
        except (OSError, ValueError):
            pass

    def _open_record(self, loop: str) -> None:
        if not self.record_path:
            return
        from protocol import TOOL
        try:
            self._rec = open(self.record_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as exc:
            raise NodeError(f"cannot write the recording {self.record_path}: "
                            f"{exc.strerror}") from None
        header = {"format": "colo-node-log", "version": 1, "tool": TOOL,
                  "role": self.role, "started": time.time(), "loop": loop, "pid": os.getpid(),
                  "params": self.params}
        self._rec.write(json.dumps(header) + "\n")

    # -------------------------------------------------------------- heartbeat
    async def _hb_connect(self) -> None:
        import asyncio
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.addr), 5)
        except (OSError, TimeoutError):
            return
        writer.write(HB_MAGIC)
        await self._hb_run(reader, writer)

    async def _hb_accept(self, sock) -> None:
        import asyncio
        reader, writer = await asyncio.open_connection(sock=sock)
        if not self.heartbeat_ms or self._hb is not None:
            writer.close()
            return
        try:
            magic = await asyncio.wait_for(reader.readexactly(len(HB_MAGIC)), 2)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            magic = b""
        if magic != HB_MAGIC:
            writer.close()
            return
        await self._hb_run(reader, writer)

    async def _hb_run(self, reader, writer) -> None:
        import asyncio
        self._hb = writer
        period = self.heartbeat_ms / 4000.0

        async def send():
            while not writer.is_closing():
                writer.write(b"\0")
                await asyncio.sleep(period)

        sender = self.loop.create_task(send())
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                if self._hb_last_rx is None:
                    self._node_event("heartbeat", what="established")
                self._hb_last_rx = self.engine.now_ms()
        except OSError:
            pass
        finally:
            sender.cancel()
            if self._hb_last_rx is not None:
                self._expire("the keepalive channel closed")
            writer.close()

    async def _watchdog(self) -> None:
        import asyncio
        t = self.heartbeat_ms
        while True:
            await asyncio.sleep(t / 4000.0)
            now = self.engine.now_ms()
            if self._hb_last_rx is not None and now - self._hb_last_rx > t:
                self._expire(f"the keepalive channel was silent for "
                             f"{now - self._hb_last_rx:.0f} ms")
            elif self.ep.state in AWAITING[self.role]:
                since = max(self.engine.last_rx_ms, self._state_since)
                if now - since > t:
                    self._expire(f"no byte for {now - since:.0f} ms while "
                                 f"{self.ep.state}")

    def _expire(self, why: str) -> None:
        from protocol.errors import QmpCommandError
        ep = self.ep
        if not ep.colo_thread_alive and ep.state != "ERROR" or ep.failover.state != "none":
            return
        if ep.migration_status != "colo":
            return
        self._node_event("heartbeat-lost", why=why, timeout_ms=self.heartbeat_ms)
        try:
            self.lost_heartbeat("heartbeat")
        except QmpCommandError as exc:
            self._node_event("heartbeat-failover-refused", error=exc.desc)
        self._hb_last_rx = None
