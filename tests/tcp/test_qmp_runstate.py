"""`colo node`'s STOP/RESUME events and query-status, as QEMU 7.2's (run1 capture)."""
from __future__ import annotations

import asyncio
import time

from protocol.core.events import make
from protocol.drivers.qmpstatus import QemuRunView
from tests.tcp._nodes import NodeProc, free_port


def _feed(view, *evs):
    out = []
    for kind, fields in evs:
        out += view.feed(make(0.0, view.role, kind, **fields))
    return out


def test_view_secondary_periodic_runs_between_checkpoints():
    v = QemuRunView("secondary", "inmigrate")
    # the model parks the periodic SVM ("paused"); 7.2 runs it
    assert _feed(v, ("vm", {"run": "paused", "why": "periodic"})) == ["RESUME"]
    assert v.status == "running"
    assert _feed(v, ("vm", {"run": "colo", "why": "checkpoint 1"})) == ["STOP"]
    assert v.status == "colo"
    assert _feed(v, ("vm", {"run": "paused", "why": "loaded"})) == ["RESUME"]
    # failover: colo_do_failover stops the running VM first
    assert _feed(v, ("failover", {"to": "require", "from": "none"}),
                 ("failover", {"to": "active", "from": "require"})) == ["STOP"]
    assert _feed(v, ("vm", {"run": "running", "why": "failover"})) == ["RESUME"]


def test_view_primary_error_stops_nothing_and_stop_is_not_doubled():
    v = QemuRunView("primary", "running")
    assert _feed(v, ("vm", {"run": "finish-migrate", "why": "x"})) == ["STOP"]
    assert _feed(v, ("vm", {"run": "running", "why": "x"})) == ["RESUME"]
    assert _feed(v, ("colo-exit", {"mode": "primary", "reason": "error"})) == []
    assert v.status == "running"
    # the failover's STOP, then the endpoint's own stop: one STOP on the wire
    assert _feed(v, ("failover", {"to": "active", "from": "require"}),
                 ("vm", {"run": "colo", "why": "failover stops the VM"}),
                 ("vm", {"run": "running", "why": "carries on"})) == ["STOP", "RESUME"]


_ARRIVED = {}       # event list id -> asyncio.Condition, notified per event


async def _collect(client, into: list) -> None:
    cond = _ARRIVED.setdefault(id(into), asyncio.Condition())
    with client.listener() as lst:
        async for ev in lst:
            async with cond:
                into.append(ev)
                cond.notify_all()


