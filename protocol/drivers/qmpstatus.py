"""The run state and STOP/RESUME events a `colo node`'s QMP shows, as QEMU 7.2's.

The endpoint's own run state is the model's: in periodic mode its secondary keeps
the SVM paused between checkpoints (``paused``), and a failover of a paused SVM
needs no stop.  QEMU 7.2 does neither (migration/colo.c, 7.2.22):

* the COLO incoming thread ``vm_start()``s the SVM before it sends
  checkpoint-ready, and ``colo_incoming_process_checkpoint`` does
  ``vm_stop_force_state(RUN_STATE_COLO)`` at each checkpoint-request and
  ``vm_start()`` after the load: the secondary emits STOP/RESUME per checkpoint
  and ``query-status`` says ``running`` between checkpoints, ``colo`` during one;
* ``colo_do_failover`` stops a running VM (``vm_stop_force_state``) before either
  side's failover: STOP, then COLO_EXIT, then RESUME when the survivor restarts.
  A COLO error alone (the peer died) stops nothing: COLO_EXIT, the VM runs on.

Seen in the real 7.2 captures (``run1``): primary STOP/RESUME around the initial
migration's completion and every checkpoint; secondary RESUME after the initial
load, STOP/RESUME per checkpoint, ``STOP``, ``COLO_EXIT`` {secondary, request},
``RESUME`` on x-colo-lost-heartbeat; ``query-status`` ``running`` on both sides
throughout COLO.  This view maps the endpoint's events onto that; the endpoint,
its recording and the simulator keep the model's states.
"""
from __future__ import annotations

from protocol.core import failover as fo
from protocol.core.events import EventKind as K

RUNNING = "running"


class QemuRunView:
    """Tracks the status QEMU 7.2 would report; `feed` returns the QMP events
    (names, in order) an endpoint event stands for."""

    def __init__(self, role: str, run_state: str, dialect=None) -> None:
        self.role = role
        self.dialect = dialect
        self.status = self.shown(run_state)

    def shown(self, run: str) -> str:
        """QEMU's status for the endpoint's run state `run`."""
        if self.role == "secondary" and run == "paused":
            return RUNNING          # 7.2's SVM runs between checkpoints, in any mode
        return run

    def _active(self, name) -> bool:
        names = {fo.ACTIVE}
        if self.dialect is not None:
            names.add(self.dialect.failover_name(fo.ACTIVE))
        return name in names

    def feed(self, ev) -> list[str]:
        kind = ev.kind
        if kind is K.VM:
            new = self.shown(ev.run)
            old, self.status = self.status, new
            if new == old:
                return []
            if new == RUNNING:
                return ["RESUME"]
            return ["STOP"] if old == RUNNING else []
        if kind is K.FAILOVER and self._active(getattr(ev, "to", None)):
            # colo_do_failover: "Make sure VM stopped while failover happened"
            if self.status == RUNNING:
                self.status = "colo"
                return ["STOP"]
        return []
