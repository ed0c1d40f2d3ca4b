"""The sans-IO endpoint: a facade over a decoder, a role machine, the failover
machine and the timers, h2-style.

Inputs: ``start``, ``receive_data``, ``receive_eof``, ``handle_timer``,
``request_checkpoint``, ``lost_heartbeat``, ``set_checkpoint_delay``,
``guest_shutdown``.  Outputs: ``segments_to_send()`` / ``data_to_send()``,
``take_events()``, ``next_deadline()``, ``close_requested``.  Time is always a
value passed in (milliseconds); nothing here reads a clock.

The endpoint owns the plumbing: it feeds the decoder's items to the machine
(``protocol.core.primary`` / ``protocol.core.secondary``, tables keyed by (state, input)),
bounds the peer's progress, and fires timers.  What the machine knows (state,
checkpoint, run state …) reads through it unchanged.
"""
from __future__ import annotations

from operator import attrgetter

from protocol.core.codec import Decoder
from protocol.core.dialects import Dialect
from protocol.core.events import Recv, RecvDeviceState, RecvRam, positional
from protocol.core.failover import FailoverMachine
from protocol.core.machine import (
    MIG_ACTIVE,
    MIG_COLO,
    MIG_COMPLETED,
    MIG_FAILED,
    MIG_SETUP,
    RoleMachine,
)
from protocol.core.messages import InitialStream, Message, RamChunk, RamPart, StateBlob
from protocol.core.outbox import Outbox
from protocol.core.primary import PrimaryMachine
from protocol.core.secondary import SecondaryMachine
from protocol.core.states import DONE, ERROR, SHUTDOWN, STOPPED
from protocol.core.timers import Timers
from protocol.errors import DecodeError, ProtocolError

__all__ = ["DONE", "ERROR", "MIG_ACTIVE", "MIG_COLO", "MIG_COMPLETED", "MIG_FAILED",
           "MIG_SETUP", "SHUTDOWN", "Endpoint", "make_endpoint"]

#: the received pieces' events, built from a dict of their fields (`Event._new`), or
#: for a message from the values by position (`positional`: msg, value, id, raw)
_recv_at = positional(Recv)
_new_recv_ram, _new_recv_device_state = RecvRam._new, RecvDeviceState._new

MACHINES: dict[str, type[RoleMachine]] = {"primary": PrimaryMachine,
                                          "secondary": SecondaryMachine}


def _reads(name: str, writable: bool = False) -> property:
    def put(self, value) -> None:
        setattr(self.machine, name, value)
    return property(attrgetter("machine." + name), put if writable else None,
                    doc=f"the machine's {name}")


