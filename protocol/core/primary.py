"""The primary's machine: QEMU 7.2's colo_do_checkpoint_transaction as a table.

States: INIT → WAIT_READY → IDLE → WAIT_REPLY → WAIT_RECEIVED → WAIT_LOADED →
IDLE …, plus ERROR, DONE (failed over) and SHUTDOWN.  The output is released
after the message the dialect names (``release_after``: vmstate-loaded in v11,
vmstate-received in qemu).

``save_ms`` > 0 (a dialect that ``saves_devices_after_ram``) puts SAVING between
the RAM part and vmstate-size: QEMU flushes the RAM section, then serialises the
device state into a buffer and writes vmstate-size and the blob later, in a
separate write.  With Nagle on, that gap is what lets the blob wait for a delayed
ACK (the first of the two ≈40 ms stalls per checkpoint seen on the real capture).

Beyond the table, from any running state: a protocol error enters ERROR, a failover
DONE, and a guest power-off (a dialect without a shutdown message) SHUTDOWN.
"""
from __future__ import annotations

from protocol.core.events import Action
from protocol.core.failover import NONE, REASON_ERROR, REASON_REQUEST
from protocol.core.lazyimport import module
from protocol.core.machine import MIG_COLO, RoleMachine, Transition, check_table
from protocol.core.messages import (
    CHECKPOINT_REQUEST,
    GUEST_SHUTDOWN,
    VMSTATE_LOADED,
    VMSTATE_RECEIVED,
    VMSTATE_SEND,
    VMSTATE_SIZE,
)
from protocol.core.states import STOPPED, Input, PrimaryState

INIT, WAIT_READY, IDLE = PrimaryState.INIT, PrimaryState.WAIT_READY, PrimaryState.IDLE
WAIT_REPLY, SAVING = PrimaryState.WAIT_REPLY, PrimaryState.SAVING
WAIT_RECEIVED, WAIT_LOADED = PrimaryState.WAIT_RECEIVED, PrimaryState.WAIT_LOADED
ERROR, DONE, SHUTDOWN = PrimaryState.ERROR, PrimaryState.DONE, PrimaryState.SHUTDOWN
STATES = tuple(PrimaryState)
#: a checkpoint transaction is running: a new trigger is absorbed or deferred
TRANSACTION = (WAIT_REPLY, SAVING, WAIT_RECEIVED, WAIT_LOADED)

#: faithful 7.2: the lone checkpoint-request after a failed receive (see
#: Primary._failed_receive), and its measured delay
LONE_REQUEST_TIMER = "lone-request"
LONE_REQUEST_MS = 47.0

#: (a class attribute of the enum is a lookup through its metaclass: 2k instructions)
_CHECKPOINT = str(Input.CHECKPOINT)

T = Transition
TABLE: dict[tuple[PrimaryState, Input], Transition] = {
    (INIT, Input.START): T("_on_start", WAIT_READY),
    (WAIT_READY, Input.CHECKPOINT_READY): T("_on_ready", IDLE),
    (IDLE, Input.CHECKPOINT): T("_on_trigger", WAIT_REPLY, then="_check_link"),
    (IDLE, Input.TIMER_CHECKPOINT): T("_on_checkpoint", WAIT_REPLY, then="_check_link"),
    # the reply normally leads to WAIT_RECEIVED; _on_reply returns SAVING (the device
    # state is saved later) or WAIT_REPLY (a failover raced the checkpoint: abort)
    (WAIT_REPLY, Input.CHECKPOINT_REPLY): T("_on_reply", WAIT_RECEIVED,
                                           alt=(SAVING, WAIT_REPLY)),
    (SAVING, Input.TIMER_SAVE): T("_on_saved", WAIT_RECEIVED),
    (WAIT_RECEIVED, Input.VMSTATE_RECEIVED): T("_on_received", WAIT_LOADED),
    # _on_loaded returns SHUTDOWN after the final checkpoint of a guest shutdown
    (WAIT_LOADED, Input.VMSTATE_LOADED): T("_on_loaded", IDLE, then="_resume_pacing",
                                           alt=(SHUTDOWN,)),
    # a trigger during a transaction: the running checkpoint covers it, or (once the
    # secondary holds it) a back-to-back checkpoint follows
    **{(s, Input.CHECKPOINT): T("_absorb", s) for s in (WAIT_REPLY, SAVING, WAIT_RECEIVED)},
    (WAIT_LOADED, Input.CHECKPOINT): T("_defer", WAIT_LOADED),
    **{(s, Input.TIMER_CHECKPOINT): T("_on_timer_in_transaction", s) for s in TRANSACTION},
}

#: protocol.migration.stream, imported at the first checkpoint (it brings numpy),
#: then a module global: a cached lookup, where lazyimport's call is an interpreted frame
_STREAM = None


def _stream():
    global _STREAM
    _STREAM = module("protocol.migration.stream")
    return _STREAM


