"""The lab's kill is said before the exit it causes, and the exit once. The kill
waits for the process in a thread; the feed's poller, running meanwhile, saw the
exit first, so the log read 'exited' then 'killed' (and, when the kill's wait
returned first, no exit at all)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from colo_tui.lab import LabError
from colo_tui.lab.feed import LabFeed, LabSettings
from protocol.sim.config import SimConfig


class _Proc:
    """A QEMU process: SIGKILL ends it at once; wait() takes a while to return."""

    def __init__(self) -> None:
        self.returncode = None
        self.pid = -1

    def poll(self):
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout=None):
        import time
        time.sleep(0.2)
        return self.returncode


def _feed() -> LabFeed:
    feed = LabFeed(SimConfig(dialect="qemu", mode="hybrid"), LabSettings())
    feed.pair = SimpleNamespace(primary=SimpleNamespace(proc=_Proc()), secondary=None)
    return feed


def _process_events(feed) -> list:
    out = []
    while not feed.q.empty():
        item = feed.q.get_nowait()
        for ev in getattr(item, "events", None) or [item]:
            if getattr(ev, "kind", None) == "process":
                out.append((ev.side, ev.what))
    return out


@pytest.mark.parametrize("poller_first", [True, False])
def test_a_kill_is_said_before_the_exit_it_causes(poller_first):
    feed = _feed()

    async def go():
        async def poll_meanwhile():
            await asyncio.sleep(0.05 if poller_first else 0.5)
            await feed._poll()
        await asyncio.gather(feed._command("kill", ["primary"]), poll_meanwhile())
    asyncio.run(go())
    assert _process_events(feed) == [("primary", "killed"), ("primary", "exit")]


def test_killing_a_dead_qemu_is_refused_and_says_no_kill():
    feed = _feed()
    feed.pair.primary.proc.returncode = 1
    with pytest.raises(LabError, match="not running"):
        asyncio.run(feed._command("kill", ["primary"]))
    assert ("primary", "killed") not in _process_events(feed)