class Endpoint:
    # what drivers, the simulator and the UIs read (and, for a few, set) on an endpoint:
    # the machine's own (in the class body, as the compiled build's extension type
    # takes no attribute set on it afterwards)
    role = _reads("role")
    dialect = _reads("dialect")
    mode = _reads("mode")
    guest = _reads("guest")
    colo_mode = _reads("colo_mode")
    migration_status = _reads("migration_status")
    last_mode = _reads("last_mode")
    initial_stream = _reads("initial_stream")
    load_ms = _reads("load_ms")
    save_ms = _reads("save_ms")
    faithful = _reads("faithful")
    understood = _reads("understood")
    expected_inputs = _reads("expected_inputs")
    pages_flushed_total = _reads("pages_flushed_total")
    loads_started = _reads("loads_started")
    load_started_n = _reads("load_started_n")
    state = _reads("state", writable=True)
    checkpoint = _reads("checkpoint", writable=True)
    in_flight = _reads("in_flight", writable=True)
    run_state = _reads("run_state", writable=True)
    colo_thread_alive = _reads("colo_thread_alive", writable=True)
    error = _reads("error", writable=True)
    close_requested = _reads("close_requested", writable=True)
    peer_closed = _reads("peer_closed", writable=True)
    exited = _reads("exited", writable=True)
    checkpoint_delay_ms = _reads("checkpoint_delay_ms", writable=True)

    def __init__(self, role: str, dialect: Dialect, *, max_blob_bytes: int | None = None,
                 progress_timeout_ms: float | None = None, **machine_kw) -> None:
        try:
            cls = MACHINES[role]
        except KeyError:
            raise ValueError(f"role must be primary or secondary, not {role!r}") from None
        self.out = Outbox(role)
        self.timers = Timers()
        self.failover = FailoverMachine()
        self.machine = mach = cls(dialect, out=self.out, timers=self.timers,
                                  failover=self.failover, **machine_kw)
        #: beyond QEMU (which waits forever, bug B13): inside the initial migration
        #: or a message, RAM part or blob, the peer must complete a unit of work
        #: (a record, a section, 64 KiB) at least this often; None: no bound
        self.progress_timeout_ms = progress_timeout_ms or None
        self._progress_seen = -1
        kw = {} if max_blob_bytes is None else {"max_blob_bytes": max_blob_bytes}
        guest = mach.guest
        self.decoder = Decoder(dialect, "secondary" if role == "primary" else "primary",
                               expect_initial=role == "secondary" and mach.initial_stream,
                               ram_ctx=getattr(guest, "ram_context", None),
                               on_initial_page=getattr(guest, "initial_page", None), **kw)
        mach.decoder = self.decoder
        mach.resume_reads = self._read_items
        self.decoder.accepts = mach.accepts
        if self.progress_timeout_ms is not None:   # each time the decoder needs more bytes
            self.decoder.on_wait = self._track_progress
        # the outputs, straight from their owners (the simulator polls them every step)
        self.segments_to_send = self.out.take_segments
        self.take_events = self.out.take_events
        self.next_deadline = self.timers.next_deadline

    # ------------------------------------------------------------------ output
    # segments_to_send(), take_events() and next_deadline() are the Outbox's and the
    # Timers' own methods, bound in __init__
    def data_to_send(self) -> bytes:
        return b"".join([s.wire() for s in self.out.take_segments()])

    # ------------------------------------------------------------------ inputs
    def start(self, now: float) -> None:
        self.out.now = now
        self.machine._dispatch_guarded("start", None)
        self._track_progress()

    def receive_data(self, data: bytes, now: float) -> None:
        self.out.now = now
        mach = self.machine
        if mach.state in STOPPED or not mach.colo_thread_alive and \
                mach.state != mach.INITIAL_STATE and mach.role == "primary":
            mach.emit("ignored", bytes=len(data), why=f"no COLO thread reads in {mach.state}")
            return
        try:
            self.decoder.feed(data)
        except ProtocolError as exc:
            mach.protocol_error(exc)
            return
        self._read_items()

    def _read_items(self) -> None:
        """Hand the machine what the decoder holds, while its COLO thread reads."""
        mach, dec = self.machine, self.decoder
        try:
            # without a progress hook, next_item is _next_item: call it directly (a
            # C call in the compiled build, unless an instance attribute wraps it)
            waits = dec.on_wait is not None
            while not mach.reads_paused():
                item = dec.next_item() if waits else dec._next_item()
                if item is None:
                    break
                self._on_item(item)
                if mach.state in STOPPED:
                    break
        except ProtocolError as exc:
            mach.protocol_error(exc)

    def _on_item(self, item) -> None:
        mach, out = self.machine, self.out
        if type(item) is Message:
            if not out.lean or item.name in out.checked_msgs:
                out.events.append(_recv_at(out.now, mach.role, item.name, item.value,
                                           item.msg_id, item.raw))
            mach._dispatch(item.name, item)
            mach.understood += 1
        elif isinstance(item, RamPart):
            if not out.lean:
                fields = item.kind_counts()        # (a dict of its own)
                fields["pages"], fields["bytes"] = item.page_count(), item.size_bytes
                out.events.append(_new_recv_ram(out.now, mach.role, fields))
            mach._dispatch("ram", item)
        elif type(item) is RamChunk:
            mach._dispatch("ram-chunk", item)
        elif isinstance(item, StateBlob):
            if not out.lean:
                out.events.append(_new_recv_device_state(out.now, mach.role,
                                                         {"bytes": len(item.data)}))
            mach._dispatch("blob", item)
        elif isinstance(item, InitialStream):
            mach.emit("recv-initial", bytes=item.size_bytes)
            mach._dispatch("initial", item)

    def receive_eof(self, now: float) -> None:
        """The peer closed its direction (FIN, RST, or our own shutdown)."""
        self.out.now = now
        mach = self.machine
        if mach.peer_closed:
            return
        mach.peer_closed = True
        mach.emit("eof")
        if mach.state in STOPPED:
            return
        try:
            self.decoder.close()
        except DecodeError as exc:
            mach.enter_error(str(exc), remote=True)
            return
        mach.on_peer_closed()

    def handle_timer(self, now: float) -> None:
        self.out.now = now
        timers, mach = self.timers, self.machine
        for name in timers.due(now):
            if timers.fire(name, now):
                if name == "progress":
                    mach._guarded(self._progress_expired)
                else:
                    mach._guarded(mach.on_timer, name)

    # ------------------------------------------------------- progress bound
    def _receiving(self) -> bool:
        """Inside something the peer must finish: the initial migration (from the
        start, before its first byte) or a message, RAM part or blob."""
        mach = self.machine
        if mach.state in STOPPED or mach.peer_closed:
            return False
        return self.decoder.in_message or self.decoder.state == "initial" \
            and mach.state != mach.INITIAL_STATE

    def _track_progress(self) -> None:
        """(Re-)arm the progress timer when the peer completed a unit, drop it when
        nothing is being received."""
        if self.progress_timeout_ms is None:
            return
        if not self._receiving():
            self.timers.cancel("progress")
            self._progress_seen = -1
            return
        done = self.decoder.progress()
        if done != self._progress_seen or "progress" not in self.timers:
            self._progress_seen = done
            self.timers.set("progress", self.out.now + self.progress_timeout_ms)

    def _progress_expired(self) -> None:
        if not self._receiving():
            return
        mach, bound = self.machine, self.progress_timeout_ms
        stage = self.decoder.stage
        if mach.in_flight:
            stage += f" (checkpoint {mach.in_flight})"
        mach.emit("progress-timeout", stage=stage, timeout_ms=bound)
        mach.enter_error(f"no progress for {bound:g} ms in {stage}: the peer completed "
                         f"no record, message or 64 KiB of it (testbed bound "
                         f"--progress-timeout-ms {bound:g}; QEMU waits forever)", remote=True)

    # ------------------------------------------------------------- operator
    def request_checkpoint(self, now: float, reason: str = "operator") -> None:
        self.out.now = now
        self.machine.request_checkpoint(reason)

    def lost_heartbeat(self, now: float) -> None:
        """x-colo-lost-heartbeat; raises QmpCommandError as QEMU would."""
        self.out.now = now
        self.machine.lost_heartbeat()

    def set_checkpoint_delay(self, delay_ms: int, now: float) -> None:
        self.out.now = now
        self.machine.set_checkpoint_delay(delay_ms)

    def guest_shutdown(self, now: float) -> None:
        self.out.now = now
        self.machine.guest_shutdown()

    # ----------------------------------------------------------------- view
    def query_colo_status(self) -> dict:
        return self.machine.query_colo_status()

    def status(self) -> dict:
        return self.machine.status()


def make_endpoint(role: str, dialect: Dialect, **kw) -> Endpoint:
    return Endpoint(role, dialect, **kw)
