"""Process and NBD faults on the lab's real QEMU pair, in the one fault grammar
(protocol/core/faults.py):

    kill-primary|kill-secondary|stall-primary|stall-secondary|
    heartbeat-primary|heartbeat-secondary @MESSAGE#N
    partition=MS@MESSAGE#N
    close@nbd#N

A fault at a MESSAGE fires when the primary's trace log shows the Nth such
COLO message (sent or received) after `arm`: the lab has no proxy on the
migration connection, so "at" means within one poll (10 ms) after QEMU traced
it.  ``close@nbd#N`` stops the secondary's NBD server (QMP nbd-server-stop:
the primary's replication child loses its connection) after the Nth
checkpoint-request.  A stall is SIGSTOP, held `stall_ms`, then SIGCONT.
``partition=MS`` cuts the links between the two QEMUs for MS ms: the
migration connection (through a relay of the lab's, `LinkRelay`) and the two
colo-compare channels that cross from one host to the other (mirror,
compare-in); what was sent waits in TCP and crosses when the partition ends.
The NBD connection and the client's link are not cut.

`observe` is what QEMU did: each side's query-colo-status, query-status and
COLO_EXIT events, and the client's view (an echo connection's answers, its
longest gap and its error)."""
from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

from colo_tui.lab import LabError
from colo_tui.lab.traffic import Echo
from protocol.core import faults as fg

LAB_KINDS = fg.PAIR_KINDS
NBD = fg.NBD_POINT


def parse(spec: str) -> fg.Fault:
    """A pair fault; a clear error (protocol.errors.FaultSpecError) otherwise."""
    from protocol.errors import FaultSpecError
    text = spec.strip()
    if text.split("#")[0].endswith("@" + NBD):
        kind = text.split("@")[0]
        if kind != "close":
            raise FaultSpecError(f"{spec!r}: the NBD link takes close@nbd#N (the secondary's "
                                 "NBD server stops after the Nth checkpoint-request)")
        f = fg.parse(text.replace("@" + NBD, "@checkpoint-request"))
        return fg.Fault("close", NBD, f.checkpoint)
    f = fg.parse(text)
    if f.kind not in LAB_KINDS and f.kind != "partition":
        raise FaultSpecError(f"{spec!r}: on the real pair the process faults are "
                             f"{', '.join(LAB_KINDS)}, partition=MS (and close@nbd#N)")
    return f


#: the colo-compare channels that cross between the hosts (the others stay inside one)
CROSSING = ("mirror", "compare-in")


