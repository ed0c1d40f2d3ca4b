"""The sans-IO proxy machine: two decoders and a fault plan in; forward, hold,
close and events out.

The proxy sits on a COLO connection between a primary (P>S) and a secondary
(S>P).  Each direction's bytes go through the project's stream decoder
(`protocol.core.codec.Decoder`, any dialect; the qemu primary's initial migration
included) to find the pieces the fault grammar names (``KIND[=ARG]@POINT[#N]``,
`protocol.core.faults`).  A fault means what it means in the simulator
(`protocol.sim.core`): the same `FaultPlan` decides which faults fire at a
piece and `link_effect` what they do to its bytes:

* process faults (``kill-*``, ``stall-*``, ``heartbeat-*``, ``shutdown``) come
  out as `ProcessFault` just before the piece (a harness acts on them).  After
  a kill nothing more crosses (the dead process's kernel closes its socket; the
  shell sees that end); a stalled sender's piece and the rest of its direction
  are discarded (the process never wrote them).  ``@load`` fires as
  the secondary's vmstate-received passes.  ``partition=MS`` is a `Partition`;
* ``drop`` (the piece never arrives; the connection stays up), ``delay=MS``
  (a `Hold` of that direction before the piece: TCP never reorders, so what
  follows waits too), ``corrupt``, ``truncate`` (half the piece, then `Close`),
  ``duplicate``, ``close``/``reset`` (`Close` just before the piece),
  ``unexpected``/``value``/``opcode`` (other message bytes).

Control messages are whole pieces.  The RAM part, the device-state blob and
the initial migration stream are forwarded as they arrive, never stored whole,
unless a fault needs the whole piece (``truncate`` of a RAM part, whose size is
not announced, and ``duplicate``): then it is held, up to `MAX_HELD` bytes.
A stream the decoder cannot follow gives one ``error`` event and is then
forwarded raw.

Events go out through ``emit(side, kind, **fields)``: recv-initial, send,
checkpoint (begin/commit), ram, device-state, fault, dropped, lost, partition,
error.  The caller gives the time (``now_ms``) with every input and the
corrupting random source (``rng``: anything with ``randrange``), so the machine
itself reads no clock and draws no randomness.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.core import dialects
from protocol.core import faults as fl
from protocol.core import messages as m
from protocol.core.codec import DEFAULT_MAX_BLOB_BYTES, Decoder
from protocol.errors import DecodeError, FaultSpecError
from protocol.migration.stream import StreamError, decode_device_blob

P2S, S2P = "P>S", "S>P"
DIRECTIONS = (P2S, S2P)
SENDER = {P2S: "primary", S2P: "secondary"}
MAX_HELD = 64 << 20          # a piece held whole for truncate/duplicate
_QEMU_MAGIC_FIRST = 0x51     # "Q" of QEVM: the qemu primary starts with a migration
_STATE = {"message": "msg", "size word": "msg", "ram": "ram", "blob": "blob",
          "initial": "initial"}
#: proxy-only kind: partition acts on bytes, so a proxy without a harness can do it
WIRE_PROCESS_KINDS = ("partition",)


# ------------------------------------------------------------------ outputs
@dataclass(frozen=True, slots=True)
class Forward:
    """Write these bytes to the receiver of ``direction``."""
    direction: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Hold:
    """Wait ``ms`` before writing anything more in ``direction``."""
    direction: str
    ms: float


@dataclass(frozen=True, slots=True)
class Partition:
    """No byte of any connection crosses, either way, for ``ms`` from now."""
    ms: float


@dataclass(frozen=True, slots=True)
class Close:
    """End the COLO connection both ways: FIN after what was forwarded, or RST."""
    reset: bool
    why: str


@dataclass(frozen=True, slots=True)
class ProcessFault:
    """A harness's job (SIGKILL, SIGSTOP, QMP), before the piece goes on."""
    fault: fl.Fault
    direction: str


