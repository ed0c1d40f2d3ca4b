"""The sans-IO endpoint: decoder + role machine + failover, h2-style output.

Inputs: ``start``, ``receive_data``, ``receive_eof``, ``handle_timer``,
``request_checkpoint``, ``lost_heartbeat``, ``set_checkpoint_delay``,
``guest_shutdown``.  Outputs: ``segments_to_send()`` / ``data_to_send()``,
``take_events()``, ``next_deadline()``, ``close_requested``.  Time is always a
value passed in (milliseconds); nothing here reads a clock.

The role machines (``protocol.primary``, ``protocol.secondary``) are tables
keyed by (state, input); a missing key is a protocol error that names the
state and the input and moves the machine to ERROR.
"""
from __future__ import annotations

from . import failover as fo
from . import messages as m
from .codec import Decoder
from .dialects import Dialect
from .errors import DecodeError, LocalProtocolError, ProtocolError, QmpCommandError
from .events import Event, Load, Segment, make
from .guestport import NullGuest

ERROR = "ERROR"
DONE = "DONE"          # left COLO by failover
SHUTDOWN = "SHUTDOWN"
_STOPPED = frozenset((ERROR, DONE, SHUTDOWN))

# migration status (query-migrate)
MIG_SETUP, MIG_ACTIVE, MIG_COLO, MIG_COMPLETED, MIG_FAILED = (
    "setup", "active", "colo", "completed", "failed")


