"""Process and NBD faults on the lab's real QEMU pair, in the one fault grammar
(protocol/core/faults.py):

    kill-primary|kill-secondary|stall-primary|stall-secondary|
    heartbeat-primary|heartbeat-secondary @MESSAGE#N
    close@nbd#N

A fault at a MESSAGE fires when the primary's trace log shows the Nth such
COLO message (sent or received) after `arm`: the lab has no proxy on the
migration connection, so "at" means within one poll (10 ms) after QEMU traced
it.  ``close@nbd#N`` stops the secondary's NBD server (QMP nbd-server-stop:
the primary's replication child loses its connection) after the Nth
checkpoint-request.  A stall is SIGSTOP, held `stall_ms`, then SIGCONT.

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
    if f.kind not in LAB_KINDS:
        raise FaultSpecError(f"{spec!r}: on the real pair the process faults are "
                             f"{', '.join(LAB_KINDS)} (and close@nbd#N)")
    return f


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


async def fire(pair, fault: fg.Fault, stall_ms: int = 3000) -> dict:
    """Do it; returns what was done and when (time.time())."""
    out: dict = {"fault": str(fault), "t": time.time()}
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
    try:
        await pair.start()
        await wait_guest(pair, 180)
        client = Client(pair.addr("echo"))
        await asyncio.to_thread(client.start)
        base = base_count(pair, fault)
        await pair.primary.ex("migrate-set-parameters", {"x-checkpoint-delay": delay_ms})
        if not await wait_point(pair, fault, base, 30):
            raise LabError(f"{fault.point} #{fault.checkpoint} did not come within 30 s")
        rep["fired"] = await fire(pair, fault, stall_ms)
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
    return rep


def pair_fault(text: str) -> fg.Fault:
    """argparse type: a pair fault checked at parse time (exit 2)."""
    import argparse

    from protocol.errors import UsageError
    try:
        return parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(fault: fg.Fault, net: str, keep: bool, stall_ms: int = 3000) -> dict:
    import tempfile
    from pathlib import Path

    from colo_tui.lab.run import _run_stoppable
    if keep:
        work = Path(tempfile.mkdtemp(prefix="colo-lab-"))
        return {**_run_stoppable(session(work, str(fault), net, stall_ms)), "work": str(work)}
    with tempfile.TemporaryDirectory(prefix="colo-lab-") as d:
        return _run_stoppable(session(Path(d), str(fault), net, stall_ms))
