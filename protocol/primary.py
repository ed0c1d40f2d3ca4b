"""The primary's machine: QEMU 7.2's colo_do_checkpoint_transaction as a table.

States: INIT → WAIT_READY → IDLE → WAIT_REPLY → WAIT_RECEIVED → WAIT_LOADED →
IDLE …, plus ERROR, DONE (failed over) and SHUTDOWN.  In the v11 dialect the
output is released after vmstate-loaded, in qemu after vmstate-received.

``save_ms`` > 0 (qemu dialect) puts SAVING between the RAM part and
vmstate-size: QEMU flushes the RAM section, then serialises the device state
into a buffer and writes vmstate-size and the blob later, in a separate
write.  With Nagle on, that gap is what lets the blob wait for a delayed ACK
(the first of the two ≈40 ms stalls per checkpoint seen on the real capture).
"""
from __future__ import annotations

from . import failover as fo
from . import messages as m
from .endpoint import DONE, ERROR, MIG_COLO, SHUTDOWN, Endpoint

INIT, WAIT_READY, IDLE = "INIT", "WAIT_READY", "IDLE"
WAIT_REPLY, WAIT_RECEIVED, WAIT_LOADED = "WAIT_REPLY", "WAIT_RECEIVED", "WAIT_LOADED"
SAVING = "SAVING"
STATES = (INIT, WAIT_READY, IDLE, WAIT_REPLY, SAVING, WAIT_RECEIVED, WAIT_LOADED, ERROR, DONE,
          SHUTDOWN)


