"""Two live COLO processes (`colo node`, or real QEMUs) through their QMP sockets.

`LivePair` is what `--attach QMP_PRIMARY QMP_SECONDARY` (colo_tui.session.live_sources.
QmpFeed) drives: query both sides, tell one side the peer is gone, change the
checkpoint delay (which also checkpoints at once), read the QMP events.  The
REPL and the TUI reach it only as a live session, through the command registry
like every other session.
"""
from __future__ import annotations

import time

from protocol.drivers.qmpclient import QmpClient
from protocol.errors import ColoError


class LivePair:
    def __init__(self, primary: str, secondary: str, *, timeout: float = 5.0) -> None:
        self.qmp = {"primary": QmpClient(primary, timeout=timeout, name="primary")}
        try:
            self.qmp["secondary"] = QmpClient(secondary, timeout=timeout, name="secondary")
        except ColoError:
            self.qmp["primary"].close()
            raise

    def close(self) -> None:
        for c in self.qmp.values():
            c.close()

    def status(self) -> dict:
        return {side: self.side_status(side) for side in self.qmp}

    def side_status(self, side: str) -> dict:
        c = self.qmp[side]
        return {"status": c.execute("query-status"),
                "migrate": c.execute("query-migrate"),
                "colo": c.execute("query-colo-status")}

    def lost_heartbeat(self, side: str) -> None:
        self.qmp[side].execute("x-colo-lost-heartbeat")

    def set_checkpoint_delay(self, ms: int) -> None:
        self.qmp["primary"].execute("migrate-set-parameters", {"x-checkpoint-delay": ms})

    def checkpoint(self) -> int:
        params = self.qmp["primary"].execute("query-migrate-parameters") or {}
        delay = int(params.get("x-checkpoint-delay", 20000))
        self.set_checkpoint_delay(delay)
        return delay

    def events(self, wait: float) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + max(0.0, wait)
        out: list[tuple[str, dict]] = []
        while True:
            for side, c in self.qmp.items():
                out += [(side, e) for e in c.events(wait=0.05)]
            if out or time.monotonic() >= deadline:
                return out
