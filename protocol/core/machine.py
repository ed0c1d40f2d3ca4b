"""What the primary and the secondary machines share: a table that maps
(state, input) to (handler, next state), the VM and migration status QEMU reports,
errors and the failover procedures.

A transition runs its handler, then moves to the table's next state; a handler
that chooses another next state returns it (an explicit override a reader sees in
the handler), and one whose transition ends elsewhere (an error, a failover) leaves
the state it was dispatched from, which the dispatch then keeps.  ``then`` names
what runs once the next state is entered.  A missing key is a protocol error that
names the state and the input and moves the machine to ERROR.

A machine owns no I/O: it writes to an ``Outbox`` and arms named ``Timers``; the
``Endpoint`` facade feeds it decoded items and time.
"""
from __future__ import annotations

from typing import NamedTuple

from protocol.core import failover as fo
from protocol.core import messages as m
from protocol.core.dialects import Dialect, guess_peer_dialect
from protocol.core.events import (
    Action,
    Checkpoint,
    Event,
    Load,
    Migration,
    Segment,
    Send,
    SendDeviceState,
    SendInitial,
    SendRam,
    State,
    Vm,
    positional,
)
from protocol.core.guestport import NullGuest
from protocol.core.outbox import Outbox
from protocol.core.states import DONE, ERROR, SHUTDOWN, STOPPED, Input
from protocol.core.timers import Timers
from protocol.errors import LocalProtocolError, ProtocolError, QmpCommandError, RemoteProtocolError

# migration status (query-migrate)
MIG_SETUP, MIG_ACTIVE, MIG_COLO, MIG_COMPLETED, MIG_FAILED = (
    "setup", "active", "colo", "completed", "failed")


class Transition(NamedTuple):
    handler: str            # the machine's method, looked up by name when it runs
    next: str               # the state the transition enters
    then: str | None = None  # a method run once `next` is entered
    alt: tuple = ()         # the other states the handler may return instead of `next`