class _PrimaryCore(RoleMachine):
    """The primary's handlers.  `PrimaryMachine` (below) is what everyone uses; this base
    exists so that the compiled build can make it an extension type (primary.pxd)
    while PrimaryMachine stays a Python class whose handlers a test may patch."""
    ROLE = "primary"
    INITIAL_STATE = INIT
    TABLE = TABLE

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.run_state = "running"
        self.guest.start()
        self.shutdown_requested = False
        self._trigger_pending = False
        self._trigger_reason = "timer"
        self._last_begin = 0.0
        self._blob = b"\x00"            # the device state SAVING holds back
        self._ram_ctx = None

    # -- handlers -----------------------------------------------------------
    def _on_start(self, _item) -> None:
        self.set_migration_status("active")
        self.stop_vm("migration completion stops the VM", "finish-migrate")
        if self.initial_stream:
            data = self.initial_bytes()
            self.send_payload("initial", "initial", data)
        self.set_migration_status(MIG_COLO)
        self.colo_thread_alive = True

    def initial_bytes(self) -> bytes:
        data = self.guest.initial_stream()
        self._ram_ctx = self.guest.ram_context
        return data

    def _on_ready(self, _msg) -> None:
        self.start_vm("checkpoint-ready received: COLO starts")
        self.set_timer("checkpoint", self._now + self.checkpoint_delay_ms)

    def _on_trigger(self, reason) -> PrimaryState | None:
        if reason is not None:
            self._trigger_reason = reason
        return self._on_checkpoint(None)

    def _on_checkpoint(self, _item) -> None:
        reason, self._trigger_reason = self._trigger_reason, "timer"
        self._trigger_pending = False
        # colo_checkpoint_notify re-arms the timer: start-to-start pacing
        self._last_begin = self._now
        self.set_timer("checkpoint", self._now + self.checkpoint_delay_ms)
        self.in_flight = self.checkpoint + 1
        self.checkpoint_event(self.in_flight, "begin", reason)
        self.send(CHECKPOINT_REQUEST)

    def _check_link(self) -> None:
        if self.peer_closed:
            self.enter_error("Can't receive COLO message: Input/output error "
                             "(the connection was reset)", remote=True)

    def _on_reply(self, _msg) -> PrimaryState | None:
        if self.failover.state != NONE:   # a failover raced the checkpoint start
            self.emit("abort", why="failover requested before the VM stopped")
            return WAIT_REPLY
        self.stop_vm("checkpoint {}: stop the PVM", "colo", self.in_flight)
        self.guest.replication_checkpoint()
        if self.out.detail:
            self.action("replication-checkpoint")
        self.send(VMSTATE_SEND)
        blob = self.guest.save_devices()
        if self.out.detail:
            self.action("save-devices", len(blob))
        records = self.guest.collect_dirty_pages()
        stream = _STREAM
        if stream is None:
            stream = _stream()
        ctx = self._ram_ctx
        if ctx is None:
            ctx = self.ram_context
        if self._ram_outside_blob:
            lazy = stream.ram_part_chunks(records, ctx) if self.out.stream_ram else None
            if lazy is None:
                self.send_payload("ram", "ram", stream.encode_ram_part(records, ctx),
                                  pages=len(records))
            else:
                size, chunks = lazy
                self.send_stream("ram", "ram", size, chunks, pages=len(records))
            if self.save_ms > 0:
                self._blob = blob
                self.set_timer("save", self._now + self.save_ms)
                return SAVING
        else:
            blob = stream.encode_ram_part(records, ctx) + blob   # prototype: one buffer
        self._send_blob(blob)
        return None

    def _on_saved(self, _item) -> None:
        blob, self._blob = self._blob, b"\x00"
        self._send_blob(blob)

    def _send_blob(self, blob: bytes) -> None:
        self.send(VMSTATE_SIZE, len(blob))
        self.send_payload("blob", "device-state", blob)

    @property
    def ram_context(self):
        ctx = self._ram_ctx
        if ctx is None:
            ctx = getattr(self.guest, "ram_context", None)
            if ctx is None:
                from protocol.migration.stream import RamContext
                ctx = RamContext()
            self._ram_ctx = ctx
        return ctx

    def _on_received(self, _msg) -> None:
        if self._release_after == VMSTATE_RECEIVED:
            self._release()

    def _on_loaded(self, _msg) -> PrimaryState | None:
        if self._release_after == VMSTATE_LOADED:
            self._release()
        self.checkpoint = self.in_flight
        self.in_flight = 0
        self.checkpoint_event(self.checkpoint, "commit")
        if self.shutdown_requested and self.dialect.has_shutdown_message:
            self.send(GUEST_SHUTDOWN)
            self.stop_vm("guest shutdown after the final checkpoint", "shutdown")
            self.cancel_timer("checkpoint")
            self.colo_thread_alive = False
            self.close_requested = True
            return SHUTDOWN
        self.start_vm("checkpoint {} loaded: resume the PVM", self.checkpoint)
        return None

    def _resume_pacing(self) -> None:
        if "checkpoint" not in self.timers:     # it fired during the transaction
            self.set_timer("checkpoint", max(self._now, self._last_begin +
                                             self.checkpoint_delay_ms))
        if self._trigger_pending:
            self._dispatch(_CHECKPOINT, None)

    def _absorb(self, _reason) -> None:
        self.emit("absorbed", why="the running checkpoint covers it")

    def _defer(self, reason) -> None:
        self._trigger_pending = True
        if reason is not None:
            self._trigger_reason = reason

    def _on_timer_in_transaction(self, _item) -> None:
        # colo_checkpoint_notify from the timer during a transaction: absorbed, or a
        # back-to-back checkpoint; the timer is re-armed when that one begins
        # (re-arming here at now + delay would spin with a delay of 0)
        self.request_checkpoint("timer")

    def _release(self) -> None:
        n = self.guest.release_output()
        self.action("release-output", nbytes=None, pages=None, packets=n)

    # -- operator ------------------------------------------------------------
    def request_checkpoint(self, reason: str = "operator") -> None:
        RoleMachine.request_checkpoint(self, reason)     # (super(): an object a call)
        if self.accepts(_CHECKPOINT):
            self._dispatch_guarded(_CHECKPOINT, reason)
        else:
            self.emit("ignored", why=f"no checkpoint in state {self.state}")

    def set_checkpoint_delay(self, delay_ms: int) -> None:
        super().set_checkpoint_delay(delay_ms)
        if self.dialect.checkpoints_on_delay_change and self.migration_status == MIG_COLO \
                and self.state not in STOPPED:
            # migrate_params_apply → colo_checkpoint_notify: checkpoint now, re-arm
            self.request_checkpoint("x-checkpoint-delay changed")

    def guest_shutdown(self) -> None:
        super().guest_shutdown()
        if self.dialect.has_shutdown_message and self.state not in STOPPED:
            self.shutdown_requested = True
            self.request_checkpoint("guest shutdown: final checkpoint")
            return
        # no message: the PVM powers off and the process quits
        self.stop_vm("guest powered off", "shutdown")
        self.cancel_timer("checkpoint")
        self.cancel_timer("save")
        self.colo_thread_alive = False
        self.goto(SHUTDOWN)
        self.close_requested = True

    def on_peer_closed(self) -> None:
        if self.state == IDLE:
            self.emit("unnoticed", why="the primary reads nothing between checkpoints")
            return
        if self.faithful and self.state in (WAIT_RECEIVED, WAIT_LOADED):
            self._failed_receive()
            return
        super().on_peer_closed()

    def _failed_receive(self) -> None:
        """Faithful 7.2: a failed receive after the blob went out is logged, but the
        checkpoint loop carries on, sends one more lone checkpoint-request and only
        then fails.

        Why (qemu/qemu migration/colo.c as of 8ef53cdb, the 7.2 code path,
        colo_do_checkpoint_transaction): `ret`
        starts at -1, but after the blob is written it is overwritten by
        ``ret = qemu_file_get_error(s->to_dst_file)`` (0: the write succeeded). The
        later ``colo_receive_check_message(..., COLO_MESSAGE_VMSTATE_RECEIVED /
        _LOADED, &local_err)`` fails and jumps to ``out:``, which only does
        ``error_report_err(local_err)`` ("Can't receive COLO message") and returns
        that 0 (and skips vm_start). colo_process_checkpoint breaks its loop only on
        ``ret < 0``, so it waits on colo_checkpoint_sem for the next trigger (the
        delay timer or a colo-compare notify), sends COLO_MESSAGE_CHECKPOINT_REQUEST, fails
        to read the reply (ret still -1 this time) and leaves with the second
        "Can't receive COLO message". Measured gap on the 7.2 captures: ~47 ms.
        """
        self.emit("error-report", message="Can't receive COLO message: "
                  "Input/output error (the vmstate reply never came)")
        self.cancel_timer("checkpoint")
        self.set_timer(LONE_REQUEST_TIMER, self._now + LONE_REQUEST_MS)

    def on_timer(self, name: str) -> None:
        if name == LONE_REQUEST_TIMER:
            if self.state in STOPPED:
                return
            self.in_flight = self.checkpoint + 1
            self.send(CHECKPOINT_REQUEST)
            self.enter_error("Can't receive COLO message: Input/output error "
                             "(after the lone checkpoint-request)", remote=True)
            return
        RoleMachine.on_timer(self, name)

    def do_failover(self) -> None:
        # primary_vm_do_failover; faithful: COLO_EXIT says "error" (a race in 7.2)
        reason = REASON_ERROR if self.faithful else REASON_REQUEST
        self.cancel_timer("save")
        self._blob = b"\x00"
        self.ev(Action, name="take-over", why="the secondary is gone")
        self.guest.take_over()
        self.finish_failover(reason)


@check_table
class PrimaryMachine(_PrimaryCore):
    """The primary role machine (its handlers: `_PrimaryCore`)."""
