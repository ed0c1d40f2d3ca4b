"""A QMP-compatible control server for one `colo node` (shapes as QEMU 7.2's).

Transport: a unix socket (created with mode 0600) or TCP (bound to
127.0.0.1 unless told otherwise).  Several clients may connect; each gets the
greeting and must negotiate with ``qmp_capabilities`` first.  Input is a
stream of JSON values (not lines: ``qemu.qmp`` sends no newline), split by a
small brace/string scanner; one value may be at most 64 KiB (beyond: an error
reply, then the connection is closed), nested at most 1024 deep as in QEMU
("JSON nesting depth limit exceeded"; QEMU then also answers each stray
closer, we skip the rest of the value).  Malformed JSON gets a GenericError
reply ("JSON parse error, …"), never a crash; duplicate keys and NaN are
refused as QEMU refuses them (QEMU's single-quoted strings are not taken).
Arguments are checked with QEMU 7.2's messages (`protocol.drivers.qmpparams`);
``exec-oob`` is refused unless OOB was negotiated, and then refused per
command ("does not support OOB").  A client that leaves more than
MAX_CLIENT_BACKLOG of output unread is dropped (a ``qmp`` client-dropped
event) instead of buffered without end.

Commands: qmp_capabilities, query-status, query-migrate, query-colo-status,
x-colo-lost-heartbeat, migrate-set-parameters, query-migrate-parameters,
migrate-set-capabilities, query-migrate-capabilities, system_powerdown,
query-commands, quit.  Events: STOP, RESUME (and query-status) as QEMU 7.2's, not
the model's run state (`protocol.drivers.qmpstatus`), COLO_EXIT {mode, reason},
MIGRATION {status} (only with the ``events`` capability, as QEMU), SHUTDOWN,
POWERDOWN — all with {"seconds", "microseconds"} timestamps.

Faithful QEMU 7.2 quirks (on purpose):

* A requested failover on the *primary* emits ``COLO_EXIT`` with reason
  ``"error"`` (a race in 7.2: the COLO thread reads the failover state before
  the bottom half sets it to completed) while ``query-colo-status`` right after
  says ``"request"``.  ``faithful=False`` on the endpoint gives ``"request"``.
* After a COLO error (``COLO_EXIT`` reason ``"error"``) the status stays
  ``colo`` / mode primary|secondary / reason none until
  ``x-colo-lost-heartbeat`` completes the failover; no second COLO_EXIT.
* Commands before ``qmp_capabilities`` fail with CommandNotFound "Expecting
  capabilities negotiation with 'qmp_capabilities'"; ``qmp_capabilities``
  twice fails with CommandNotFound "Capabilities negotiation is already
  complete, command ignored".
* ``migrate-set-capabilities`` while the migration (COLO) runs fails with
  "There's a migration process in progress".
* ``query-migrate`` in COLO returns only ``{"status": "colo"}`` on the primary;
  the secondary adds its ``socket-address`` (before COLO only the address).
"""
from __future__ import annotations

import json
import os
import time

from protocol.core.events import EventKind as K
from protocol.drivers.qmpjson import MAX_NESTING, TOO_DEEP, dump_json, parse_json
from protocol.errors import ColoError

MAX_INPUT_BYTES = 64 << 10
#: output a client may leave unread (above the largest reply, x-testbed-read-ram's
#: 128 KiB of hex); an event beyond it drops the client: a monitor that never
#: reads must not grow the node (each queued write costs the loop more than its bytes)
MAX_CLIENT_BACKLOG = 256 << 10
QEMU_VERSION = {"micro": 0, "minor": 2, "major": 7}
CAPABILITIES = ("xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress",
                "events", "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
                "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
                "late-block-activate", "x-ignore-shared", "validate-uuid",
                "background-snapshot", "zero-copy-send", "postcopy-preempt")
