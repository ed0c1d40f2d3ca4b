"""A swarm on a dask.distributed cluster (`dask scheduler`; `dask worker ADDRESS`).

The workers import this package (install it where they run); each task is a
chunk of seeds (`runner.run_chunk_by`), so the results equal a local run's.  At
most 4 chunks per worker thread are in flight.  A time budget's end reaches the
workers as a wall-clock time: their hosts' clocks keep it (as NTP keeps them).
"""
from __future__ import annotations

from protocol.errors import ColoError


class ClusterError(ColoError):
    """The Dask cluster cannot be reached or used (names the address and why)."""


#: how long the scheduler has to answer the first connection (Dask's own default, 30 s,
#: kept a closed port or a wrong host waiting that long before the error)
CONNECT_TIMEOUT_S = 5.0


def run_on_cluster(address, work, collect, budget,
                   timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Run the chunks of `work` on the cluster at `address` (a scheduler address such
    as tcp://host:8786, or a `distributed.LocalCluster`); `collect` gets each chunk's
    results as it completes."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ClusterError(f"--cluster needs dask.distributed ({exc}); "
                           "pip install 'dask[distributed]'") from None
    from protocol.sim.runner import run_chunk_by
    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    except MemoryError:
        # another service on that port (ssh, a web server): Dask read its first bytes
        # as a frame length and tried to allocate exabytes
        raise ClusterError(f"{address} does not answer as a Dask scheduler (another "
                           "service listens there? the scheduler's port is 8786 by "
                           "default; its dashboard, 8787, is not it)") from None
    with client:
        slots = max(1, sum(client.nthreads().values())) * 4
        pending = as_completed()
        inflight = 0
        exhausted = False

        def submit_more() -> None:
            nonlocal inflight, exhausted
            while not exhausted and inflight < slots and not budget.spent():
                chunk = next(work, None)
                if chunk is None:
                    exhausted = True
                    return
                pending.add(client.submit(run_chunk_by, chunk, budget.wall_deadline,
                                          pure=False))
                inflight += 1

        submit_more()
        while inflight:
            fut = next(pending)
            inflight -= 1
            try:
                collect(fut.result())
            except Exception as exc:     # a worker lost or the task failed remotely
                raise ClusterError(f"a swarm task failed on the cluster at {address}: "
                                   f"{type(exc).__name__}: {exc}") from None
            if budget.stop():            # a signal: the chunks in flight are dropped
                client.cancel(list(pending.futures))
                return
            if budget.spent():
                exhausted = True
            submit_more()
