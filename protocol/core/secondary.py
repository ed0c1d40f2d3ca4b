"""The secondary's machine: colo_wait_handle_message / colo_incoming_process_checkpoint.

States: INIT → WAIT_INITIAL → IDLE → WAIT_SEND → RECV_RAM → WAIT_SIZE →
RECV_BLOB → LOADING → IDLE …, plus ERROR, DONE and SHUTDOWN.  PVM pages go only
into the RAM cache; the cache is flushed once the whole checkpoint is in.  A
failover that arrives while LOADING is deferred (relaunch) until the load ends.

Beyond the table, from any running state: a protocol error enters ERROR, a failover
DONE, and the v11 default failover SHUTDOWN (the secondary exits).
"""
from __future__ import annotations

from protocol.core.events import Action
from protocol.core.failover import ACTIVE, NONE, REASON_REQUEST, RELAUNCH
from protocol.core.lazyimport import module
from protocol.core.machine import MIG_COLO, RoleMachine, Transition, check_table
from protocol.core.messages import (
    CHECKPOINT_READY,
    CHECKPOINT_REPLY,
    VMSTATE_LOADED,
    VMSTATE_RECEIVED,
    InitialStream,
    Message,
    RamChunk,
    RamPart,
    StateBlob,
)
from protocol.core.states import STOPPED, Input, SecondaryState
from protocol.errors import RemoteProtocolError

INIT, WAIT_INITIAL = SecondaryState.INIT, SecondaryState.WAIT_INITIAL
IDLE, WAIT_SEND = SecondaryState.IDLE, SecondaryState.WAIT_SEND
RECV_RAM, WAIT_SIZE = SecondaryState.RECV_RAM, SecondaryState.WAIT_SIZE
RECV_BLOB, LOADING = SecondaryState.RECV_BLOB, SecondaryState.LOADING
ERROR, DONE, SHUTDOWN = SecondaryState.ERROR, SecondaryState.DONE, SecondaryState.SHUTDOWN
STATES = tuple(SecondaryState)

#: a plain string (an enum member looks up slower: its class attribute, then its hash)
_TIMER_LOAD = str(Input.TIMER_LOAD)
T = Transition
TABLE: dict[tuple[SecondaryState, Input], Transition] = {
    # _on_start returns IDLE when no initial migration precedes COLO
    (INIT, Input.START): T("_on_start", WAIT_INITIAL, alt=(IDLE,)),
    (WAIT_INITIAL, Input.INITIAL): T("_on_initial", IDLE),
    (IDLE, Input.CHECKPOINT_REQUEST): T("_on_request", WAIT_SEND),
    (IDLE, Input.GUEST_SHUTDOWN): T("_on_guest_shutdown", SHUTDOWN),
    # _on_send returns WAIT_SIZE when the RAM travels inside the blob (prototype)
    (WAIT_SEND, Input.VMSTATE_SEND): T("_on_send", RECV_RAM, alt=(WAIT_SIZE,)),
    (RECV_RAM, Input.RAM_CHUNK): T("_on_ram_chunk", RECV_RAM),
    (RECV_RAM, Input.RAM): T("_on_ram", WAIT_SIZE),
    (WAIT_SIZE, Input.VMSTATE_SIZE): T("_on_size", RECV_BLOB),
    (RECV_BLOB, Input.BLOB): T("_on_blob", LOADING, then="_begin_load"),
    (LOADING, Input.TIMER_LOAD): T("_on_load_done", IDLE, then="_after_load"),
}


