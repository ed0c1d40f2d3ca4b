"""A live source for tests of long live sessions: it publishes the events of
`checkpoints` COLO checkpoints (12 events each, as colo lab's proxy shows one) as fast
as the session takes them in, then ends.  Paced by the queue (it stays at most
`AHEAD` items ahead of the view), so the memory it measures is the session's; with
``paced=False`` it runs on as live peers do, whatever the view does (a paused display),
and ``queue_items`` bounds its queue; with ``go`` it waits (bounded) for that event
before its first checkpoint."""
from __future__ import annotations

import queue
import threading
import time

from colo_tui.session.live import _Source
from protocol.core.events import make
from protocol.core.session import SideStatus
from protocol.sim.config import SimConfig

EVENTS_PER_CHECKPOINT = 12
AHEAD = 2000                # items queued at most before the source waits for the view
MAX_RUN_S = 120.0           # bounded: a forgotten stream stops producing


def checkpoint_events(n: int, t: float) -> list:
    return [make(t, "primary", "checkpoint", n=n, phase="begin"),
            make(t, "primary", "send", msg="checkpoint-request", value=0, dir="P>S", n=n),
            make(t, "secondary", "send", msg="checkpoint-reply", value=0, dir="S>P", n=n),
            make(t, "primary", "vm", run="stopped", qmp="STOP"),
            make(t, "primary", "send", msg="vmstate-send", value=0, dir="P>S", n=n),
            make(t, "primary", "ram", n=n, pages=12, bytes=49152),
            make(t, "primary", "device-state", n=n, bytes=104959),
            make(t, "primary", "send", msg="vmstate-size", value=104959, dir="P>S", n=n),
            make(t, "secondary", "send", msg="vmstate-received", value=0, dir="S>P", n=n),
            make(t, "secondary", "send", msg="vmstate-loaded", value=0, dir="S>P", n=n),
            make(t, "primary", "checkpoint", n=n, phase="commit"),
            make(t, "primary", "vm", run="running", qmp="RESUME")]


class Stream(_Source):
    name = "stream"
    takes_inputs = False

    def __init__(self, checkpoints: int, config: SimConfig | None = None, *,
                 paced: bool = True, queue_items: int | None = None,
                 go: threading.Event | None = None) -> None:
        super().__init__(config or SimConfig())
        if queue_items is not None:
            self.queue_items = queue_items
            self.q = queue.Queue(maxsize=queue_items)
        self.checkpoints, self.paced, self.go = checkpoints, paced, go
        self._sides = tuple(SideStatus(role=s, state="COLO", run_state="running",
                                       migration="colo", colo_mode=s)
                            for s in ("primary", "secondary"))

    def sides(self):
        return self._sides

    def command(self, what: str, *args) -> None:
        from protocol.core.session import SessionError
        raise SessionError("a test stream takes no inputs")

    def run(self) -> None:
        self.ready.set()
        deadline = time.monotonic() + MAX_RUN_S
        if self.go is not None:
            while not self.go.wait(0.01):
                if self.done.is_set() or time.monotonic() > deadline:
                    return
        for n in range(1, self.checkpoints + 1):
            while self.paced and self.q.qsize() > AHEAD:
                if self.done.wait(0.001) or time.monotonic() > deadline:
                    return
            if self.done.is_set():
                return
            self.publish(checkpoint_events(n, n * 100.0))


def step_until(c, events: int, timeout_s: float = 60.0) -> None:
    """Step the controller until `events` events have come into view (bounded)."""
    deadline = time.monotonic() + timeout_s
    while len(c.events) < events:
        assert time.monotonic() < deadline and not c.finished, \
            f"only {len(c.events)} events came"
        c.step(min(5000, events - len(c.events)), wait_s=0.5)
