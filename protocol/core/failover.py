"""The failover state machine (QEMU's migration/colo-failover.c).

States as QEMU 7.2 names them — none, require, active, completed, relaunch —
with the v11 names (none, request, handling, completed, relaunch) available
through the dialect.  Every transition is a compare-and-set, as in QEMU; a
failed CAS is reported, never silently ignored.
"""
from __future__ import annotations

from protocol.errors import LocalProtocolError

NONE, REQUIRE, ACTIVE, COMPLETED, RELAUNCH = "none", "require", "active", "completed", "relaunch"
STATES = (NONE, REQUIRE, ACTIVE, COMPLETED, RELAUNCH)

#: The transitions QEMU makes (every one is a CAS from the left state).
TRANSITIONS = {
    (NONE, REQUIRE): "failover_request_active: the operator (x-colo-lost-heartbeat) asks",
    (REQUIRE, ACTIVE): "the failover bottom half starts",
    (ACTIVE, COMPLETED): "the failover finished",
    (ACTIVE, RELAUNCH): "the secondary was loading a checkpoint: defer",
    (RELAUNCH, NONE): "the load finished: restart the failover",
}

# COLOMode / COLOExitReason (qapi/migration.json)
MODE_NONE, MODE_PRIMARY, MODE_SECONDARY = "none", "primary", "secondary"
REASON_NONE, REASON_REQUEST, REASON_ERROR, REASON_PROCESSING = (
    "none", "request", "error", "processing")


class FailoverMachine:
    def __init__(self) -> None:
        self.state = NONE
        self.history: list[tuple[str, str]] = []

    def cas(self, old: str, new: str) -> bool:
        """Compare-and-set; returns whether it happened."""
        if (old, new) not in TRANSITIONS:
            raise LocalProtocolError(f"failover transition {old} -> {new} does not exist",
                                     state=self.state)
        if self.state != old:
            return False
        self.state = new
        self.history.append((old, new))
        return True

    def must(self, old: str, new: str) -> None:
        if not self.cas(old, new):
            raise LocalProtocolError(
                f"failover state is {self.state}, expected {old} (for {old} -> {new})",
                state=self.state)