class RoleMachine:
    #: the machine's role ("primary", "secondary"); each machine's ``role``
    ROLE = "none"
    TABLE: dict[tuple[str, str], Transition] = {}
    INITIAL_STATE = "INIT"

    def __init__(self, dialect: Dialect, *, out: Outbox, timers: Timers,
                 failover: fo.FailoverMachine, mode: str = "periodic", guest=None,
                 checkpoint_delay_ms: int | None = None, load_ms: float = 0.0,
                 save_ms: float = 0.0, faithful: bool = True,
                 initial_stream: bool | None = None) -> None:
        if mode not in ("periodic", "hybrid"):
            raise ValueError(f"mode must be periodic or hybrid, not {mode!r}")
        self.role = self.ROLE
        #: control outputs for drivers (besides ``checkpoint``, the committed-checkpoint
        #: counter): how many checkpoint loads began, and the last one's number
        self.loads_started = 0
        self.load_started_n = 0
        self.dialect = dialect
        self.mode = mode
        self.guest = guest if guest is not None else NullGuest()
        self.checkpoint_delay_ms = (dialect.default_checkpoint_delay_ms
                                    if checkpoint_delay_ms is None else int(checkpoint_delay_ms))
        self.load_ms = load_ms
        self.save_ms = save_ms       # primary: device-state save time after the RAM part
        self.faithful = faithful
        self.initial_stream = (dialect.initial_migration if initial_stream is None
                               else initial_stream)
        self.out = out
        self.timers = timers
        self.failover = failover
        self.decoder = None          # set by the Endpoint (the prototype's blob reader)
        self.resume_reads = None     # set by the Endpoint: read what waited (reads_paused)
        self.state = str(self.INITIAL_STATE)
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
        self._table = self._bind_table()
        self._plain = dialect.plain()          # each message's bytes with value 0
        # the dialect's flags the checkpoint path reads (C fields in the compiled build:
        # a frozen dataclass's attribute is a lookup by name)
        self._ram_outside_blob = dialect.ram_outside_blob
        self._release_after = dialect.release_after

    def reads_paused(self) -> bool:
        """The COLO thread is busy and reads nothing now: bytes that arrive wait in
        the socket (the decoder's buffer) until `resume_reads` (the secondary's load)."""
        return False

    def _bind_table(self) -> dict:
        """The class's TABLE with each transition's handler (and ``then``) bound to
        this machine and its states as plain strings, by state, then by input:
        {state: {input: (handler, next, then, alt, handler's name)}} (two lookups by
        a string: no (state, input) tuple built and compared per transition)."""
        table: dict[str, dict] = {}
        for (state, kind), t in self.TABLE.items():
            then = getattr(self, t.then) if t.then is not None else None
            table.setdefault(str(state), {})[str(kind)] = (
                getattr(self, t.handler), str(t.next), then, t.alt, t.handler)
        return table

    @property
    def _now(self) -> float:
        return self.out.now

    # ----------------------------------------------------------------- output
    def emit(self, kind: str, **data) -> None:
        out = self.out
        out.events.append(Event(out.now, self.role, kind, data))

    def ev(self, cls: type[Event], **fields) -> None:
        """Emit an event of class ``cls`` (the hot emitters: no lookup by kind name)."""
        out = self.out
        out.events.append(cls._new(out.now, self.role, fields))

    def detail(self, cls: type[Event], **fields) -> None:
        """Emit a detail event (an action no invariant checks): only when someone reads
        them (``Outbox.detail``)."""
        out = self.out
        if out.detail:
            out.events.append(cls._new(out.now, self.role, fields))

    # the events of every checkpoint, from their fields' values by position (no dict
    # of fields, no lookup by name: C calls in the compiled build, which name every
    # argument up to the last one given)
    def checkpoint_event(self, n: int, phase: str, reason: str | None = None,
                         loaded_sent: bool | None = None) -> None:
        """A `Checkpoint` event: transaction ``n`` begins or commits."""
        out = self.out
        out.events.append(_checkpoint_at(out.now, self.role, n, phase, reason, loaded_sent))

    def load_event(self, phase: str, n: int) -> None:
        """A `Load` event: the secondary's load of checkpoint ``n`` begins or ends."""
        out = self.out
        out.events.append(_load_at(out.now, self.role, phase, n))

    def action(self, name: str, nbytes: int | None = None, pages=None,
               packets: int | None = None) -> None:
        """An `Action` event with these fields (``nbytes`` is its ``bytes``)."""
        out = self.out
        out.events.append(_action_at(out.now, self.role, name, nbytes, pages, packets))

    def send(self, name: str, value: int = 0) -> None:
        raw = None if value else self._plain.get(name)    # (no method call: the
        if raw is None:                                    # messages of a checkpoint)
            raw = self.dialect.encode(name, value)
        out = self.out
        out.segments.append(Segment("msg", name, raw, self.in_flight, value))
        if not out.lean or name in out.checked_msgs:
            out.events.append(_send_at(out.now, self.role, name, value, raw))

    def send_payload(self, kind: str, point: str, data: bytes, pages: int | None = None) -> None:
        """A RAM part, blob or initial stream; ``pages``: a RAM part's page count."""
        out = self.out
        out.segments.append(Segment(kind, point, data, self.in_flight))
        if not out.lean or point != "ram":
            self._sent(point, len(data), pages)

    def send_stream(self, kind: str, point: str, size: int, chunks,
                    pages: int | None = None) -> None:
        """`send_payload` of a piece encoded as the driver reads `chunks` (`Segment`)."""
        out = self.out
        out.segments.append(Segment(kind, point, b"", self.in_flight, 0, chunks, size))
        if not out.lean or point != "ram":
            self._sent(point, size, pages)

    def _sent(self, point: str, size: int, pages: int | None) -> None:
        out = self.out
        build = _SENT_AT[point]
        out.events.append(build(out.now, self.role, size) if pages is None
                          else build(out.now, self.role, size, pages))

    def set_timer(self, name: str, at_ms: float) -> None:
        self.timers.set(name, at_ms)

    def cancel_timer(self, name: str) -> None:
        self.timers.cancel(name)

    # ------------------------------------------------------------- the table
    def goto(self, state: str) -> None:
        old = self.state
        if state != old:
            if type(state) is not str:
                state = str(state)          # an enum member: the plain string
            out = self.out
            out.events.append(_state_at(out.now, self.role, self.role, state, old))
            self.state = state

    def accepts(self, kind: str) -> bool:
        row = self._table.get(self.state)
        return row is not None and kind in row

    def expected_inputs(self) -> list[str]:
        return [str(k) for (s, k) in self.TABLE if s == self.state]

    def _dispatch(self, kind: str, item) -> None:
        state = self.state
        row = self._table.get(state)
        t = row.get(kind) if row is not None else None
        if t is None:
            raise self._no_transition(kind, item)
        handler, nxt, then, alt, name = t
        override = handler(item)
        if self.state != state:      # the handler's transition ended elsewhere
            return
        if override is not None:
            if override not in alt:
                raise LocalProtocolError(
                    f"{self.role}: {name} chose {override}, which the table does not "
                    f"list for ({state}, {kind})", state=state, offending=kind)
            self.goto(override)
        else:
            if nxt != state:          # goto(nxt), inlined: nxt is a plain string already
                out = self.out
                out.events.append(_state_at(out.now, self.role, self.role, nxt, state))
                self.state = nxt
            if then is not None:
                then()

    def _no_transition(self, kind: str, item) -> ProtocolError:
        expected = self.expected_inputs()
        if isinstance(item, m.Message):
            names = [e for e in expected if e in self.dialect.ids]
            if names:
                return self.expect_error(names[0], item)
            return RemoteProtocolError(
                f"Got unknown COLO message: {item.msg_id} ({self.dialect.label(item.name)}) "
                f"in state {self.state}", state=self.state, offending=item.name)
        return LocalProtocolError(
            f"{self.role} cannot take {str(kind)!r} in state {self.state} "
            f"(it takes: {', '.join(expected) or 'nothing'})", state=self.state, offending=kind)

    def expect_error(self, expected: str, got: m.Message) -> ProtocolError:
        d = self.dialect
        text = d.unexpected_text.format(expected=d.ids[expected], got=got.msg_id)
        text += (f" (received {d.label(got.name)} where {d.label(expected)} was expected"
                 f" in state {self.state})")
        hint = None
        if got.msg_id is not None and not self.understood:
            # another dialect is plausible only while nothing the peer said made sense:
            # a peer that spoke this dialect until now is out of order, not foreign
            other = guess_peer_dialect(got.msg_id, expected, d)
            if other:
                hint = f"is the peer speaking {other}?"
        return RemoteProtocolError(text, state=self.state, offending=got.name, hint=hint)

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except ProtocolError as exc:
            self.protocol_error(exc)

    def _dispatch_guarded(self, kind: str, item) -> None:
        """`_guarded` of `_dispatch`, calling it by name: in the compiled build a bound
        cpdef method taken as an object would skip a wrapper set on the instance (the
        swarm's and the guest watch's counters)."""
        try:
            self._dispatch(kind, item)
        except ProtocolError as exc:
            self.protocol_error(exc)

    def protocol_error(self, exc: ProtocolError) -> None:
        # a guess at another dialect from the bytes alone (an id out of range) is
        # dropped once a whole checkpoint went through in this dialect
        text = exc.message if exc.hint and self.checkpoint else str(exc)
        self.enter_error(text, remote=not isinstance(exc, LocalProtocolError))

    def on_timer(self, name: str) -> None:
        if name == "default-failover":
            self.default_failover()
            return
        kind = _TIMER_INPUT.get(name) or "timer:" + name
        if name == "checkpoint" and not self.accepts(kind):
            return           # the checkpoint timer outside COLO: nothing to pace
        self._dispatch(kind, None)

    # ------------------------------------------------------------ VM status
    def set_run_state(self, run: str, why: str, n=None) -> None:
        """`why` is said in the vm event (detail level only); with `n`, it is a
        template whose ``{}`` is `n`, formatted only then (a checkpoint's number
        formatted four times a checkpoint cost more than the rest of these calls)."""
        if run == self.run_state:
            return
        old, self.run_state = self.run_state, run
        out = self.out
        if out.detail:
            if n is not None:
                why = why.format(n)
            out.events.append(_new_vm(out.now, self.role, {
                "run": run, "why": why,
                "qmp": "RESUME" if run == "running" else "STOP" if old == "running" else None}))

    def stop_vm(self, why: str, state: str = "colo", n=None) -> None:
        self.guest.stop()
        self.set_run_state(state, why, n)

    def start_vm(self, why: str, n=None) -> None:
        self.guest.start()
        self.set_run_state("running", why, n)

    def set_migration_status(self, status: str) -> None:
        if status != self.migration_status:
            self.migration_status = status
            out = self.out
            if out.detail:
                out.events.append(_new_migration(out.now, self.role, {"status": status}))

    # ---------------------------------------------------------------- errors
    def on_peer_closed(self) -> None:
        self.enter_error("Can't receive COLO message: Input/output error (peer closed)",
                         remote=True)

    def enter_error(self, text: str, *, remote: bool) -> None:
        if self.state in STOPPED:
            return
        self.error = text
        self.emit("error", message=text, remote=remote, during=str(self.state))
        self.goto(ERROR)
        for name in ("checkpoint", "load", "save", "progress"):
            self.timers.cancel(name)
        if self.colo_thread_alive:
            self.colo_thread_alive = False
            self.emit("colo-exit", mode=self.role, reason=fo.REASON_ERROR)
        if self.dialect.automatic_failover_ms is not None and self.failover.state == fo.NONE:
            self.set_timer("default-failover", self._now + self.dialect.automatic_failover_ms)

    # -------------------------------------------------------------- failover
    def fail_cas(self, old: str, new: str) -> None:
        before = self.failover.state
        self.failover.must(old, new)
        self.emit("failover", to=self.dialect.failover_name(new),
                  **{"from": self.dialect.failover_name(before)})

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

    def lost_heartbeat(self) -> None:
        """x-colo-lost-heartbeat; raises QmpCommandError as QEMU would."""
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

    def do_failover(self) -> None:   # pragma: no cover - each role defines it
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
    def request_checkpoint(self, reason: str = "operator") -> None:
        self.emit("checkpoint-requested", reason=reason)

    def set_checkpoint_delay(self, delay_ms: int) -> None:
        if not 0 <= int(delay_ms) <= 0xFFFFFFFF:
            raise QmpCommandError("Parameter 'x-checkpoint-delay' expects uint32",
                                  "GenericError")
        self.checkpoint_delay_ms = int(delay_ms)
        self.emit("parameter", name="x-checkpoint-delay", value=int(delay_ms))

    def guest_shutdown(self) -> None:
        self.emit("guest-shutdown-requested")

    def status(self) -> dict:
        return {"role": self.role, "state": str(self.state), "run_state": self.run_state,
                "running": self.run_state == "running",
                "migration": self.migration_status,
                "colo_status": self.query_colo_status(),
                "failover_state": self.dialect.failover_name(self.failover.state),
                "checkpoint": self.checkpoint, "in_flight": self.in_flight,
                "error": self.error, "checkpoint_delay_ms": self.checkpoint_delay_ms}