def check_faults(specs, dialect, *, process: bool = False) -> list[fl.Fault]:
    """Parse and validate a proxy's fault plan for ``dialect`` (FaultSpecError).
    Without ``process`` (no harness to kill or stop a node) process faults are
    refused; ``partition`` is always the proxy's own."""
    out = []
    for spec in specs:
        f = spec if isinstance(spec, fl.Fault) else fl.parse(spec)
        if f.kind in fl.STEP_KINDS:
            raise FaultSpecError(f"{f}: a re-protect starts a new secondary, which a proxy "
                                 "between two running peers cannot do (the simulator can: "
                                 "colo run --fault)")
        if not process and not f.is_link and f.kind not in WIRE_PROCESS_KINDS:
            kinds = ", ".join(fl.LINK_KINDS + WIRE_PROCESS_KINDS)
            raise FaultSpecError(f"{f}: {f.kind!r} is a process fault, not a wire fault; the "
                                 "proxy only touches bytes (use the harness / QMP for it); "
                                 f"proxy kinds: {kinds}")
        fl.check_fault(f, dialect)
        out.append(f)
    return out


def _part(buf, start: int, end: int) -> bytes:
    """buf[start:end] as bytes, with no copy when that is all of a bytes object."""
    if start == 0 and end == len(buf) and type(buf) is bytes:
        return buf
    with memoryview(buf) as mv:
        return bytes(mv[start:end])


class _Piece:
    """The faults acting on one streamed piece (RAM part, blob, initial stream)."""

    __slots__ = ("point", "n", "faults", "drop", "head", "held", "size", "limit", "sent",
                 "bytes")

    def __init__(self, point: str, n: int, faults: list, size: int | None) -> None:
        self.point, self.n, self.faults, self.size = point, n, faults, size
        kinds = {f.kind for f in faults}
        self.drop = "drop" in kinds
        whole = "duplicate" in kinds or ("truncate" in kinds and size is None)
        self.held = bytearray() if whole and not self.drop else None
        #: corrupt acts on the first bytes: gather them before the rest goes on
        self.head = bytearray() if "corrupt" in kinds and self.held is None \
            and not self.drop else None
        #: truncate of a piece of known size: half of it, then the connection ends
        self.limit = size // 2 if "truncate" in kinds and self.held is None else None
        self.sent = 0
        self.bytes = 0


class _Dir:
    __slots__ = ("name", "sender", "dec", "mode", "pending", "base", "offset", "discarded",
                 "piece", "t_initial", "vmdesc")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sender = SENDER[name]
        self.dec: Decoder | None = None
        self.mode = "decode"          # decode | raw | gone (sender dead) | closed
        self.pending = bytearray()    # bytes fed but not yet placed in a piece
        self.base = 0                 # stream offset of pending[0]
        self.offset = 0               # bytes received in this direction
        self.discarded = 0
        self.piece: _Piece | None = None
        self.t_initial: float | None = None
        self.vmdesc = None


