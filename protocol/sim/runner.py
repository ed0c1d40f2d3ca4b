"""Running a swarm: in this process, on local worker processes, or on a Dask cluster.

Seeds go out in chunks; every seed's result depends on the seed alone, and
`swarm.summarize` sorts by seed, so the report is the same for 1 worker, K
workers or a cluster.  A time budget stops handing out chunks once spent, and
a chunk in flight then runs no further seed (`run_chunk_by`): only the seeds
running at that moment finish, so a run ends about one seed's run time after its
budget (a local pool's start-up, about a second, is not cut short either); the
seeds run are then listed by count in the report.  At most 2 chunks per worker
are in flight, so the work handed out is bounded whatever N is; the results
are kept for the report (a few KB a seed: `colo explore` bounds N).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from protocol.sim import swarm


def chunks(seeds: range, size: int) -> Iterator[list[int]]:
    for i in range(0, len(seeds), size):
        yield list(seeds[i:i + size])


def chunk_size(n: int, workers: int) -> int:
    return max(1, min(16, n // (workers * 8) or 1))


class Budget:
    def __init__(self, seconds: float | None,
                 stop: Callable[[], bool] | None = None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        #: the same moment on the wall clock, which worker processes share
        self.wall_deadline = None if seconds is None else time.time() + seconds
        #: asked to stop (a signal): no further seed starts, running ones are abandoned
        self.stop = stop or (lambda: False)

    def spent(self) -> bool:
        return self.stop() or (self.deadline is not None
                               and time.monotonic() >= self.deadline)


def run_chunk_by(seeds: list[int], deadline: float | None = None) -> list[dict]:
    """`swarm.run_chunk` that runs no seed once `deadline` (a time.time() value: the
    run's budget) has passed: a chunk of 16 handed out just before the budget is spent
    does not run on for 16 seeds."""
    if deadline is None:
        return swarm.run_chunk(seeds)
    out: list[dict] = []
    for seed in seeds:
        if time.time() >= deadline:
            break
        out.extend(swarm.run_chunk([seed]))
    return out


def run(seeds: range, *, workers: int = 1, cluster: str | None = None,
        time_budget_s: float | None = None,
        progress: Callable[[int, int], None] | None = None,
        stop: Callable[[], bool] | None = None) -> dict:
    """Run `seeds`; returns `swarm.summarize`'s report plus the per-seed results.

    `stop` (polled): once true, no further seed starts; on local workers the chunks
    in flight are abandoned at once (their processes end) — the report holds the
    seeds that completed, as when a time budget is spent."""
    start = time.monotonic()
    budget = Budget(time_budget_s, stop)
    done: list[dict] = []

    def collect(batch: list[dict]) -> None:
        done.extend(batch)
        if progress is not None:
            progress(len(done), len(seeds))

    if cluster is not None:
        from protocol.sim.cluster import run_on_cluster
        run_on_cluster(cluster, chunks(seeds, chunk_size(len(seeds), 8)), collect, budget)
    elif workers <= 1:
        for chunk in chunks(seeds, 1):
            if budget.spent():
                break
            collect(swarm.run_chunk(chunk))
    else:
        _run_local(workers, chunks(seeds, chunk_size(len(seeds), workers)), collect, budget)
    report = swarm.summarize(done, time.monotonic() - start)
    report["workers"] = "cluster " + cluster if cluster else workers
    report["budget_stopped"] = len(done) < len(seeds)
    report["results"] = sorted(done, key=lambda r: r["seed"])
    return report


def _init_worker(owner: int) -> None:
    """A worker's initializer: ctrl+c reaches the whole process group, and the parent
    alone decides what it means (a worker's KeyboardInterrupt would come back as the
    chunk's result).  The worker ends with the swarm's process `owner`, however that
    ends: a swarm killed with SIGKILL left its workers running, and with them the
    pool's forkserver (their parent, which waits for them)."""
    import signal

    from protocol.sim.pdeath import exit_when_gone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_when_gone(owner)


def _end_workers(pool) -> None:
    """Stop `pool` without waiting for the chunks in flight: queued ones are cancelled,
    running ones end with their processes (nothing of theirs is kept)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # (shutdown forgets)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(5)


def _run_local(workers: int, work: Iterator[list[int]], collect, budget: Budget) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    ctx = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                               initializer=_init_worker, initargs=(os.getpid(),))
    try:
        pending = set()
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers and not budget.spent():
                chunk = next(work, None)
                if chunk is None:
                    exhausted = True
                    break
                pending.add(pool.submit(run_chunk_by, chunk, budget.wall_deadline))
            if not pending or budget.stop():
                break
            # (a timeout: a stop asked for while every chunk runs is seen within 0.2 s)
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in finished:
                collect(fut.result())
            if budget.spent():
                exhausted = True
    except BaseException:
        _end_workers(pool)          # (a KeyboardInterrupt: do not wait for the chunks)
        raise
    if budget.stop():
        _end_workers(pool)
    else:
        pool.shutdown(wait=True)
