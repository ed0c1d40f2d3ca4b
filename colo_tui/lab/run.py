"""One lab session: start the pair, wait for the guest's service, drive client
traffic, provoke colo-compare mismatches, report (and optionally fail over)."""
from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from pathlib import Path

from colo_tui.lab import LabError, workdir
from colo_tui.lab.pair import Pair
from colo_tui.lab.traffic import Echo, echo_load, random_probe, ready
from protocol.net import netcompare as nc

_REQ = re.compile(r"@(\d+\.\d+):colo_send_message Send 'checkpoint-request'")


def checkpoint_times(trace: Path) -> list[float]:
    """Unix times of the primary's checkpoint requests (its -trace log)."""
    try:
        return [float(m.group(1)) for m in _REQ.finditer(trace.read_text(errors="replace"))]
    except OSError:
        return []


def forced(times: list[float], t_colo: float, delay_ms: int) -> list[float]:
    """Requests that came sooner than the periodic timer allows: QEMU 7.2 re-arms
    it `delay` after each checkpoint, so a shorter gap is a colo-compare
    notification (a mismatch).  Returns the gaps in ms."""
    gaps, prev = [], t_colo
    for t in times:
        gap = (t - prev) * 1000
        if gap < 0.8 * delay_ms:
            gaps.append(round(gap, 1))
        prev = t
    return gaps


async def wait_guest(pair: Pair, timeout: float) -> float:
    t0 = time.monotonic()
    ok = await asyncio.to_thread(ready, pair.addr("echo"), t0 + timeout)
    if not ok:
        serial = (pair.work / "primary.serial").read_text(errors="replace")[-600:]
        raise LabError(f"the guest's echo service did not answer within {timeout:.0f} s; "
                       f"primary console ends with: {serial!r}")
    return time.monotonic() - t0


async def failover(pair: Pair, before_s: float = 3.0, after_s: float = 1.5,
                   survive_s: float = 45.0, at_checkpoint: bool | None = None) -> dict:
    """COLO's promise, tried: SIGKILL the primary in the middle of echo traffic,
    then "Secondary Failover" of COLO-FT.txt on the secondary (nbd-server-stop,
    x-colo-lost-heartbeat, object-del f2 f1, chardev-remove red1 red0).

    With `--net tap` the client's connection ends in the guest, so it can
    survive: the outage is the client's gap between its last answer before the
    kill and its first one after, on the same connection, and every answer is
    checked byte for byte (Echo).  With user-mode networking it ends in the
    primary's process (slirp); the outage is then measured to the first echo
    answered through the secondary's own port forward.

    `at_checkpoint` (the default with tap): the kill comes right after the
    secondary resumed from a checkpoint (one a random-service mismatch forced).
    Should the secondary's Linux have panicked (guest_panics; see
    docs/lab-modes.md for the QEMU 7.2 TCG bug the lab's RAM size avoids), a
    failover onto it shows that, not COLO."""
    if at_checkpoint is None:
        at_checkpoint = pair.net is not None
    out: dict = {"net": "tap" if pair.net else "user"}
    answers: list[float] = []
    stop = threading.Event()
    after_kill = threading.Event()
    talking = threading.Event()
    t_kill = float("inf")

    def client() -> None:
        # a surviving connection may wait out several TCP retransmissions; the
        # connect is retried (bounded): an ARP reply colo-compare holds for its 3 s
        # timeout makes the client's kernel give up with "No route to host"
        deadline = time.monotonic() + 15
        while True:
            try:
                e = Echo(pair.addr("echo"), seed=5, timeout=survive_s if pair.net else 10.0)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    out["client_error"] = f"connect: {exc}"
                    after_kill.set()
                    talking.set()
                    return
                out["connect_retries"] = out.get("connect_retries", 0) + 1
                time.sleep(0.2)     # between attempts, not a synchronisation
        try:
            while not stop.is_set():
                e.request()
                answers.append(time.monotonic())
                talking.set()
                if answers[-1] > t_kill:
                    after_kill.set()
        except OSError as exc:
            out["client_error"] = str(exc)
        finally:
            after_kill.set()
            talking.set()
            e.close()
            out["client_answers"] = e.answered

    th = threading.Thread(target=client, daemon=True)
    th.start()
    await asyncio.to_thread(talking.wait, 30)   # the client's first answer
    await asyncio.sleep(before_s)           # the workload's length before the kill
    if at_checkpoint:
        # a connection to the random service is a mismatch: colo-compare forces a
        # checkpoint; the kill follows the secondary's RESUME after loading it
        t_mark = time.time()
        probe = asyncio.ensure_future(asyncio.to_thread(random_probe, pair.addr("random"), 1))
        resumed = await wait_event(pair.secondary, "RESUME", t_mark, 20)
        out["killed_after_checkpoint_resume_ms"] = (
            round((time.time() - resumed) * 1000, 1) if resumed else None)
    t_kill = time.monotonic()
    pair.primary.proc.kill()
    await asyncio.to_thread(pair.primary.proc.wait, 10)
    sec = pair.secondary
    await sec.ex("nbd-server-stop")
    await sec.ex("x-colo-lost-heartbeat")
    for obj in ("f2", "f1"):
        await sec.ex("object-del", {"id": obj})
    for chardev in ("red1", "red0"):
        await sec.ex("chardev-remove", {"id": chardev})
    t_done = time.monotonic()
    out["failover_qmp_ms"] = round((t_done - t_kill) * 1000, 1)
    # the first answer after the kill (bounded), then the stream must go on
    await asyncio.to_thread(after_kill.wait, survive_s + 5 if pair.net else 3)
    await asyncio.to_thread(th.join, after_s)
    stop.set()
    await asyncio.to_thread(th.join, survive_s + 5)
    last = max((a for a in answers if a <= t_kill), default=None)
    first = min((a for a in answers if a > t_kill), default=None)
    out["connection_survived"] = any(a > t_done for a in answers)
    out["answers_after_failover"] = sum(1 for a in answers if a > t_done)
    out["last_answer_before_kill_ms"] = round((t_kill - last) * 1000, 1) if last else None
    if first is not None and last is not None:
        out["client_outage_ms"] = round((first - last) * 1000, 1)
        out["first_answer_after_kill_ms"] = round((first - t_kill) * 1000, 1)
    if not out["connection_survived"]:
        ok = await asyncio.to_thread(ready, pair.addr("secondary-echo"),
                                     time.monotonic() + 60)
        out["reconnect_outage_ms"] = round((time.monotonic() - t_kill) * 1000) if ok else None
    out["secondary_after"] = {"colo": await sec.ex("query-colo-status"),
                              "status": (await sec.ex("query-status"))["status"]}
    if at_checkpoint:
        await asyncio.wait([probe], timeout=20)
    return out