PARAMETERS = {"cpu-throttle-tailslow": False, "xbzrle-cache-size": 67108864,
              "cpu-throttle-initial": 20, "announce-max": 550, "decompress-threads": 2,
              "compress-threads": 8, "compress-level": 1, "multifd-channels": 2,
              "multifd-zstd-level": 1, "announce-initial": 50, "block-incremental": False,
              "compress-wait-thread": True, "downtime-limit": 300, "tls-authz": "",
              "multifd-compression": "none", "announce-rounds": 5, "announce-step": 100,
              "tls-creds": "", "multifd-zlib-level": 1, "max-cpu-throttle": 99,
              "max-postcopy-bandwidth": 0, "tls-hostname": "",
              "throttle-trigger-threshold": 50, "max-bandwidth": 134217728,
              "x-checkpoint-delay": 20000, "cpu-throttle-increment": 10}


class QmpError(ColoError):
    def __init__(self, desc: str, cls: str = "GenericError") -> None:
        super().__init__(desc)
        self.desc, self.cls = desc, cls


def timestamp(now: float | None = None) -> dict:
    t = time.time() if now is None else now
    sec = int(t)
    return {"seconds": sec, "microseconds": int((t - sec) * 1_000_000)}


def parse_address(text: str) -> tuple[str, object]:
    """``unix:PATH`` or ``tcp:HOST:PORT`` (``tcp:PORT`` binds 127.0.0.1)."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return "unix", rest
    if kind == "tcp" and rest:
        host, _, port = rest.rpartition(":")
        # (ASCII digits: str.isdigit takes '٣', and int() reads it as 3)
        if not (port.isascii() and port.isdigit() and len(port) <= 5) \
                or not 0 <= int(port) < 65536:
            raise ValueError(f"bad QMP address {text!r}: the port must be 0..65535")
        return "tcp", (host.strip("[]") or "127.0.0.1", int(port))
    raise ValueError(f"bad QMP address {text!r}: use unix:PATH or tcp:HOST:PORT")


class JsonSplitter:
    """Split a byte stream into top-level JSON texts (as QEMU's json-streamer).

    A value nested deeper than MAX_NESTING comes out as TOO_DEEP (QEMU: "JSON
    nesting depth limit exceeded"); the rest of it is skipped up to its end.
    """

    def __init__(self, limit: int = MAX_INPUT_BYTES) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.depth = 0
        self.in_str = False
        self.esc = False
        self.pos = 0
        self.too_deep = False

    def feed(self, data: bytes) -> list[bytes]:
        """Complete texts; raises ValueError when one grows beyond the limit."""
        self.buf += data
        out: list[bytes] = []
        buf = self.buf
        i = self.pos
        start = 0
        while i < len(buf):
            c = buf[i]
            if self.in_str:
                if self.esc:
                    self.esc = False
                elif c == 0x5C:
                    self.esc = True
                elif c == 0x22:
                    self.in_str = False
            elif c == 0x22:
                self.in_str = True
            elif c in b"{[":
                self.depth += 1
                if self.depth > MAX_NESTING and not self.too_deep:
                    self.too_deep = True
                    out.append(TOO_DEEP)
            elif c in b"}]":
                self.depth -= 1
                if self.depth <= 0:
                    if not self.too_deep:
                        out.append(bytes(buf[start:i + 1]))
                    self.too_deep = False
                    start, self.depth = i + 1, 0
            elif self.depth == 0 and c in b" \t\r\n":
                if buf[start:i].strip():
                    out.append(bytes(buf[start:i]))
                start = i + 1
            i += 1
        if self.too_deep:           # skipping the rest of a refused value: keep none
            start = len(buf)
        del buf[:start]
        self.pos = len(buf)
        if len(buf) > self.limit:
            self.buf = bytearray()
            self.pos = self.depth = 0
            self.in_str = self.esc = self.too_deep = False
            raise ValueError(f"QMP input exceeds {self.limit} bytes")
        return out



def remove_stale_socket(path) -> None:
    """Make way for a unix socket at `path`: remove only a stale socket (one nothing
    accepts on).  A live socket, a regular file, a directory or a symlink there is an
    OSError whose strerror says what is there and that it was left alone."""
    import errno
    import socket
    import stat
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        what = ("a regular file" if stat.S_ISREG(st.st_mode) else
                "a directory" if stat.S_ISDIR(st.st_mode) else
                "a symlink" if stat.S_ISLNK(st.st_mode) else "not a socket")
        raise FileExistsError(errno.EEXIST, f"{path} is {what}, not a stale socket: "
                                            "left alone (remove it or choose another path)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        os.unlink(path)                       # stale: nothing listens on it
        return
    except FileNotFoundError:
        return
    except BlockingIOError:
        pass                                  # a full backlog: something listens
    finally:
        probe.close()
    raise FileExistsError(errno.EADDRINUSE, f"{path} is a live socket (something accepts on "
                                            "it): left alone")


class QmpServer:
    """Serve QMP for ``node`` (a `protocol.drivers.node.Node`)."""

    def __init__(self, node, address: str, *, package: str | None = None) -> None:
        self.node = node
        self.kind, self.where = parse_address(address)
        from protocol import TOOL
        self.package = package or TOOL
        self.server = None
        self.clients: set = set()
        self.capabilities = {c: c == "x-colo" for c in CAPABILITIES}
        self.parameters = dict(PARAMETERS)
        self.dropped = 0          # clients dropped for not reading their output
        from protocol.drivers.qmpstatus import QemuRunView
        ep = node.ep              # QEMU 7.2's run state, fed every endpoint event from now
        self.view = QemuRunView(ep.role, ep.run_state, getattr(ep, "dialect", None))

    async def start(self) -> None:
        import asyncio
        if self.kind == "unix":
            path = self.where
            remove_stale_socket(path)           # never a regular file or a live socket
            old = os.umask(0o177)
            try:
                self.server = await asyncio.start_unix_server(self._client, path=path)
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
        else:
            from protocol.drivers.node import warn_all_interfaces
            host, port = self.where
            warn_all_interfaces("colo node", "--qmp tcp:", self.where)
            self.server = await asyncio.start_server(self._client, host, port)

    @property
    def bound(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.where}"
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"tcp:{host}:{port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in list(self.clients):
            w.close()
        if self.kind == "unix" and self.server is not None:    # only the socket it made
            try:
                os.unlink(self.where)
            except OSError:
                pass

    # ------------------------------------------------------------- events
    def event(self, name: str, data: dict | None = None) -> None:
        msg = {"timestamp": timestamp(), "event": name}
        if data is not None:
            msg["data"] = data
        line = (json.dumps(msg) + "\r\n").encode()
        for w in list(self.clients):
            if getattr(w, "_qmp_ready", False) and not w.is_closing():
                w.write(line)
                self._check_backlog(w, name)

    def _check_backlog(self, writer, what: str) -> None:
        """Drop a client whose unread output passed MAX_CLIENT_BACKLOG."""
        backlog = writer.transport.get_write_buffer_size()
        if backlog <= MAX_CLIENT_BACKLOG:
            return
        self.clients.discard(writer)
        writer.transport.abort()
        self.dropped += 1
        note = getattr(self.node, "_node_event", None)
        if note is not None:
            note("qmp", what="client-dropped", unread_bytes=backlog,
                 limit_bytes=MAX_CLIENT_BACKLOG, at=what)

    def on_endpoint_event(self, ev) -> None:
        kind = ev.kind
        if kind is K.VM or kind is K.FAILOVER:
            for name in self.view.feed(ev):
                self.event(name)
        elif kind is K.COLO_EXIT:
            self.event("COLO_EXIT", {"mode": ev.mode, "reason": ev.reason})
        elif kind is K.MIGRATION and self.capabilities.get("events"):
            self.event("MIGRATION", {"status": ev.status})

    # ------------------------------------------------------------- clients
    async def _client(self, reader, writer) -> None:
        writer._qmp_ready = False
        writer._qmp_oob = False
        self.clients.add(writer)
        greeting = {"QMP": {"version": {"qemu": QEMU_VERSION, "package": self.package},
                            "capabilities": ["oob"]}}
        splitter = JsonSplitter()
        try:
            writer.write((json.dumps(greeting) + "\r\n").encode())
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    texts = splitter.feed(data)
                except ValueError as exc:
                    self._send(writer, {"error": {"class": "GenericError",
                                                  "desc": f"JSON parse error, {exc}"}})
                    break
                for text in texts:
                    reply = self.handle_text(writer, text)
                    if reply is not None:
                        self._send(writer, reply)
                    if getattr(writer, "_qmp_quit", False):
                        await writer.drain()
                        self.node.request_quit("host-qmp-quit")
                        return
                    if writer.transport.get_write_buffer_size() > MAX_CLIENT_BACKLOG:
                        await writer.drain()    # replies unread: read no more commands
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.clients.discard(writer)
            writer.close()

    def _send(self, writer, msg: dict) -> None:
        if not writer.is_closing():
            writer.write(dump_json(msg))

    def handle_text(self, writer, text: bytes) -> dict | None:
        if text is TOO_DEEP:
            return {"error": {"class": "GenericError",
                              "desc": "JSON nesting depth limit exceeded"}}
        try:
            obj = parse_json(text)
        except (ValueError, UnicodeDecodeError) as exc:
            msg = getattr(exc, "msg", str(exc))
            return {"error": {"class": "GenericError", "desc": f"JSON parse error, {msg}"}}
        if not isinstance(obj, dict):
            return {"error": {"class": "GenericError",
                              "desc": "QMP input must be a JSON object"}}
        mid = obj.get("id")
        try:
            ret = self.dispatch(writer, obj)
        except QmpError as exc:
            reply = {"error": {"class": exc.cls, "desc": exc.desc}}
        except Exception as exc:     # a bug of ours: answer, keep serving, say what
            reply = {"error": {"class": "GenericError",
                               "desc": f"internal error: {type(exc).__name__}: {exc}"}}
        else:
            reply = {"return": ret}
        if "id" in obj:
            reply["id"] = mid
        return reply

    def dispatch(self, writer, obj: dict):
        # qmp_dispatch_check_obj, in QEMU's order
        oob_ok = getattr(writer, "_qmp_oob", False)
        for k, v in obj.items():
            if k in ("execute", "exec-oob"):
                if k == "exec-oob" and not oob_ok:
                    raise QmpError("QMP input member 'exec-oob' is unexpected")
                if not isinstance(v, str):
                    raise QmpError(f"QMP input member '{k}' must be a string")
            elif k == "arguments":
                if not isinstance(v, dict):
                    raise QmpError("QMP input member 'arguments' must be an object")
            elif k != "id":
                raise QmpError(f"QMP input member '{k}' is unexpected")
        if "execute" in obj and "exec-oob" in obj:
            raise QmpError("QMP input member 'execute' clashes with 'exec-oob'")
        oob = "exec-oob" in obj
        cmd = obj.get("exec-oob" if oob else "execute")
        if cmd is None:
            raise QmpError("QMP input lacks member 'execute'")
        args = obj.get("arguments", {})
        if not writer._qmp_ready:
            if cmd != "qmp_capabilities":
                raise QmpError("Expecting capabilities negotiation with 'qmp_capabilities'",
                               "CommandNotFound")
            writer._qmp_oob = _negotiate(args)
            writer._qmp_ready = True
            return {}
        fn = COMMANDS.get(cmd)
        if fn is None:
            raise QmpError(f"The command {cmd} has not been found", "CommandNotFound")
        if oob:          # none of this server's commands is allow-oob (as in QEMU)
            raise QmpError(f"The command {cmd} does not support OOB")
        return fn(self, writer, args)


def _negotiate(args: dict) -> bool:
    """qmp_capabilities' arguments, checked as QEMU's visitor does; True: OOB on."""
    if "enable" in args:
        caps = args["enable"]
        if not isinstance(caps, list):
            raise QmpError("Invalid parameter type for 'enable', expected: array")
        for i, cap in enumerate(caps):
            if not isinstance(cap, str):
                raise QmpError(f"Invalid parameter type for 'enable[{i}]', expected: string")
            if cap != "oob":
                # sic: QEMU 7.2 names the element 'null'
                raise QmpError(f"Parameter 'null' does not accept value '{cap}'")
    _only(args, ("enable",))
    return "oob" in (args.get("enable") or ())


def _only(args: dict, allowed) -> None:
    for k in args:
        if k not in allowed:
            raise QmpError(f"Parameter '{k}' is unexpected")


def _c_caps(srv, writer, args):
    raise QmpError("Capabilities negotiation is already complete, command ignored",
                   "CommandNotFound")


def _c_status(srv, writer, args):
    _only(args, ())
    status = srv.view.status
    return {"status": status, "singlestep": False, "running": status == "running"}


def _c_migrate(srv, writer, args):
    _only(args, ())
    ep = srv.node.ep
    status = ep.migration_status
    if ep.role == "primary":
        return {"status": status}
    addr = srv.node.listen_address()
    if status == "completed" or addr is None:
        return {"status": status}
    sa = [{"port": str(addr[1]), "ipv4": ":" not in addr[0], "host": addr[0],
           "type": "inet"}]
    return {"socket-address": sa} if status == "setup" else {"status": status,
                                                               "socket-address": sa}


def _c_colo_status(srv, writer, args):
    _only(args, ())
    return srv.node.ep.query_colo_status()


def _c_lost_heartbeat(srv, writer, args):
    _only(args, ())
    from protocol.errors import QmpCommandError
    try:
        srv.node.lost_heartbeat("qmp")
    except QmpCommandError as exc:
        raise QmpError(exc.desc, exc.error_class) from None
    return {}


def _c_set_params(srv, writer, args):
    from protocol.drivers.qmpparams import set_parameters
    from protocol.errors import QmpCommandError
    try:
        new = set_parameters(srv.parameters, args)
        if "x-checkpoint-delay" in new:
            srv.node.set_checkpoint_delay(new["x-checkpoint-delay"])
    except QmpCommandError as exc:
        raise QmpError(exc.desc, exc.error_class) from None
    srv.parameters.update(new)
    return {}


def _c_query_params(srv, writer, args):
    _only(args, ())
    return {**srv.parameters, "x-checkpoint-delay": srv.node.ep.checkpoint_delay_ms}


def _c_set_caps(srv, writer, args):
    _only(args, ("capabilities",))
    caps = args.get("capabilities")
    if caps is None:
        raise QmpError("Parameter 'capabilities' is missing")
    if not isinstance(caps, list):
        raise QmpError("Invalid parameter type for 'capabilities', expected: array")
    new = {}
    for i, item in enumerate(caps):          # QEMU 7.2's visitor, word for word
        at = f"capabilities[{i}]"
        if not isinstance(item, dict):
            raise QmpError(f"Invalid parameter type for '{at}', expected: object")
        if "capability" not in item:
            raise QmpError(f"Parameter '{at}.capability' is missing")
        name = item["capability"]
        if not isinstance(name, str):
            raise QmpError(f"Invalid parameter type for '{at}.capability', expected: string")
        if name not in CAPABILITIES:     # sic: QEMU drops the path here
            raise QmpError(f"Parameter 'capability' does not accept value '{name}'")
        if "state" not in item:
            raise QmpError(f"Parameter '{at}.state' is missing")
        if not isinstance(item["state"], bool):
            raise QmpError(f"Invalid parameter type for '{at}.state', expected: boolean")
        extra = next((k for k in item if k not in ("capability", "state")), None)
        if extra is not None:
            raise QmpError(f"Parameter '{at}.{extra}' is unexpected")
        new[name] = item["state"]
    if srv.node.ep.migration_status in ("active", "colo"):
        raise QmpError("There's a migration process in progress")
    srv.capabilities.update(new)
    return {}


def _c_query_caps(srv, writer, args):
    _only(args, ())
    return [{"state": s, "capability": c} for c, s in srv.capabilities.items()]


def _c_powerdown(srv, writer, args):
    _only(args, ())
    srv.event("POWERDOWN")
    srv.node.guest_shutdown()
    return {}


def _c_quit(srv, writer, args):
    _only(args, ())
    writer._qmp_quit = True
    return {}


def _c_read_ram(srv, writer, args):
    """x-testbed-read-ram {block?, offset, size}: bytes of the node's guest RAM (for a
    mirror of a real guest: what the last flushed checkpoint left), as hex."""
    _only(args, ("block", "offset", "size"))
    guest = srv.node.guest
    if getattr(guest, "ram", None) is None:
        raise QmpError("this node's guest keeps no RAM (start it with --guest mirror "
                       "or --guest model)" if not hasattr(guest, "read") else
                       "no RAM yet: the initial migration has not arrived")
    block = args.get("block", getattr(guest, "main_block", None) or "pc.ram")
    for k in ("offset", "size"):
        v = args.get(k)
        if v is None:
            raise QmpError(f"Parameter '{k}' is missing")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise QmpError(f"Invalid parameter type for '{k}', expected: uint64")
    if not isinstance(block, str):
        raise QmpError("Invalid parameter type for 'block', expected: string")
    if args["size"] > MAX_READ:
        raise QmpError(f"Parameter 'size' above {MAX_READ} bytes")
    try:
        data = (getattr(guest, "read", None) or guest.ram.read)(block, args["offset"],
                                                                args["size"])
    except ValueError as exc:
        raise QmpError(str(exc)) from None
    return {"block": block, "offset": args["offset"], "size": len(data), "data": data.hex(),
            "checkpoint": srv.node.ep.checkpoint}


def _c_guest_info(srv, writer, args):
    """x-testbed-query-guest: what the node's guest holds (blocks, last flush, screen)."""
    _only(args, ())
    guest = srv.node.guest
    ram = getattr(guest, "ram", None)
    out = {"kind": type(guest).__name__, "checkpoint": srv.node.ep.checkpoint,
           "blocks": [{"name": n, "size": sz} for n, sz in ram.layout()] if ram else []}
    summary = getattr(guest, "summary", None)
    if callable(summary):
        out.update(summary())
    return out


def _c_commands(srv, writer, args):
    return [{"name": n} for n in ("qmp_capabilities", *COMMANDS)]


COMMANDS = {
    "query-status": _c_status, "query-migrate": _c_migrate,
    "query-colo-status": _c_colo_status, "x-colo-lost-heartbeat": _c_lost_heartbeat,
    "migrate-set-parameters": _c_set_params, "query-migrate-parameters": _c_query_params,
    "migrate-set-capabilities": _c_set_caps, "query-migrate-capabilities": _c_query_caps,
    "system_powerdown": _c_powerdown, "query-commands": _c_commands, "quit": _c_quit,
    "x-testbed-read-ram": _c_read_ram, "x-testbed-query-guest": _c_guest_info,
}
MAX_READ = 64 << 10      # x-testbed-read-ram: the hex reply stays < 1 MiB per line
COMMANDS["qmp_capabilities"] = _c_caps


async def qmp_call(address: str, command: str, arguments: dict | None = None,
                   timeout_s: float = 5.0):
    """A tiny QMP client: connect, negotiate, run one command, return the reply.
    A server that is not accepting yet (a node or QEMU just started: the socket
    exists before it listens) is waited for within the same `timeout_s`."""
    import asyncio

    from protocol.drivers.qmpwait import wait_accepting
    kind, where = parse_address(address)

    async def go():
        await wait_accepting(address, timeout_s)
        if kind == "unix":
            reader, writer = await asyncio.open_unix_connection(where)
        else:
            reader, writer = await asyncio.open_connection(*where)
        try:
            await reader.readline()
            for i, (cmd, args) in enumerate((("qmp_capabilities", None),
                                             (command, arguments))):
                msg = {"execute": cmd, "id": i}
                if args:
                    msg["arguments"] = args
                writer.write(json.dumps(msg).encode())
                while True:
                    reply = json.loads(await reader.readline())
                    if "event" not in reply:
                        break
            return reply
        finally:
            writer.close()

    return await asyncio.wait_for(go(), timeout_s)