class LinkRelay:
    """A plain TCP relay on the migration connection whose `open` gate a partition
    closes: bytes wait in TCP until it opens again."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.open = asyncio.Event()
        self.open.set()
        self.port: int | None = None
        self._server = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, down_r, down_w) -> None:
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream), 10)
        except (OSError, TimeoutError):
            down_w.close()
            return
        self._writers += [down_w, up_w]
        for r, w in ((down_r, up_w), (up_r, down_w)):
            task = asyncio.ensure_future(self._pump(r, w))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, r, w) -> None:
        try:
            while data := await r.read(1 << 16):
                if not self.open.is_set():
                    await self.open.wait()          # a partition: nothing crosses
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def close(self) -> None:
        from colo_tui.lab.relay import close_relay
        await close_relay(self._server, self._writers, self._tasks)


async def partition(pair, link: LinkRelay, ms: int) -> None:
    """No byte crosses between the two QEMUs for `ms` (migration and the crossing
    compare channels); then everything held goes on."""
    gates = [link.open] + [pair.relays[c].open for c in CROSSING]
    for g in gates:
        g.clear()
    try:
        await asyncio.sleep(ms / 1000)      # the partition itself
    finally:
        for g in gates:
            g.set()


def _traced(trace, name: str) -> int:
    try:
        text = trace.read_text(errors="replace")
    except OSError:
        return 0
    return text.count(f" '{name}' message")


async def wait_point(pair, fault: fg.Fault, base: int, timeout: float) -> bool:
    """Until the primary's trace shows the fault's Nth message after `base`."""
    name = "checkpoint-request" if fault.point == NBD else fault.point
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _traced(pair.work / "primary.trace.log", name) - base >= fault.checkpoint:
            return True
        await asyncio.sleep(0.01)
    return False


def base_count(pair, fault: fg.Fault) -> int:
    name = "checkpoint-request" if fault.point == NBD else fault.point
    return _traced(pair.work / "primary.trace.log", name)


async def fire(pair, fault: fg.Fault, stall_ms: int = 3000, link=None) -> dict:
    """Do it; returns what was done and when (time.time())."""
    out: dict = {"fault": str(fault), "t": time.time()}
    if fault.kind == "partition":
        await partition(pair, link, int(fault.arg))
        out["partitioned_ms"] = int(fault.arg)
        out["cut"] = ["migration", *CROSSING]
        return out
    if fault.point == NBD:
        out["qmp"] = await pair.secondary.ex("nbd-server-stop")
        return out
    action, side_name = fault.kind.split("-")
    side = getattr(pair, side_name)
    if action == "kill":
        side.proc.kill()
        await asyncio.to_thread(side.proc.wait, 10)
    elif action == "stall":
        os.kill(side.proc.pid, signal.SIGSTOP)
        await asyncio.sleep(stall_ms / 1000)
        os.kill(side.proc.pid, signal.SIGCONT)
        out["stalled_ms"] = stall_ms
    elif action == "heartbeat":
        out["qmp"] = await side.ex("x-colo-lost-heartbeat")
    return out


class Client:
    """An echo connection in a thread while a fault happens: answers, the
    longest gap between two, and the error that ended it."""

    def __init__(self, target, timeout: float = 20.0) -> None:
        self.target, self.timeout = target, timeout
        self.times: list[float] = []
        self.error: str | None = None
        self.stop = threading.Event()
        self.first = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            e = Echo(self.target, seed=3, timeout=self.timeout)
        except OSError as exc:
            self.error = f"connect: {exc}"
            self.first.set()
            return
        try:
            while not self.stop.is_set():
                e.request()
                self.times.append(time.time())
                self.first.set()
        except OSError as exc:
            self.error = str(exc)
        finally:
            self.first.set()
            e.close()

    def start(self, timeout: float = 30) -> None:
        self.th.start()
        self.first.wait(timeout)

    def finish(self, timeout: float = 30) -> dict:
        self.stop.set()
        self.th.join(timeout)
        gaps = [b - a for a, b in zip(self.times, self.times[1:], strict=False)]
        return {"answers": len(self.times), "error": self.error,
                "longest_gap_ms": round(max(gaps) * 1000, 1) if gaps else None}

    def answers_after(self, t: float) -> int:
        return sum(1 for x in self.times if x > t)


async def observe(pair) -> dict:
    out = {}
    for s in (pair.primary, pair.secondary):
        d: dict = {"alive": s.proc.poll() is None,
                   "colo_exit": [e["data"] for e in s.events if e["event"] == "COLO_EXIT"],
                   "events": sorted({e["event"] for e in s.events})}
        if d["alive"]:
            try:
                d["colo"] = await s.ex("query-colo-status", timeout=5)
                d["status"] = (await s.ex("query-status", timeout=5))["status"]
            except LabError as exc:
                d["qmp_error"] = str(exc)
        out[s.name] = d
    return out


async def session(work, spec: str, net: str = "user", stall_ms: int = 3000,
                  delay_ms: int = 1500, after_s: float = 4.0, on_stall=None) -> dict:
    """Start the pair, let both guests boot (no checkpoint before: see modes.py),
    run an echo client, fire `spec` at its point, watch `after_s` seconds, report
    what QEMU did and what the client saw."""
    from colo_tui.lab.modes import LONG_DELAY_MS
    from colo_tui.lab.pair import Pair
    from colo_tui.lab.run import checkpoint_times, wait_guest
    fault = parse(spec)
    pair = Pair(work, LONG_DELAY_MS, (), net)
    rep: dict = {"fault": str(fault), "net": net}
    link = None
    try:
        if fault.kind == "partition":       # the migration connection through a gate
            link = LinkRelay(pair.ports.migrate)
            pair.migrate_via = await link.start()
        await pair.start()
        await wait_guest(pair, 180)
        client = Client(pair.addr("echo"))
        await asyncio.to_thread(client.start)
        base = base_count(pair, fault)
        await pair.primary.ex("migrate-set-parameters", {"x-checkpoint-delay": delay_ms})
        if not await wait_point(pair, fault, base, 30):
            raise LabError(f"{fault.point} #{fault.checkpoint} did not come within 30 s")
        rep["fired"] = await fire(pair, fault, stall_ms, link)
        t_fired = time.time()
        await asyncio.sleep(after_s)    # the observation window after the fault
        rep["qemu"] = await observe(pair)
        cps = checkpoint_times(pair.work / "primary.trace.log")
        rep["checkpoints_after"] = sum(1 for t in cps if t > t_fired)
        rep["client_answers_after"] = client.answers_after(t_fired)
        rep["client"] = await asyncio.to_thread(client.finish, 30)
        for name in ("primary", "secondary"):
            rep["qemu"][name]["stderr_tail"] = getattr(pair, name).stderr_tail(400)
            try:    # under TCG the secondary's Linux may panic after checkpoints
                rep["qemu"][name]["guest_panics"] = (work / f"{name}.serial").read_text(
                    errors="replace").count("Kernel panic")
            except OSError:
                rep["qemu"][name]["guest_panics"] = None
    except (LabError, TimeoutError, asyncio.CancelledError):
        if on_stall is not None:
            on_stall(pair)
        raise
    finally:
        for s in (pair.primary, pair.secondary):    # a stalled QEMU cannot quit
            if s is not None and s.proc.poll() is None:
                os.kill(s.proc.pid, signal.SIGCONT)
        await pair.close()
        if link is not None:
            await link.close()
    return rep


def pair_fault(text: str) -> fg.Fault:
    """argparse type: a pair fault checked at parse time (exit 2)."""
    import argparse

    from protocol.errors import UsageError
    try:
        return parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(fault: fg.Fault, net: str, keep: bool, stall_ms: int = 3000, work=None) -> dict:
    """`work`: the directory to keep (implies `keep`)."""
    from colo_tui.lab import workdir
    from colo_tui.lab.run import _run_stoppable
    if keep or work is not None:
        work = work or workdir.make(True)
        return {**_run_stoppable(session(work, str(fault), net, stall_ms)), "work": str(work)}
    with workdir.temporary() as d:
        return _run_stoppable(session(d, str(fault), net, stall_ms))