def check_table(cls: type[RoleMachine]) -> type[RoleMachine]:
    """Class decorator of a role machine: a TABLE that names a missing handler fails at
    import, not mid-session.  (A decorator, not ``__init_subclass__``: the compiled
    build makes RoleMachine an extension type, which cannot have that hook.)"""
    names = {n for t in cls.TABLE.values() for n in (t.handler, t.then) if n}
    missing = sorted(n for n in names if not hasattr(cls, n))
    if missing:
        raise TypeError(f"{cls.__name__}.TABLE names missing handlers: {missing}")
    return cls


#: each timer's input by its name (the timers of every checkpoint: no string built)
_TIMER_INPUT = {str(i).removeprefix("timer:"): str(i) for i in Input
                if str(i).startswith("timer:")}

#: the hot emitters' events, built from a dict of their fields (`Event._new`: no class
#: call; the dict is the emitter's own, never kept) or, for the two of every message
#: and transition, from the fields' values by position (`positional`)
_new_vm, _new_migration = Vm._new, Migration._new
_send_at = positional(Send)        # (msg, value, raw)
_state_at = positional(State)      # (machine, to, from_)
_checkpoint_at = positional(Checkpoint)     # (n, phase, reason, loaded_sent)
_load_at = positional(Load)                 # (phase, n)
_action_at = positional(Action)             # (name, bytes, pages, packets)

#: send_payload's event, by the segment's point, from its values by position: (bytes)
#: or, for a RAM part, (bytes, pages)
_SENT_AT = {"ram": positional(SendRam), "device-state": positional(SendDeviceState),
            "initial": positional(SendInitial)}

__all__ = ["DONE", "ERROR", "MIG_ACTIVE", "MIG_COLO", "MIG_COMPLETED", "MIG_FAILED",
           "MIG_SETUP", "SHUTDOWN", "STOPPED", "Input", "RoleMachine", "Transition",
           "check_table"]