class _SecondaryCore(RoleMachine):
    """The secondary's handlers.  `SecondaryMachine` (below) is what everyone uses; this base
    exists so that the compiled build can make it an extension type (secondary.pxd)
    while SecondaryMachine stays a Python class whose handlers a test may patch."""
    ROLE = "secondary"
    INITIAL_STATE = INIT
    TABLE = TABLE

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.run_state = "inmigrate"
        self.vmstate_loading = False
        self.pages_flushed_total = 0
        self._eof_pending = False
        self._blob = b""
        self._pctx = None

    # -- handlers -----------------------------------------------------------
    def _on_start(self, _item) -> SecondaryState | None:
        self.set_migration_status("active")
        if self.initial_stream:
            return None
        self._enter_colo()
        return IDLE

    def _on_initial(self, item: InitialStream) -> None:
        load = getattr(self.guest, "load_initial", None)
        if load is not None:
            try:
                load(item.summary)
            except ValueError as exc:   # the stream does not describe a RAM we can hold
                raise RemoteProtocolError(f"initial migration: {exc}",
                                          state=self.state) from None
        report = getattr(self.guest, "initial_report", None)
        self.ev(Action, name="load-initial", bytes=item.size_bytes,
                  **(report() if report else {}))
        self._enter_colo()

    def _enter_colo(self) -> None:
        self.set_migration_status(MIG_COLO)
        self.colo_thread_alive = True
        self.detail(Action, name="start-dirty-log")
        if self.mode == "hybrid":
            self.start_vm("COLO incoming thread starts the SVM")
        else:
            self.stop_vm("periodic mode: the SVM waits for checkpoints", "paused")
        self.send(CHECKPOINT_READY)

    def _on_request(self, msg: Message) -> None:
        if self.dialect.checks_request_value and msg.value != 0:
            raise RemoteProtocolError(
                f"Got unexpected value {msg.value} for '{msg.name}' command",
                state=self.state, offending=msg.value)
        self.in_flight = self.checkpoint + 1
        self.checkpoint_event(self.in_flight, "begin")
        if self.run_state == "running":
            self.stop_vm("checkpoint {}: stop the SVM", "colo", self.in_flight)
        else:
            self.set_run_state("colo", "checkpoint {}", self.in_flight)
        self.send(CHECKPOINT_REPLY)

    def _on_send(self, _msg) -> SecondaryState | None:
        return None if self._ram_outside_blob else WAIT_SIZE

    def _cache(self, records) -> None:
        if not records:
            return
        batch = module("protocol.migration.pages").PageBatch
        try:
            self.guest.cache_pages(records if isinstance(records, batch) else list(records))
        except ValueError as exc:      # a page outside the guest's RAM: the peer's fault
            raise RemoteProtocolError(f"Load VM's live state (ram) error: {exc}",
                                      state=self.state) from None

    def _on_ram_chunk(self, chunk: RamChunk) -> None:
        # QEMU writes each page into the RAM cache as it reads it (ram_load_precopy)
        self._cache(chunk.records)

    def _on_ram(self, part: RamPart) -> None:
        if part.pages != 0:         # (0: an empty part, the null guest's every checkpoint)
            self._cache(part.records)
        if self.out.detail:
            self.action("cache-pages", nbytes=None, pages=part.page_count())

    def _on_size(self, msg: Message) -> None:
        self.action("expect-blob", msg.value)

    def _on_blob(self, blob: StateBlob) -> None:
        data = blob.data
        if not self._ram_outside_blob:
            data = self._split_prototype_blob(data)
        self._blob = data
        self.send(VMSTATE_RECEIVED)
        self.vmstate_loading = True

    def _begin_load(self) -> None:
        self.loads_started += 1                 # the load-started signal (a control output)
        self.load_started_n = self.in_flight
        self.load_event("begin", self.in_flight)
        if self.load_ms > 0:
            self.set_timer("load", self._now + self.load_ms)
        else:
            self._dispatch(_TIMER_LOAD, None)

    def _split_prototype_blob(self, data: bytes) -> bytes:
        from protocol.migration.pages import PageBatch
        from protocol.migration.stream import RamPartReader, StreamError
        # an immutable blob may be borrowed: page data stay views into it (no copy)
        ctx = self.decoder.ram_context if self.decoder is not None else None
        reader = RamPartReader(ctx or self._proto_ctx(), borrow=isinstance(data, bytes))
        try:
            used = reader.feed(data)
        except StreamError as exc:
            raise RemoteProtocolError(f"malformed state blob: {exc}", state=self.state) from None
        if not reader.done:
            raise RemoteProtocolError("state blob ends inside its RAM part", state=self.state)
        records = reader.records
        self.guest.cache_pages(records if isinstance(records, PageBatch) else list(records))
        self.detail(Action, name="cache-pages", pages=len(records))
        return data[used:]

    def _proto_ctx(self):
        from protocol.migration.stream import RamContext
        if self._pctx is None:
            self._pctx = RamContext()
        return self._pctx

    def _on_load_done(self, _item) -> None:
        flushed = self.guest.flush_cache()
        self.pages_flushed_total += flushed
        report = getattr(self.guest, "flush_report", None)
        if report is None:
            self.action("flush-cache", nbytes=None, pages=flushed)
        else:
            self.ev(Action, name="flush-cache", pages=flushed, **report())
        try:
            self.guest.load_devices(self._blob)
        except ValueError as exc:
            self.vmstate_loading = False
            raise RemoteProtocolError(f"Load VM's live state (ram) error: {exc}",
                                      state=self.state) from None
        self.action("load-devices", len(self._blob))
        self.guest.replication_checkpoint()
        if self.out.detail:
            self.action("replication-checkpoint")
        self._blob = b""
        self.vmstate_loading = False
        self.load_event("end", self.in_flight)
        if self.mode == "hybrid":
            self.start_vm("checkpoint {} loaded: resume the SVM", self.in_flight)
        else:
            self.set_run_state("paused", "checkpoint {} loaded", self.in_flight)
        if self.failover.state == RELAUNCH:      # the primary never hears of it
            self.checkpoint, self.in_flight = self.in_flight, 0
            self.checkpoint_event(self.checkpoint, "commit", reason=None, loaded_sent=False)
            return
        self.send(VMSTATE_LOADED)
        self.checkpoint, self.in_flight = self.in_flight, 0
        self.checkpoint_event(self.checkpoint, "commit")

    def reads_paused(self) -> bool:
        # colo_incoming_process_checkpoint loads with vmstate_loading set: the
        # incoming thread reads the channel again only once the load is done
        return self.state == LOADING

    def _after_load(self) -> None:
        if self.failover.state == RELAUNCH:      # the deferred failover runs now
            self.fail_cas(RELAUNCH, NONE)
            self._request_failover(operator=False)
            return
        if self.resume_reads is not None:           # what arrived while it loaded
            self.resume_reads()
        if self._eof_pending and self.state not in STOPPED:
            self._eof_pending = False
            super().on_peer_closed()

    def _on_guest_shutdown(self, _msg) -> None:
        self.stop_vm("guest-shutdown from the primary", "shutdown")
        self.colo_thread_alive = False

    def on_peer_closed(self) -> None:
        if self.state == LOADING:
            # the incoming thread is busy loading; it sees EOF at its next read
            self.emit("unnoticed", why="the secondary is loading; it reads nothing now")
            self._eof_pending = True
            return
        super().on_peer_closed()

    # -- failover -----------------------------------------------------------
    def do_failover(self) -> None:
        if self.vmstate_loading:
            self.fail_cas(ACTIVE, RELAUNCH)
            self.emit("deferred", why="failover arrived while loading a checkpoint: relaunch")
            return
        if self.in_flight:
            self.ev(Action, name="discard-cache", why="partial checkpoint "
                      f"{self.in_flight} lives only in the RAM cache")
            self.in_flight = 0
        self.guest.discard_cache()
        self.guest.take_over()
        self.ev(Action, name="take-over", why="replication_stop_all commits the disk")
        self.cancel_timer("load")
        self.finish_failover(REASON_REQUEST)


@check_table
class SecondaryMachine(_SecondaryCore):
    """The secondary role machine (its handlers: `_SecondaryCore`)."""