async def wait_event(side, name: str, since: float, timeout: float) -> float | None:
    """The wall-clock time of `side`'s first QMP event `name` after `since`, or
    None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in side.events:
            if ev["event"] == name and ev["wall"] > since:
                return ev["wall"]
        await asyncio.sleep(0.005)     # polling the event list the QMP reader fills
    return None


def compare_report(pair: Pair, times: list[float], t0: float, max_events: int) -> dict:
    """The compare channels: frames per channel, colo-compare's verdict on each
    TCP data packet, the mismatches (each marked with the checkpoint it forced),
    the faults that fired, and the first `max_events` packet events.  Every
    event goes to compare-channels.jsonl in the work directory."""
    log = pair.packets
    frames: dict[str, dict[str, int]] = {}
    for r in log.records:
        c = frames.setdefault(r.channel, {"frames": 0, "data": 0, "back": 0})
        c["frames" if r.direction == ">" else "back"] += 1
        c["data"] += bool(r.payload and r.direction == ">")
    vs = nc.verdicts(log.data_packets(), times)
    with open(pair.work / "compare-channels.jsonl", "w") as f:
        for r in log.records:
            f.write(json.dumps(r.event(t0)) + "\n")
        for v in vs:
            f.write(json.dumps({"kind": "verdict", **v.as_dict()}) + "\n")
    return {"frames": frames, **nc.summary(vs),
            "mismatches": [v.as_dict() for v in vs if v.verdict != "match"][:200],
            "faults_fired": [r.event(t0) for r in log.records if r.fault],
            "relay_notes": [{**n, "t": round(n["t"] - t0, 6)} for n in log.notes][:50],
            "events_total": len(log.records),
            "events": [r.event(t0) for r in log.records[:max_events]]}


async def session(work: Path, delay_ms: int, load_s: float, probes: int,
                  on_status=None, hold=None, on_stall=None, fail_over: bool = False,
                  faults=(), max_events: int = 200, net: str = "user",
                  capture: Path | None = None,
                  failover_at_checkpoint: bool | None = None) -> dict:
    """Everything `colo lab` does, as one JSON-able dict.  `hold` (an awaitable
    factory) keeps the pair up for an interactive user before the report;
    `faults` (protocol.core.faults.Fault on compare channels) are armed when the
    client traffic starts."""
    pair = Pair(work, delay_ms, faults, net)
    cap = None
    if capture is not None:
        from colo_tui.lab.capture import Capture, lab_ports
        cap = Capture(capture, lab_ports(pair.ports))
        await asyncio.to_thread(cap.start)
    rep: dict = {"work": str(work), "x_checkpoint_delay_ms": delay_ms, "net": net}
    try:
        t0 = time.monotonic()
        await pair.start()
        rep["ports"] = vars(pair.ports)
        if pair.net is not None:
            rep["netns"] = pair.net.name
        rep["primary_objects"] = sorted(
            o["name"] for o in await pair.primary.ex("qom-list", {"path": "/objects"})
            if o["type"].startswith("child<"))
        rep["colo_s"] = round(time.monotonic() - t0, 2)
        t_colo_unix = time.time() - (time.monotonic() - pair.t_colo)
        rep["guest_ready_s"] = round(await wait_guest(pair, 180), 2)
        if on_status:
            echo, rnd = pair.addr("echo"), pair.addr("random")
            where = f" in network namespace {pair.net.name}" if pair.net else ""
            on_status(f"COLO running, guest echo service on {echo.host}:{echo.port}"
                      f"{where} (random on :{rnd.port}); primary pid "
                      f"{pair.primary.proc.pid}, secondary pid {pair.secondary.proc.pid}")
        before = len(checkpoint_times(work / "primary.trace.log"))
        pair.arm_faults()
        rep["traffic"] = await asyncio.to_thread(echo_load, pair.addr("echo"), load_s)
        rep["traffic"]["checkpoints_during"] = (
            len(checkpoint_times(work / "primary.trace.log")) - before)
        if probes:
            rep["mismatch_probe"] = await asyncio.to_thread(random_probe, pair.addr("random"),
                                                            probes)
        if hold is not None:
            await hold(pair)
        times = checkpoint_times(work / "primary.trace.log")
        rep["checkpoints"] = len(times)
        rep["forced_checkpoint_gaps_ms"] = forced(times, t_colo_unix, delay_ms)
        rep["compare_trace"] = pair.miscompares()
        rep["compare_channels"] = compare_report(pair, times, t_colo_unix, max_events)
        if fail_over:
            rep["failover"] = await failover(pair, at_checkpoint=failover_at_checkpoint)
        rep["guest_panics"] = {side: (work / f"{side}.serial").read_text(
            errors="replace").count("Kernel panic") for side in ("primary", "secondary")}
        rep["colo_s_total"] = round(time.monotonic() - pair.t_colo, 1)
        rep["status"] = await pair.status()
        rep["status"]["primary"].setdefault("colo", {"mode": "killed"} if fail_over else {})
    except (LabError, TimeoutError, asyncio.CancelledError):
        if on_stall is not None:    # e.g. the QEMU threads' stacks, before they are stopped
            on_stall(pair)
        raise
    finally:
        await pair.close()
        if cap is not None:
            await asyncio.to_thread(cap.stop)
            rep["capture"] = str(capture)
    rep["ok"] = (rep["status"]["primary"]["colo"].get("mode") == (
        "killed" if fail_over else "primary")
                 and rep["traffic"]["error"] is None and rep["traffic"]["requests"] > 0)
    return rep


def run(delay_ms: int, load_s: float, probes: int, keep: bool, on_status=None,
        hold=None, fail_over: bool = False, faults=(), max_events: int = 200,
        net: str = "user", capture: Path | None = None, work: Path | None = None) -> dict:
    """`work`: the directory to keep (implies `keep`; the caller names it to the user
    whatever way the session ends)."""
    kw = {"fail_over": fail_over, "faults": faults, "max_events": max_events, "net": net,
          "capture": capture}
    if keep or work is not None:
        work = work or workdir.make(True)
        return _run_stoppable(session(work, delay_ms, load_s, probes, on_status, hold, **kw))
    with workdir.temporary() as d:
        return _run_stoppable(session(d, delay_ms, load_s, probes, on_status, hold, **kw))


def _run_stoppable(coro):
    """asyncio.run, where SIGTERM / SIGHUP cancel the session (its finally blocks stop
    the QEMUs) and then end the process with 128 + the signal, from the main thread:
    a signal never lands as a SystemExit inside a relay's callback."""
    got: list[int] = []

    async def main():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, lambda s=sig: (got.append(s), task.cancel()))
            except (NotImplementedError, RuntimeError):   # not the main thread
                pass
        return await coro

    # asyncio resets a signal to SIG_DFL when its loop closes: put back the handlers the
    # lab had (procs.install's, which stop every child) for the rest of the process
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        rep = asyncio.run(main())
    except asyncio.CancelledError:
        if got:
            raise SystemExit(128 + got[0]) from None
        raise
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in before.items():
                signal.signal(sig, handler)
    if got:                 # the session swallowed the cancellation: still a signalled stop
        raise SystemExit(128 + got[0])
    return rep