class ProxyMachine:
    """One COLO connection seen by the proxy.  Feed each direction's bytes in
    arrival order; do what the returned actions say, in order."""

    def __init__(self, dialect, faults=(), *, rng, emit=None, process_faults: bool = False,
                 max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        self.dialect = dialects.get(dialect) if isinstance(dialect, str) else dialect
        self.plan = fl.FaultPlan(check_faults(faults, self.dialect, process=process_faults))
        self.rng = rng
        self._emit = emit
        self.max_blob_bytes = max_blob_bytes
        self.dirs = {name: _Dir(name) for name in DIRECTIONS}
        self.n = 0                    # the checkpoint under way (P>S checkpoint-requests)
        self.cp: dict = {}
        self.closed = False
        self.now = 0.0

    # ---------------------------------------------------------------- inputs
    @property
    def faults(self) -> list[fl.Fault]:
        return self.plan.faults

    @property
    def all_fired(self) -> bool:
        return self.plan.all_fired

    def emit(self, side: str, kind: str, **data) -> None:
        if self._emit is not None:
            self._emit(side, kind, **data)

    def feed(self, direction: str, data, now_ms: float = 0.0) -> list:
        """Bytes the sender of ``direction`` wrote; returns the actions."""
        d = self.dirs[direction]
        self.now = now_ms
        out: list = []
        size = len(data)
        if not size:
            return out
        d.offset += size
        mode = d.mode
        if mode == "decode":
            self._decode(d, data, out)
        elif mode == "raw":
            out.append(Forward(direction, bytes(data)))
        else:
            d.discarded += size
        return out

    def eof(self, direction: str, now_ms: float = 0.0) -> list:
        """The sender of ``direction`` closed its side: what it left undecoded goes on."""
        d = self.dirs[direction]
        self.now = now_ms
        out: list = []
        if d.piece is not None and d.piece.held:
            out.append(Forward(direction, bytes(d.piece.held)))
            d.piece.held = None
        if d.piece is not None and d.piece.head:
            out.append(Forward(direction, bytes(d.piece.head)))
            d.piece.head = None
        if d.pending and d.mode in ("decode", "raw"):
            out.append(Forward(direction, bytes(d.pending)))
        d.pending = bytearray()
        return out

    def info(self, direction: str) -> dict:
        """The direction's counters, for the ``closed`` event."""
        d = self.dirs[direction]
        if d.mode == "decode":
            state = _STATE.get(d.dec.state, d.dec.state) if d.dec is not None else \
                ("initial" if direction == P2S else "msg")
        else:
            state = "raw" if d.mode == "raw" else "black"
        return {"bytes": d.offset, "discarded": d.discarded, "state": state}

    # -------------------------------------------------------------- decoding
    def _decoder(self, d: _Dir, first: int) -> Decoder:
        initial = d.name == P2S and self.dialect.initial_migration and first == _QEMU_MAGIC_FIRST
        dec = Decoder(self.dialect, d.sender, expect_initial=initial,
                      max_blob_bytes=self.max_blob_bytes, keep_records=False)
        if initial:
            d.t_initial = self.now
            d.piece = _Piece("initial", 0, [], None)
        return dec

    def _decode(self, d: _Dir, data, out: list) -> None:
        dec = d.dec
        if dec is None:
            dec = d.dec = self._decoder(d, data[0])
        if d.pending:
            d.pending += data
            buf = d.pending
        else:
            buf = data
        done = 0                                  # bytes of buf placed so far
        try:
            dec.feed(data)
            while True:
                item = dec.next_item()
                upto = dec.bytes_consumed - d.base
                kind = type(item)
                if item is None or kind is m.RamChunk:
                    if upto > done:
                        self._stream(d, _part(buf, done, upto), out)
                        done = upto
                elif kind is m.Message:
                    at = d.base + done
                    done = upto
                    self._message(d, item, at, out)
                else:                               # a streamed piece ends
                    if upto > done:
                        self._stream(d, _part(buf, done, upto), out)
                        done = upto
                    if d.mode == "decode":
                        self._piece_end(d, item, out)
                if d.mode != "decode":
                    if d.mode == "raw":
                        out.append(Forward(d.name, _part(buf, done, len(buf))))
                    else:
                        d.discarded += len(buf) - done
                    done = len(buf)
                    break
                if item is None:
                    break
                if d.piece is None:
                    self._piece_start(d, out)
        except DecodeError as exc:
            self._garbled(d, exc, out)
            if d.mode == "raw" and len(buf) > done:
                out.append(Forward(d.name, _part(buf, done, len(buf))))
            done = len(buf)
        d.base += done
        if done == len(buf):
            d.pending = bytearray()
        elif buf is d.pending:
            del d.pending[:done]
        else:
            d.pending = bytearray(buf[done:])

    def _garbled(self, d: _Dir, exc: Exception, out: list) -> None:
        self.emit("link", "error", dir=d.name, offset=d.base, state=self.info(d.name)["state"],
                  error=str(exc), action="decoding stopped; bytes forwarded raw")
        piece = d.piece
        if piece is not None and d.mode == "decode":
            for part in (piece.head, piece.held):
                if part:
                    out.append(Forward(d.name, bytes(part)))
        d.piece = None
        if d.mode == "decode":
            d.mode = "raw"

    # ---------------------------------------------------------------- pieces
    def _begin(self, d: _Dir, point: str, n: int, size: int, out: list) -> list | None:
        """The faults at a piece, in the simulator's order; None: it goes nowhere."""
        if d.name == S2P and point == m.VMSTATE_RECEIVED:
            self._process(d, "load", n, out)
        self._process(d, point, n, out)
        if d.mode == "gone":
            self.emit("link", "lost", dir=d.name, point=point, n=n, bytes=size,
                      why=self._gone_why(d))
            return None
        if self.closed:
            return None
        here = self.plan.take(point, n, link=True)
        for f in here:
            self.emit("link", "fault", spec=str(f), dir=d.name, point=point, n=n)
        return here

    def _process(self, d: _Dir, point: str, n: int, out: list) -> None:
        for f in self.plan.take(point, n, link=False):
            self.emit("link", "fault", spec=str(f), dir=d.name, point=point, n=n)
            if f.kind == "partition":
                out.append(Partition(float(f.arg)))
                self.emit("link", "partition", until=round(self.now + float(f.arg), 3))
                continue
            out.append(ProcessFault(f, d.name))
            if f.kind.startswith("kill-"):
                # the dead process's kernel closes its socket: nothing crosses any more
                for other in self.dirs.values():
                    if other.mode in ("decode", "raw"):
                        self._stop(other, "gone")
            elif fl.sender_dies(f, d.sender):
                self._stop(d, "gone")

    def _gone_why(self, d: _Dir) -> str:
        dead = [f.kind.partition("-")[2] for i, f in enumerate(self.plan.faults)
                if i in self.plan.fired and f.kind.startswith(("kill-", "stall-"))]
        if d.sender in dead:
            return f"the {d.sender} is gone before the bytes left"
        return "connection closed"

    def _stop(self, d: _Dir, mode: str) -> None:
        d.mode = mode
        d.piece = None

    def _close(self, out: list, reset: bool, why: str) -> None:
        out.append(Close(reset, why))
        self.closed = True
        for d in self.dirs.values():
            if d.mode in ("decode", "raw"):
                self._stop(d, "closed")

    def _message(self, d: _Dir, msg: m.Message, at: int, out: list) -> None:
        name, value = msg.name, msg.value
        if d.name == P2S and name == m.CHECKPOINT_REQUEST:
            self.n += 1
            self.cp = {"n": self.n, "t": self.now}
            self.emit("primary", "checkpoint", n=self.n, phase="begin")
        n = 1 if name == m.CHECKPOINT_READY else self.n
        self.emit(d.sender, "send", dir=d.name, msg=name, id=msg.msg_id, value=value, n=n,
                  offset=at)
        if not self.plan.faults:
            out.append(Forward(d.name, msg.raw))
        else:
            here = self._begin(d, name, n, len(msg.raw), out)
            if here is not None:
                self._whole(d, name, n, here, msg.raw, value, out)
        if d.name == S2P and name == m.VMSTATE_LOADED and self.cp.get("n") == self.n:
            cp = self.cp
            self.emit("primary", "checkpoint", n=self.n, phase="commit",
                      ms=round(self.now - cp["t"], 3),
                      **{k: cp[k] for k in ("zero", "full", "xbzrle", "device_bytes",
                                            "sections") if k in cp})

    def _whole(self, d: _Dir, point: str, n: int, here: list, data: bytes, value: int,
               out: list) -> None:
        """A whole piece through its link faults (`faults.link_effect`, as the simulator)."""
        if not here:
            out.append(Forward(d.name, data))
            return
        eff = fl.link_effect(here, data, self.dialect, point, value, self.rng)
        if eff.close_before:
            self._close(out, eff.close_before == "reset", f"fault {eff.close_before}")
            return
        if eff.copies == 0:
            self.emit("link", "dropped", dir=d.name, point=point, n=n, bytes=len(data))
        if eff.extra_delay_ms:
            out.append(Hold(d.name, eff.extra_delay_ms))
        for _ in range(eff.copies):
            if eff.data:
                out.append(Forward(d.name, eff.data))
        if eff.close_after:
            self._close(out, False, "fault truncate: the connection closes after half "
                                    "the bytes")

    def _piece_start(self, d: _Dir, out: list) -> None:
        """After a message: does a streamed piece (RAM part, blob) begin?"""
        state = d.dec.state
        if state == "ram":
            point, size = "ram", None
        elif state == "blob":
            point, size = "device-state", d.dec._blob_size
        else:
            return
        self._stream_start(d, point, size, out)

    def _stream_start(self, d: _Dir, point: str, size: int | None, out: list) -> None:
        if point == "device-state":
            self.cp["device_bytes"] = size
        if not self.plan.faults:
            d.piece = _Piece(point, self.n, [], size)
            return
        here = self._begin(d, point, self.n, size or 0, out)
        if here is None:
            return
        closer = next((f for f in here if f.kind in ("close", "reset")), None)
        if closer is not None:
            self._close(out, closer.kind == "reset", f"fault {closer.kind}")
            return
        piece = d.piece = _Piece(point, self.n, here, size)
        delay = sum(float(f.arg) for f in here if f.kind == "delay")
        if delay and piece.held is None:
            out.append(Hold(d.name, delay))

    def _stream(self, d: _Dir, chunk: bytes, out: list) -> None:
        """Bytes of the streamed piece under way."""
        p = d.piece
        if p is None or not p.faults:     # (None: bytes outside any piece go on as they are)
            out.append(Forward(d.name, chunk))
            if p is not None:
                p.bytes += len(chunk)
            return
        p.bytes += len(chunk)
        if p.drop:
            return
        if p.held is not None:
            p.held += chunk
            if len(p.held) > MAX_HELD:
                self.emit("link", "error", dir=d.name, offset=d.base, error=(
                    f"{p.point} above {MAX_HELD} bytes: {', '.join(map(str, p.faults))} "
                    "not applied"))
                held, p.held, p.faults = bytes(p.held), None, []
                out.append(Forward(d.name, held))
            return
        if p.head is not None:
            p.head += chunk
            if len(p.head) < self.dialect.opcode_bytes:
                return
            chunk, p.head = self._corrupt(d, p, bytes(p.head)), None
        self._pass(d, p, chunk, out)

    def _corrupt(self, d: _Dir, p: _Piece, data: bytes) -> bytes:
        corrupt = [f for f in p.faults if f.kind == "corrupt"]
        return fl.link_effect(corrupt, data, self.dialect, p.point, 0, self.rng).data

    def _pass(self, d: _Dir, p: _Piece, chunk, out: list) -> None:
        if p.limit is not None:
            chunk = chunk[:max(0, p.limit - p.sent)]
        if chunk:
            p.sent += len(chunk)
            out.append(Forward(d.name, chunk))
        if p.limit is not None and p.sent >= p.limit:
            self._close(out, False, "fault truncate: the connection closes after half "
                                    "the bytes")

    def _piece_end(self, d: _Dir, item, out: list) -> None:
        p, d.piece = d.piece, None
        if isinstance(item, m.InitialStream):
            self._initial_done(d, item)
        elif isinstance(item, m.RamPart):
            kinds = {"zero": 0, "page": 0, "xbzrle": 0, **(item.kinds or {})}
            self.cp.update(zero=kinds["zero"], full=kinds["page"], xbzrle=kinds["xbzrle"])
            self.emit("primary", "ram", n=self.n, pages=item.pages, zero=kinds["zero"],
                      full=kinds["page"], xbzrle=kinds["xbzrle"], bytes=item.size_bytes,
                      blocks=dict(item.blocks or {}))
        elif isinstance(item, m.StateBlob):
            sections = None
            try:
                sections = len(decode_device_blob(bytes(item.data), d.vmdesc)) \
                    if self.dialect.real_qemu else None
            except StreamError as exc:
                self.emit("link", "error", dir=d.name, offset=d.base, error=str(exc),
                          action="device blob not split; stream still followed")
            self.cp["device_bytes"], self.cp["sections"] = len(item.data), sections
            self.emit("primary", "device-state", n=self.n, bytes=len(item.data),
                      sections=sections)
        if p is None or not p.faults or self.closed:
            return
        if p.drop:
            self.emit("link", "dropped", dir=d.name, point=p.point, n=p.n, bytes=p.bytes)
            return
        if p.held is not None:           # its delay was kept for now: all faults at once
            self._whole(d, p.point, p.n, p.faults, bytes(p.held), 0, out)
        elif p.head is not None:         # the piece was shorter than the corrupted byte
            self._pass(d, p, self._corrupt(d, p, bytes(p.head)), out)
        if p.limit is not None and not self.closed:
            self._close(out, False, "fault truncate: the connection closes after half "
                                    "the bytes")

    def _initial_done(self, d: _Dir, item: m.InitialStream) -> None:
        s = item.summary
        d.vmdesc = s.vmdesc
        self.emit("primary", "recv-initial", bytes=s.bytes, machine=s.machine,
                  enable_colo=s.enable_colo, blocks=len(s.blocks), mem_size=s.mem_size,
                  zero=s.pages_by_kind.get("zero", 0), full=s.pages_by_kind.get("page", 0),
                  device_sections=len(s.device_sections), vmdesc_len=s.vmdesc_len,
                  ms=round(self.now - (d.t_initial or self.now), 3))