async def _until(evs: list, pred, what: str, timeout_s: float = 15.0) -> None:
    cond = _ARRIVED.setdefault(id(evs), asyncio.Condition())

    async def wait():
        async with cond:
            await cond.wait_for(pred)
    try:
        await asyncio.wait_for(wait(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}: {[e['event'] for e in evs]}") \
            from None


async def _quiet(p: NodeProc, pc, timeout_s: float = 20.0) -> int:
    """Quiet the pair for 60 s; the number of its last checkpoint.  A new
    x-checkpoint-delay checkpoints at once and re-arms the timer (7.2's
    colo_checkpoint_notify), when the primary is between checkpoints: its
    recording then has the change, that checkpoint's begin, its commit, and no
    other begin for 60 s.  A change that lands during a transaction is absorbed or
    deferred (and the old timer may still fire): once that ends, it is made again.
    Polling the primary's recording (a file; bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        await pc.execute("migrate-set-parameters", {"x-checkpoint-delay": 60000})
        before: list = []
        after: list = []
        while True:
            evs = p.events()
            at = max((i for i, e in enumerate(evs) if e["kind"] == "parameter"), default=None)
            if at is not None:
                before = [e["data"] for e in evs[:at] if e["kind"] == "checkpoint"]
                after = [e["data"] for e in evs[at:] if e["kind"] == "checkpoint"]
                if not before or before[-1]["phase"] == "commit":
                    # between checkpoints at the change: the next begin is the change's
                    if after and after[0]["phase"] == "begin" and any(
                            c["phase"] == "commit" and c["n"] == after[0]["n"] for c in after):
                        return after[0]["n"]
                elif after and after[-1]["phase"] == "commit":
                    break               # the transaction it met is over: again
            if time.monotonic() > deadline:
                raise AssertionError(f"the pair was not quiet within {timeout_s} s: "
                                     f"{before[-2:]} / {after}")
            await asyncio.sleep(0.02)


def test_node_pair_events_and_status_match_qemu72(tmp_path):
    from qemu.qmp import QMPClient
    addr = f"127.0.0.1:{free_port()}"
    s = NodeProc("secondary", tmp_path, addr, "--checkpoint-delay", "100")
    s.wait_ready()
    p = None

    async def session():
        nonlocal p
        sc = QMPClient("secondary")
        await sc.connect(str(s.qmp_path))
        sev: list = []
        st = asyncio.create_task(_collect(sc, sev))
        assert (await sc.execute("query-status"))["status"] == "inmigrate"
        p = NodeProc("primary", tmp_path, addr, "--checkpoint-delay", "100")
        p.wait_ready()
        pc = QMPClient("primary")
        await pc.connect(str(p.qmp_path))
        pev: list = []
        pt = asyncio.create_task(_collect(pc, pev))
        names = lambda evs: [e["event"] for e in evs]  # noqa: E731
        await _until(sev, lambda: names(sev).count("RESUME") >= 4, "3 secondary checkpoints")
        await _until(pev, lambda: names(pev).count("RESUME") >= 3, "primary checkpoints")
        # secondary: RESUME after the initial load, then STOP/RESUME per checkpoint
        sn = names(sev)
        assert sn[0] == "RESUME" and sn[1:7] == ["STOP", "RESUME"] * 3, sn
        pn = names(pev)
        start = 1 if pn[0] == "STOP" else 0         # connected before/after completion
        assert pn[start:start + 5] == ["RESUME", "STOP", "RESUME", "STOP", "RESUME"], pn
        # query-status: "running" between checkpoints (never the model's "paused")
        seen = set()
        for _ in range(40):
            for c in (sc, pc):
                seen.add((await c.execute("query-status"))["status"])
            if "running" in seen:
                break
        assert seen <= {"running", "colo"} and "running" in seen, seen
        # the failover must not meet a checkpoint: one starting as the heartbeat is
        # sent puts its STOP/RESUME in the tail, and one under way changes what both
        # sides show (the SVM stopped already: no STOP of the failover's own; the
        # primary waiting for vmstate-loaded: its VM stays stopped).  So the pair
        # is made quiet first: x-checkpoint-delay 60 s (see _quiet)
        n = await _quiet(p, pc)
        await _until(sev, lambda: names(sev).count("RESUME") == n + 1 and
                     names(sev)[-1] == "RESUME", f"the secondary's checkpoint {n}")
        n_s = len(sev)
        assert await sc.execute("x-colo-lost-heartbeat") == {}
        await _until(sev, lambda: "COLO_EXIT" in names(sev[n_s:]) and
                     names(sev)[-1] == "RESUME", "secondary failover")
        tail = sev[n_s:]
        assert names(tail) == ["STOP", "COLO_EXIT", "RESUME"], names(tail)
        assert tail[1]["data"] == {"mode": "secondary", "reason": "request"}
        # the primary's next checkpoint, now (a new delay checkpoints at once)
        await pc.execute("migrate-set-parameters", {"x-checkpoint-delay": 100})
        assert (await sc.execute("query-status"))["status"] == "running"
        # primary: COLO_EXIT error at its next checkpoint, no STOP around it
        await _until(pev, lambda: "COLO_EXIT" in names(pev), "primary COLO_EXIT")
        i = names(pev).index("COLO_EXIT")
        assert pev[i]["data"] == {"mode": "primary", "reason": "error"}
        assert names(pev)[i - 1] == "RESUME"
        assert (await pc.execute("query-status"))["status"] == "running"
        n_p = len(pev)
        assert await pc.execute("x-colo-lost-heartbeat") == {}
        await _until(pev, lambda: names(pev[n_p:]) == ["STOP", "RESUME"], "primary failover")
        assert (await pc.execute("query-status"))["status"] == "running"
        for t in (st, pt):
            t.cancel()
        for c in (sc, pc):
            await c.disconnect()

    try:
        asyncio.run(asyncio.wait_for(session(), 60))
    finally:
        if p is not None:
            assert p.stop() == 0
        assert s.stop() == 0
