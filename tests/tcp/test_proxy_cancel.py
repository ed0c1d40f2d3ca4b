"""A cancelled run_proxy (how a UI's live source stops it) leaves no task pending:
its loop closes without asyncio's "Task was destroyed but it is pending!"."""
import asyncio
import gc
import logging

from protocol.drivers.proxy import run_proxy
from tests.tcp._nodes import free_port


def test_a_cancelled_proxy_leaves_no_pending_task(caplog):
    loop = asyncio.new_event_loop()

    async def main():
        ready = asyncio.Event()
        task = loop.create_task(run_proxy(("127.0.0.1", free_port()), ("127.0.0.1", free_port()),
                                          [], lambda ev: None, ready=lambda _p: ready.set()))
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.05)          # it waits for a session now
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_until_complete(main())
        loop.close()                        # as a live source's thread does: no cancel-all
        gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