class Endpoint:
    role = "none"
    TABLE: dict = {}
    INITIAL_STATE = "INIT"

    def __init__(self, dialect: Dialect, *, mode: str = "periodic", guest=None,
                 checkpoint_delay_ms: int | None = None, load_ms: float = 0.0,
                 save_ms: float = 0.0, faithful: bool = True, initial_stream: bool | None = None,
                 max_blob_bytes: int | None = None,
                 progress_timeout_ms: float | None = None) -> None:
        if mode not in ("periodic", "hybrid"):
            raise ValueError(f"mode must be periodic or hybrid, not {mode!r}")
        self.dialect = dialect
        self.mode = mode
        self.guest = guest if guest is not None else NullGuest()
        self.checkpoint_delay_ms = (dialect.default_checkpoint_delay_ms
                                    if checkpoint_delay_ms is None else int(checkpoint_delay_ms))
        self.load_ms = load_ms
        self.save_ms = save_ms       # primary: device-state save time after the RAM part
        self.faithful = faithful
        #: beyond QEMU (which waits forever, bug B13): inside the initial migration
        #: or a message, RAM part or blob, the peer must complete a unit of work
        #: (a record, a section, 64 KiB) at least this often; None: no bound
        self.progress_timeout_ms = progress_timeout_ms or None
        self._progress_seen = -1
        self.initial_stream = (dialect.name == "qemu") if initial_stream is None else initial_stream
        self.state = self.INITIAL_STATE
        self.failover = fo.FailoverMachine()
        self.migration_status = MIG_SETUP
        self.last_mode = fo.MODE_NONE
        self.run_state = "prelaunch"
        self.checkpoint = 0          # last committed checkpoint
        self.in_flight = 0           # checkpoint being transacted (0: none)
        self.colo_thread_alive = False
        self.error: str | None = None
        self.close_requested = False
        self.peer_closed = False
        self.understood = 0          # control messages from the peer handled without error
        self.exited = False          # v11: the secondary exits after the default failover
        self._now = 0.0
        self._out: list[Segment] = []
        self._events: list[Event] = []
        self._timers: dict[str, float] = {}
        kw = {} if max_blob_bytes is None else {"max_blob_bytes": max_blob_bytes}
        peer = "secondary" if self.role == "primary" else "primary"
        self.decoder = Decoder(dialect, peer, expect_initial=(
            self.role == "secondary" and self.initial_stream),
            ram_ctx=getattr(self.guest, "ram_context", None),
            on_initial_page=getattr(self.guest, "initial_page", None), **kw)
        self.decoder.accepts = lambda name: (self.state, name) in self.TABLE
        if self.progress_timeout_ms is not None:   # each time the decoder needs more bytes
            self.decoder.on_wait = self._track_progress

    # ------------------------------------------------------------------ output
    def segments_to_send(self) -> list[Segment]:
        out, self._out = self._out, []
        return out

    def data_to_send(self) -> bytes:
        return b"".join(s.data for s in self.segments_to_send())

    def take_events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    # ----------------------------------------------------------------- helpers
    #: control outputs for drivers (besides ``checkpoint``, the committed-checkpoint
    #: counter): how many checkpoint loads began, and the last one's number
    loads_started = 0
    load_started_n = 0

    def emit(self, kind: str, **data) -> None:
        """Record an event of ``kind`` (its typed class, built by name: an unknown kind
        or field is an EventError)."""
        ev = make(self._now, self.role, kind, **data)
        self._events.append(ev)
        if ev.__class__ is Load and ev.phase == "begin":    # the load-started signal
            self.loads_started += 1
            self.load_started_n = ev.n

    def send(self, name: str, value: int = 0) -> None:
        raw = self.dialect.encode(name, value)
        self._out.append(Segment("msg", name, raw, self.in_flight, value))
        self._events.append(Event(self._now, self.role, "send",
                                  {"msg": name, "value": value, "hex": raw.hex()}))

    def send_payload(self, kind: str, point: str, data: bytes, **info) -> None:
        self._out.append(Segment(kind, point, data, self.in_flight))
        self.emit("send-" + point, bytes=len(data), **info)

    def goto(self, state: str) -> None:
        if state != self.state:
            self._events.append(Event(self._now, self.role, "state",
                                      {"machine": self.role, "to": state, "from": self.state}))
            self.state = state

    def set_run_state(self, run: str, why: str) -> None:
        if run == self.run_state:
            return
        old, self.run_state = self.run_state, run
        self.emit("vm", run=run, why=why, qmp=("RESUME" if run == "running" else
                                              "STOP" if old == "running" else None))

    def stop_vm(self, why: str, state: str = "colo") -> None:
        self.guest.stop()
        self.set_run_state(state, why)

    def start_vm(self, why: str) -> None:
        self.guest.start()
        self.set_run_state("running", why)

    def set_migration_status(self, status: str) -> None:
        if status != self.migration_status:
            self.migration_status = status
            self.emit("migration", status=status)

    def set_timer(self, name: str, at_ms: float) -> None:
        self._timers[name] = at_ms

    def cancel_timer(self, name: str) -> None:
        self._timers.pop(name, None)

    def fail_cas(self, old: str, new: str) -> None:
        before = self.failover.state
        self.failover.must(old, new)
        self.emit("failover", to=self.dialect.failover_name(new),
                  **{"from": self.dialect.failover_name(before)})

    def expect_error(self, expected: str, got: m.Message) -> ProtocolError:
        from .errors import RemoteProtocolError
        d = self.dialect
        if d.name == "v11":
            text = (f"Unexpect colo command, expect:{d.ids[expected]}, "
                    f"but got cmd:{got.msg_id}")
        else:
            text = f"Unexpected COLO message {got.msg_id}, expected {d.ids[expected]}"
        text += (f" (received {d.label(got.name)} where {d.label(expected)} was expected"
                 f" in state {self.state})")
        hint = None
        if got.msg_id is not None and not self.understood:
            # another dialect is plausible only while nothing the peer said made sense:
            # a peer that spoke this dialect until now is out of order, not foreign
            from .dialects import guess_peer_dialect
            other = guess_peer_dialect(got.msg_id, expected, d)
            if other:
                hint = f"is the peer speaking {other}?"
        return RemoteProtocolError(text, state=self.state, offending=got.name, hint=hint)

    # ------------------------------------------------------------------ inputs
    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        missing = [name for name in cls.TABLE.values() if not hasattr(cls, name)]
        if missing:     # a table that names no handler fails at import, not mid-session
            raise TypeError(f"{cls.__name__}.TABLE names missing handlers: {missing}")

    def _dispatch(self, kind: str, item=None) -> None:
        handler = self.TABLE.get((self.state, kind))
        if handler is None:
            raise self._no_transition(kind, item)
        getattr(self, handler)(item)

    def _no_transition(self, kind: str, item) -> ProtocolError:
        from .errors import RemoteProtocolError
        expected = self.expected_inputs()
        if isinstance(item, m.Message):
            names = [e for e in expected if e in self.dialect.ids]
            if names:
                return self.expect_error(names[0], item)
            return RemoteProtocolError(
                f"Got unknown COLO message: {item.msg_id} ({self.dialect.label(item.name)}) "
                f"in state {self.state}", state=self.state, offending=item.name)
        return LocalProtocolError(
            f"{self.role} cannot take {kind!r} in state {self.state} "
            f"(it takes: {', '.join(expected) or 'nothing'})", state=self.state, offending=kind)

    def expected_inputs(self) -> list[str]:
        return [k for (s, k) in self.TABLE if s == self.state]

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except ProtocolError as exc:
            # a guess at another dialect from the bytes alone (an id out of range) is
            # dropped once a whole checkpoint went through in this dialect
            text = exc.message if exc.hint and self.checkpoint else str(exc)
            self.enter_error(text, remote=not isinstance(exc, LocalProtocolError))

    def start(self, now: float) -> None:
        self._now = now
        self._guarded(self._dispatch, "start")
        self._track_progress()

    def receive_data(self, data: bytes, now: float) -> None:
        self._now = now
        if self.state in (ERROR, DONE, SHUTDOWN) or not self.colo_thread_alive and \
                self.state != self.INITIAL_STATE and self.role == "primary":
            self.emit("ignored", bytes=len(data), why=f"no COLO thread reads in {self.state}")
            return
        try:
            dec = self.decoder
            dec.feed(data)
            while (item := dec.next_item()) is not None:
                self._on_item(item)
                if self.state in _STOPPED:
                    break
        except ProtocolError as exc:
            # a guess at another dialect from the bytes alone (an id out of range) is
            # dropped once a whole checkpoint went through in this dialect
            text = exc.message if exc.hint and self.checkpoint else str(exc)
            self.enter_error(text, remote=not isinstance(exc, LocalProtocolError))

    def _receiving(self) -> bool:
        """Inside something the peer must finish: the initial migration (from the
        start, before its first byte) or a message, RAM part or blob."""
        if self.state in _STOPPED or self.peer_closed:
            return False
        return self.decoder.in_message or self.decoder.state == "initial" \
            and self.state != self.INITIAL_STATE

    def _track_progress(self) -> None:
        """(Re-)arm the progress timer when the peer completed a unit, drop it when
        nothing is being received."""
        if self.progress_timeout_ms is None:
            return
        if not self._receiving():
            self.cancel_timer("progress")
            self._progress_seen = -1
            return
        done = self.decoder.progress()
        if done != self._progress_seen or "progress" not in self._timers:
            self._progress_seen = done
            self.set_timer("progress", self._now + self.progress_timeout_ms)

    def _progress_expired(self) -> None:
        if not self._receiving():
            return
        bound = self.progress_timeout_ms
        stage = self.decoder.stage
        if self.in_flight:
            stage += f" (checkpoint {self.in_flight})"
        self.emit("progress-timeout", stage=stage, timeout_ms=bound)
        self.enter_error(f"no progress for {bound:g} ms in {stage}: the peer completed "
                         f"no record, message or 64 KiB of it (testbed bound "
                         f"--progress-timeout-ms {bound:g}; QEMU waits forever)", remote=True)

    def _on_item(self, item) -> None:
        if item.__class__ is m.Message:
            self._events.append(Event(self._now, self.role, "recv", {
                "msg": item.name, "value": item.value, "id": item.msg_id,
                "hex": item.raw.hex()}))
            self._dispatch(item.name, item)
            self.understood += 1
        elif isinstance(item, m.RamPart):
            self.emit("recv-ram", pages=item.page_count(), bytes=item.size_bytes,
                      **item.kind_counts())
            self._dispatch("ram", item)
        elif item.__class__ is m.RamChunk:
            self._dispatch("ram-chunk", item)
        elif isinstance(item, m.StateBlob):
            self.emit("recv-device-state", bytes=len(item.data))
            self._dispatch("blob", item)
        elif isinstance(item, m.InitialStream):
            self.emit("recv-initial", bytes=item.size_bytes)
            self._dispatch("initial", item)

    def receive_eof(self, now: float) -> None:
        """The peer closed its direction (FIN, RST, or our own shutdown)."""
        self._now = now
        if self.peer_closed:
            return
        self.peer_closed = True
        self.emit("eof")
        if self.state in (ERROR, DONE, SHUTDOWN):
            return
        try:
            self.decoder.close()
        except DecodeError as exc:
            self.enter_error(str(exc), remote=True)
            return
        self.on_peer_closed()

    def on_peer_closed(self) -> None:
        self.enter_error("Can't receive COLO message: Input/output error (peer closed)",
                         remote=True)

    def handle_timer(self, now: float) -> None:
        self._now = now
        due = sorted((t, n) for n, t in self._timers.items() if t <= now)
        for _, name in due:
            if self._timers.get(name, now + 1) <= now:
                del self._timers[name]
                self._guarded(self.on_timer, name)

    def on_timer(self, name: str) -> None:
        if name == "default-failover":
            self.default_failover()
        elif name == "progress":
            self._progress_expired()
        else:
            self._dispatch("timer:" + name)

    # ---------------------------------------------------------------- errors
    def enter_error(self, text: str, *, remote: bool) -> None:
        if self.state in (ERROR, DONE, SHUTDOWN):
            return
        self.error = text
        self.emit("error", message=text, remote=remote, during=self.state)
        self.goto(ERROR)
        self.cancel_timer("checkpoint")
        self.cancel_timer("load")
        self.cancel_timer("save")
        self.cancel_timer("progress")
        if self.colo_thread_alive:
            self.colo_thread_alive = False
            self.emit("colo-exit", mode=self.role, reason=fo.REASON_ERROR)
        if self.dialect.automatic_failover_ms is not None and self.failover.state == fo.NONE:
            self.set_timer("default-failover", self._now + self.dialect.automatic_failover_ms)

    def default_failover(self) -> None:
        """v11: after 2000 ms without an operator the primary takes over and the
        secondary exits ("SVM is going to exit in default!")."""
        if self.failover.state != fo.NONE:
            return
        if self.role == "primary":
            self.emit("default-failover", action="Primary VM will take over work in default")
            self._request_failover(operator=False)
        else:
            self.emit("default-failover", action="SVM is going to exit in default!")
            self.stop_vm("default failover: secondary exits", "shutdown")
            self.set_migration_status(MIG_FAILED)
            self.exited = True
            self.goto(SHUTDOWN)
            self.close_requested = True

    # -------------------------------------------------------------- failover
    @property
    def colo_mode(self) -> str:
        return self.role if self.migration_status == MIG_COLO else fo.MODE_NONE

    def query_colo_status(self) -> dict:
        f = self.failover.state
        if f == fo.NONE:
            reason = fo.REASON_NONE
        elif f == fo.COMPLETED:
            reason = fo.REASON_REQUEST
        elif self.migration_status == MIG_COLO:
            reason = fo.REASON_PROCESSING
        else:
            reason = fo.REASON_ERROR
        return {"mode": self.colo_mode, "last-mode": self.last_mode, "reason": reason}

    def lost_heartbeat(self, now: float) -> None:
        """x-colo-lost-heartbeat; raises QmpCommandError as QEMU would."""
        self._now = now
        self.emit("qmp", command="x-colo-lost-heartbeat")
        if self.colo_mode == fo.MODE_NONE:
            raise QmpCommandError("The feature 'colo' is not enabled", "GenericError")
        if self.failover.state != fo.NONE:
            raise QmpCommandError("COLO failover is already activated", "GenericError")
        self._request_failover(operator=True)

    def _request_failover(self, *, operator: bool) -> None:
        self.cancel_timer("default-failover")
        self.fail_cas(fo.NONE, fo.REQUIRE)
        self.fail_cas(fo.REQUIRE, fo.ACTIVE)       # the bottom half runs
        if self.run_state == "running":
            self.stop_vm("failover stops the VM")
        self.last_mode = self.role
        self.do_failover()

    def do_failover(self) -> None:   # pragma: no cover - overridden
        raise NotImplementedError

    def finish_failover(self, reason_on_exit: str) -> None:
        self.set_migration_status(MIG_COMPLETED)
        self.close_requested = True
        self.emit("action", name="shutdown-sockets")
        self.fail_cas(fo.ACTIVE, fo.COMPLETED)
        self.cancel_timer("checkpoint")
        if self.colo_thread_alive:
            self.colo_thread_alive = False
            self.emit("colo-exit", mode=self.role, reason=reason_on_exit)
        self.goto(DONE)
        self.start_vm("failover: this side carries on alone")

    # ------------------------------------------------------------- operator
    def request_checkpoint(self, now: float, reason: str = "operator") -> None:
        self._now = now
        self.emit("checkpoint-requested", reason=reason)

    def set_checkpoint_delay(self, delay_ms: int, now: float) -> None:
        self._now = now
        if not 0 <= int(delay_ms) <= 0xFFFFFFFF:
            raise QmpCommandError("Parameter 'x-checkpoint-delay' expects uint32",
                                  "GenericError")
        self.checkpoint_delay_ms = int(delay_ms)
        self.emit("parameter", name="x-checkpoint-delay", value=int(delay_ms))

    def guest_shutdown(self, now: float) -> None:
        self._now = now
        self.emit("guest-shutdown-requested")

    # ----------------------------------------------------------------- view
    def status(self) -> dict:
        return {"role": self.role, "state": self.state, "run_state": self.run_state,
                "running": self.run_state == "running",
                "migration": self.migration_status,
                "colo_status": self.query_colo_status(),
                "failover_state": self.dialect.failover_name(self.failover.state),
                "checkpoint": self.checkpoint, "in_flight": self.in_flight,
                "error": self.error, "checkpoint_delay_ms": self.checkpoint_delay_ms}


def make_endpoint(role: str, dialect: Dialect, **kw) -> Endpoint:
    from .primary import PrimaryEndpoint
    from .secondary import SecondaryEndpoint
    if role == "primary":
        return PrimaryEndpoint(dialect, **kw)
    if role == "secondary":
        return SecondaryEndpoint(dialect, **kw)
    raise ValueError(f"role must be primary or secondary, not {role!r}")