class PrimaryEndpoint(Endpoint):
    role = "primary"
    INITIAL_STATE = INIT
    TABLE = {
        (INIT, "start"): "_on_start",
        (WAIT_READY, m.CHECKPOINT_READY): "_on_ready",
        (IDLE, "checkpoint"): "_on_checkpoint",
        (IDLE, "timer:checkpoint"): "_on_checkpoint",
        (WAIT_REPLY, m.CHECKPOINT_REPLY): "_on_reply",
        (SAVING, "timer:save"): "_on_saved",
        (WAIT_RECEIVED, m.VMSTATE_RECEIVED): "_on_received",
        (WAIT_LOADED, m.VMSTATE_LOADED): "_on_loaded",
    }

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.run_state = "running"
        self.guest.start()
        self.shutdown_requested = False
        self._trigger_pending = False
        self._trigger_reason = "timer"
        self._last_begin = 0.0
        self._blob = b"\x00"            # the device state SAVING holds back

    # -- handlers -----------------------------------------------------------
    def _on_start(self, _item) -> None:
        self.set_migration_status("active")
        self.stop_vm("migration completion stops the VM", "finish-migrate")
        if self.initial_stream:
            data = self.initial_bytes()
            self.send_payload("initial", "initial", data)
        self.set_migration_status(MIG_COLO)
        self.colo_thread_alive = True
        self.goto(WAIT_READY)

    def initial_bytes(self) -> bytes:
        data = self.guest.initial_stream()
        self._ram_ctx = self.guest.ram_context
        return data

    def _on_ready(self, _msg) -> None:
        self.start_vm("checkpoint-ready received: COLO starts")
        self.goto(IDLE)
        self.set_timer("checkpoint", self._now + self.checkpoint_delay_ms)

    def _on_checkpoint(self, _item) -> None:
        reason, self._trigger_reason = self._trigger_reason, "timer"
        self._trigger_pending = False
        # colo_checkpoint_notify re-arms the timer: start-to-start pacing
        self._last_begin = self._now
        self.set_timer("checkpoint", self._now + self.checkpoint_delay_ms)
        self.in_flight = self.checkpoint + 1
        self.emit("checkpoint", n=self.in_flight, phase="begin", reason=reason)
        self.send(m.CHECKPOINT_REQUEST)
        self.goto(WAIT_REPLY)
        if self.peer_closed:
            self.enter_error("Can't receive COLO message: Input/output error "
                             "(the connection was reset)", remote=True)

    def _on_reply(self, _msg) -> None:
        if self.failover.state != fo.NONE:   # a failover raced the checkpoint start
            self.emit("abort", why="failover requested before the VM stopped")
            return
        self.stop_vm(f"checkpoint {self.in_flight}: stop the PVM")
        self.guest.replication_checkpoint()
        self.emit("action", name="replication-checkpoint")
        self.send(m.VMSTATE_SEND)
        blob = self.guest.save_devices()
        self.emit("action", name="save-devices", bytes=len(blob))
        records = self.guest.collect_dirty_pages()
        from .stream import encode_ram_part
        ram = encode_ram_part(records, self.ram_context)
        if self.dialect.ram_outside_blob:
            self.send_payload("ram", "ram", ram, pages=len(records))
            if self.save_ms > 0:
                self._blob = blob
                self.goto(SAVING)
                self.set_timer("save", self._now + self.save_ms)
                return
        else:
            blob = ram + blob      # prototype: the whole state is buffered
        self._send_blob(blob)

    def _on_saved(self, _item) -> None:
        blob, self._blob = self._blob, b"\x00"
        self._send_blob(blob)

    def _send_blob(self, blob: bytes) -> None:
        self.send(m.VMSTATE_SIZE, len(blob))
        self.send_payload("blob", "device-state", blob)
        self.goto(WAIT_RECEIVED)

    @property
    def ram_context(self):
        ctx = getattr(self, "_ram_ctx", None)
        if ctx is None:
            ctx = getattr(self.guest, "ram_context", None)
            if ctx is None:
                from .stream import RamContext
                ctx = RamContext()
            self._ram_ctx = ctx
        return ctx

    def _on_received(self, _msg) -> None:
        if self.dialect.release_after == m.VMSTATE_RECEIVED:
            self._release()
        self.goto(WAIT_LOADED)

    def _on_loaded(self, _msg) -> None:
        if self.dialect.release_after == m.VMSTATE_LOADED:
            self._release()
        self.checkpoint = self.in_flight
        self.in_flight = 0
        self.emit("checkpoint", n=self.checkpoint, phase="commit")
        if self.shutdown_requested and self.dialect.name == "v11":
            self.send(m.GUEST_SHUTDOWN)
            self.stop_vm("guest shutdown after the final checkpoint", "shutdown")
            self.cancel_timer("checkpoint")
            self.colo_thread_alive = False
            self.goto(SHUTDOWN)
            self.close_requested = True
            return
        self.start_vm(f"checkpoint {self.checkpoint} loaded: resume the PVM")
        self.goto(IDLE)
        if "checkpoint" not in self._timers:     # it fired during the transaction
            self.set_timer("checkpoint", max(self._now, self._last_begin +
                                             self.checkpoint_delay_ms))
        if self._trigger_pending:
            self._dispatch("checkpoint")

    def on_timer(self, name: str) -> None:
        if name == "checkpoint" and self.state != IDLE:
            if self.state in (WAIT_REPLY, SAVING, WAIT_RECEIVED, WAIT_LOADED):
                # colo_checkpoint_notify from the timer during a transaction: absorbed, or
                # a back-to-back checkpoint; the timer is re-armed when that one begins
                # (re-arming here at now + delay would spin with a delay of 0)
                self.request_checkpoint(self._now, "timer")
            return
        super().on_timer(name)

    def _release(self) -> None:
        n = self.guest.release_output()
        self.emit("action", name="release-output", packets=n)

    # -- operator ------------------------------------------------------------
    def request_checkpoint(self, now: float, reason: str = "operator") -> None:
        super().request_checkpoint(now, reason)
        if self.state == IDLE:
            self._trigger_reason = reason
            self._guarded(self._dispatch, "checkpoint")
        elif self.state in (WAIT_REPLY, SAVING, WAIT_RECEIVED):
            self.emit("absorbed", why="the running checkpoint covers it")
        elif self.state == WAIT_LOADED:
            self._trigger_pending = True
            self._trigger_reason = reason
        else:
            self.emit("ignored", why=f"no checkpoint in state {self.state}")

    def set_checkpoint_delay(self, delay_ms: int, now: float) -> None:
        super().set_checkpoint_delay(delay_ms, now)
        if self.dialect.name != "v11" and self.migration_status == MIG_COLO \
                and self.state not in (ERROR, DONE, SHUTDOWN):
            # migrate_params_apply → colo_checkpoint_notify: checkpoint now, re-arm
            self.request_checkpoint(now, "x-checkpoint-delay changed")

    def guest_shutdown(self, now: float) -> None:
        super().guest_shutdown(now)
        if self.dialect.name == "v11" and self.state not in (ERROR, DONE, SHUTDOWN):
            self.shutdown_requested = True
            self.request_checkpoint(now, "guest shutdown: final checkpoint")
            return
        # qemu: no message; the PVM powers off and the process quits
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
        super().on_peer_closed()

    def do_failover(self) -> None:
        # primary_vm_do_failover; faithful: COLO_EXIT says "error" (a race in 7.2)
        reason = fo.REASON_ERROR if self.faithful else fo.REASON_REQUEST
        self.cancel_timer("save")
        self._blob = b"\x00"
        self.emit("action", name="take-over", why="the secondary is gone")
        self.guest.take_over()
        self.finish_failover(reason)
