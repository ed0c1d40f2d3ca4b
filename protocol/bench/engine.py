"""``colo bench engine``: the TCP engine against raw-socket baselines, same run.

* control rate: checkpoint transactions/s with no RAM (the six control
  messages, qemu dialect) between two processes, pinned to one CPU and on two
  CPUs, vs two blocking-socket Python peers exchanging the same messages
  (12-byte vmstate-size, 4-byte others);
* bulk: 64 MiB of pages per checkpoint vs raw ``sendall``/``recv_into``;
* the real capture's workload (40 pages + a 14 KiB device blob) checkpoint
  latency with TCP_NODELAY and with Nagle on (QEMU 7.2 took ≈ 88 ms), vs raw
  blocking peers sending the same bytes; and the same back to back (no delay
  between checkpoints: hot caches), which separates the path's own cost from
  the cold start of each wake-up after the 100 ms pause.

Medians of several rounds (engine and baseline rounds interleaved); every
figure has its baseline and ``ratio``.  Each row also gives CPU µs per
checkpoint, both sides together, which a loaded machine does not distort: the
engine run's (``cpu_us``), the raw peers' (``baseline_cpu_us``) and the sans-IO
core's alone, both endpoints in one process (``core_cpu_us``): the part of an
engine run no driver can remove.  The engine's floor (``floor``,
``floor_ratio``, ``floor_cpu_us``; `protocol.bench.enginefloor`) is the same
engine moving the same bytes with a minimal endpoint instead of the core: what
the engine, the loop and the kernel allow by themselves.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import struct
import time

from protocol.argtypes import int_in, number_in
from protocol.core.events import Checkpoint
from protocol.core.guestport import NullGuest
from protocol.drivers.memtune import tune_process
from protocol.drivers.tcp import RECV_BUFFER_BYTES
from protocol.migration.pages import CODE_PAGE, KIND_ZERO, PAGE_SIZE, PageBatch, PageRecord, PageRun


class BenchGuest(NullGuest):
    """`pages` full pages per checkpoint, held as a PageBatch (the model guest's
    form: one array, no per-page objects), and a device blob of `blob_bytes`."""

    def __init__(self, pages: int = 0, blob_bytes: int = 1) -> None:
        import numpy as np
        super().__init__()
        self.npages = max(pages, 1)
        data = np.repeat((np.arange(pages) & 0xFF).astype(np.uint8), PAGE_SIZE)
        self.records = PageBatch([PageRun("pc.ram", np.arange(pages) * PAGE_SIZE,
                                          np.full(pages, CODE_PAGE, dtype=np.uint8),
                                          data.reshape(pages, PAGE_SIZE))])
        self.blob = b"\x01" * (blob_bytes - 1) + b"\x00"

    def collect_dirty_pages(self):
        return self.records

    def save_devices(self) -> bytes:
        return self.blob

    def initial_stream(self) -> bytes:
        from protocol.migration.stream import encode_initial
        data, self.ram_context = encode_initial(
            "pc-i440fx-7.2", [("pc.ram", self.npages * PAGE_SIZE)],
            [PageRecord("pc.ram", 0, KIND_ZERO)], [], {"page_size": PAGE_SIZE, "devices": []})
        return data


def _pin(cpu):
    """Pin this process to the ``cpu``-th CPU it may run on (``(0, 0)``: both
    sides share one CPU; ``(0, 1)``: one each)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[cpu % len(allowed)]})


def _engine_side(role, lsock_or_port, cfg, q):
    from protocol.core import dialects
    from protocol.core.endpoint import make_endpoint
    from protocol.drivers.tcp import Engine, new_loop
    _pin(cfg["cpu"][0 if role == "primary" else 1])
    loop = new_loop(None if cfg.get("uvloop", True) else False)
    if cfg.get("floor"):
        from protocol.bench.enginefloor import FloorEndpoint
        ep = FloorEndpoint(role, cfg["payload"], cfg["delay_ms"])
    else:
        guest = BenchGuest(cfg["pages"], cfg["blob"]) if role == "primary" else NullGuest()
        ep = make_endpoint(role, dialects.QEMU, guest=guest,
                           checkpoint_delay_ms=cfg["delay_ms"],
                           save_ms=cfg.get("save_ms", 0) if role == "primary" else 0)
    import collections
    marks = collections.deque(maxlen=2000) if cfg.get("soak") else []

    finished = loop.create_future()     # max_cp committed or time is up: no polling

    def finish() -> None:
        if not finished.done():
            finished.set_result(None)

    cpu = {}

    def on_events(evs):
        for e in evs:
            if type(e) is Checkpoint:
                marks.append((e.phase, e.t_ms))
                if "start" not in cpu and ep.checkpoint >= 1:
                    warm()
                if ep.checkpoint >= cfg["max_cp"]:
                    finish()

    def warm() -> None:
        """CPU is counted from the first commit on (start-up, the initial stream
        and lazy imports are not the steady state)."""
        cpu["start"], cpu["cp"] = _cpu_s(), ep.checkpoint

    def warm_secondary(evs) -> None:
        if ep.checkpoint >= 1:
            warm()
            eng.on_events = None        # then the secondary needs no events
    # the secondary closes once the primary has gone (its EOF is an error there):
    # otherwise it would wait for the harness to kill it
    eng = Engine(ep, loop, nodelay=cfg["nodelay"], coalesce=cfg["coalesce"],
                 on_events=on_events if role == "primary" else warm_secondary,
                 close_on_error=role == "secondary", detail_events=False,
                 wire_events=False)

    rss = {}
    cpu_res = {}

    async def sample_rss():
        """RSS after a warm-up of 1/`SOAK_SAMPLES` of the run, then as often until
        the end: the peak shows a growth the end value would hide."""
        import asyncio
        step = cfg["seconds"] / SOAK_SAMPLES
        await asyncio.sleep(step)       # after warm-up
        rss["start"] = rss["peak"] = _rss_kib()
        for _ in range(SOAK_SAMPLES):   # bounded: the run ends first
            await asyncio.sleep(step)
            rss["peak"] = max(rss["peak"], _rss_kib())

    async def go():
        import asyncio
        sampler = loop.create_task(sample_rss()) if cfg.get("soak") else None
        if role == "secondary":
            sock, _ = await loop.sock_accept(lsock_or_port)
            await eng.attach_socket(sock)
            await eng.closed
            if sampler is not None:
                sampler.cancel()
            q.put({"role": "secondary", "rss": dict(rss, end=_rss_kib()),
                   **_cpu_result(cpu, ep.checkpoint)})
            return
        await eng.connect("127.0.0.1", lsock_or_port)
        loop.call_later(cfg["seconds"], finish)
        eng.closed.add_done_callback(lambda _f: finish())
        await finished
        if sampler is not None:
            sampler.cancel()
        rss["end"] = _rss_kib()
        cpu_res.update(_cpu_result(cpu, ep.checkpoint))
        eng.detach()
        eng.shutdown()
        await asyncio.sleep(0.01)
    loop.run_until_complete(go())
    if role == "primary":
        q.put({"checkpoints": ep.checkpoint, "marks": list(marks), "role": "primary",
               "rss": rss, **cpu_res})


def _cpu_result(cpu: dict, checkpoints: int) -> dict:
    if "start" not in cpu:
        return {"cpu_s": 0.0, "cpu_checkpoints": 0}
    return {"cpu_s": _cpu_s() - cpu["start"], "cpu_checkpoints": checkpoints - cpu["cp"]}


def _cpu_s() -> float:
    """This process's CPU time (user + system), seconds."""
    return time.process_time()


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


#: the soak samples RSS this many times (after a warm-up of as long)
SOAK_SAMPLES = 10
#: soak workloads: the null guest's control messages, or the real capture's
#: checkpoint (40 pages + a 14 KiB device blob), both with no checkpoint delay
SOAK_WORKLOADS = {"null": {}, "capture": {"pages": 40, "blob": 14 << 10}}


def soak(seconds: float, workload: str = "null") -> dict:
    """Both nodes at full rate for `seconds`; RSS after warm-up, its peak (sampled
    through the run) and at the end."""
    if workload not in SOAK_WORKLOADS:
        raise ValueError(f"unknown soak workload {workload!r} "
                         f"(one of {', '.join(SOAK_WORKLOADS)})")
    ctx = mp.get_context("fork")
    cfg = _cfg(seconds=seconds, soak=True, **SOAK_WORKLOADS[workload])
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    q = ctx.Queue()
    s = ctx.Process(target=_engine_side, args=("secondary", lsock, cfg, q))
    p = ctx.Process(target=_engine_side, args=("primary", lsock.getsockname()[1], cfg, q))
    s.start()
    p.start()
    got = {}
    for _ in range(2):
        item = q.get(timeout=seconds + 60)
        got[item["role"]] = item
    p.join(10)
    s.join(10)
    lsock.close()
    out = {"seconds": seconds, "workload": workload,
           "checkpoints": got["primary"]["checkpoints"]}
    for role, item in got.items():
        r = item["rss"]
        start = r.get("start")
        out[role] = {"rss_start_kib": start, "rss_end_kib": r.get("end"),
                     "rss_peak_kib": max(r.get("peak", 0), r.get("end", 0)) if start else None,
                     "growth_pct": round(100.0 * (r["end"] - start) / start, 2)
                     if start else None,
                     "peak_growth_pct": round(100.0 * (max(r.get("peak", 0), r["end"]) - start)
                                              / start, 2) if start else None}
    return out


def _run_engine(cfg):
    ctx = mp.get_context("fork")
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    q = ctx.Queue()
    s = ctx.Process(target=_engine_side, args=("secondary", lsock, cfg, q))
    s.start()
    p = ctx.Process(target=_engine_side, args=("primary", port, cfg, q))
    t0 = time.perf_counter()
    p.start()
    got = {}
    try:
        for _ in range(2):
            item = q.get(timeout=cfg["seconds"] + 60)
            got[item["role"]] = item
    finally:
        elapsed = time.perf_counter() - t0
        p.join(10)
        s.join(10)
        if s.is_alive():
            s.kill()
        lsock.close()
    res = got["primary"]
    begins = [t for ph, t in res["marks"] if ph == "begin"]
    commits = [t for ph, t in res["marks"] if ph == "commit"]
    lat = [c - b for b, c in zip(begins, commits, strict=False)]
    span = (commits[-1] - begins[0]) / 1000 if len(commits) > 1 else elapsed
    n = res["checkpoints"]
    sides = {role: _cpu_us(got[role]["cpu_s"], got[role]["cpu_checkpoints"])
             if got[role]["cpu_checkpoints"] else None for role in ("primary", "secondary")}
    return {"checkpoints": n, "rate": len(commits) / span if span else 0,
            "latency_ms": statistics.median(lat) if lat else None, "lat": lat,
            **_side_cpu(sides["primary"], sides["secondary"])}


def _side_cpu(primary_us: float | None, secondary_us: float | None) -> dict:
    """CPU µs per checkpoint: both sides together (``cpu_us``) and each one's:
    the side that spends more is the one a run's rate waits for when the two
    run on two CPUs."""
    both = primary_us + secondary_us if primary_us is not None and secondary_us is not None \
        else None
    return {"cpu_us": both, "primary_cpu_us": primary_us, "secondary_cpu_us": secondary_us}


def _cpu_us(cpu_s: float, n: int) -> float | None:
    """CPU µs per checkpoint (of the processes `cpu_s` counts): unlike a rate it
    does not depend on what else the machine runs."""
    return 1e6 * cpu_s / n if n else None


#: core_cpu_us runs this much CPU time before it measures: on the development VM a
#: CPU coming out of idle ran the core at about half speed for its first ~0.15 s of
#: work (47 µs a checkpoint for the first 3,000, then 23), which the engine runs
#: (seconds at full load) are long past
WARM_UP_S = 0.3


def core_cpu_us(pages: int = 0, blob: int = 1, n: int = 2000, max_s: float = 5.0,
                warm_s: float = WARM_UP_S) -> float:
    """CPU µs per checkpoint of the sans-IO core alone, both sides together: the
    two endpoints of the bench, configured alike, in one process, each one's
    bytes handed to the other directly (no sockets, no loop, no driver), after
    `warm_s` of CPU time.  What an engine run costs beyond this is the engine's
    (loop, syscalls, driver)."""
    from protocol.core import dialects
    from protocol.core.endpoint import make_endpoint
    from protocol.core.guestport import NullGuest
    p = make_endpoint("primary", dialects.QEMU, guest=BenchGuest(pages, blob),
                      checkpoint_delay_ms=0, save_ms=0)
    s = make_endpoint("secondary", dialects.QEMU, guest=NullGuest(),
                      checkpoint_delay_ms=0, save_ms=0)
    for ep in (p, s):       # the events the engine runs build (Engine(wire_events=False))
        ep.out.detail, ep.out.lean = False, True
    now = 0.0

    def hand(a, b) -> bool:
        segs = a.segments_to_send()
        a.take_events()
        if not segs:
            return False
        b.receive_data(b"".join([x.data for x in segs]), now)
        return True
    p.start(now)
    s.start(now)
    first = None
    c0 = t_end = 0.0
    warm_until = _cpu_s() + warm_s
    # bounded: a checkpoint takes a few steps, and the warm-up fewer than a million
    for _ in range(50 * n + 1_000_000):
        if first is None and p.checkpoint >= 2 and _cpu_s() >= warm_until:   # warmed up
            first, c0 = p.checkpoint, _cpu_s()
            t_end = c0 + max_s
        if first is not None and (p.checkpoint - first >= n or _cpu_s() > t_end):
            break
        if not (hand(p, s) | hand(s, p)):
            dl = p.next_deadline()
            if dl is None:
                raise RuntimeError(f"core-only exchange stalled in {p.state}/{s.state}")
            now = max(now, dl)
            p.handle_timer(now)
    done = p.checkpoint - (first or 0)
    if not done:
        raise RuntimeError("core-only exchange committed no checkpoint")
    return 1e6 * (_cpu_s() - c0) / done


# ------------------------------------------------------------------ baselines
def _raw_side(role, lsock_or_port, cfg, q):
    _pin(cfg["cpu"][0 if role == "primary" else 1])
    if role == "secondary":
        lsock_or_port.setblocking(True)
        c, _ = lsock_or_port.accept()
    else:
        c = socket.create_connection(("127.0.0.1", lsock_or_port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if cfg["nodelay"] else 0)
    # raw_chunk: read into a buffer of this many bytes, over and over (as the
    # engine's receive buffer), instead of one buffer as big as the payload
    chunk = cfg.get("raw_chunk") or max(cfg["payload"], 16)
    big = bytearray(chunk)
    view = memoryview(big)

    def recv_exact(n):
        got = 0
        while got < n:
            k = c.recv_into(view[got:n] if n <= chunk else view[:min(n - got, chunk)])
            if not k:
                raise EOFError
            got += k
    req, rep, snd = struct.pack(">I", 1), struct.pack(">I", 2), struct.pack(">I", 3)
    size = struct.pack(">IQ", 4, cfg["payload"])
    done = struct.pack(">I", 5) + struct.pack(">I", 6)
    payload = bytes(cfg["payload"])
    head = snd + size
    if len(payload) <= 64 << 10:
        head, payload = head + payload, b""     # one write, as the engine coalesces
    lat, n = [], 0
    cpu0 = _cpu_s()
    t_first = t_last = None
    t_end = time.monotonic() + cfg["seconds"]
    try:
        while True:
            if role == "primary":
                if time.monotonic() > t_end or n >= cfg["max_cp"]:
                    break
                if cfg["delay_ms"]:
                    time.sleep(cfg["delay_ms"] / 1000)
                t = time.perf_counter()
                if t_first is None:
                    t_first = t
                c.sendall(req)
                recv_exact(4)
                c.sendall(head)
                if payload:
                    c.sendall(payload)      # no 64 MiB concatenation (the engine writev's)
                recv_exact(8)
                t_last = time.perf_counter()
                lat.append((t_last - t) * 1000)
                n += 1
            else:
                recv_exact(4)
                c.sendall(rep)
                recv_exact(16)
                if cfg["payload"]:
                    recv_exact(cfg["payload"])
                c.sendall(done)
    except (EOFError, OSError):
        pass
    c.close()
    q.put({"role": role, "n": n, "lat": lat, "cpu_s": _cpu_s() - cpu0,
           "span": (t_last - t_first) if n > 1 else None})


def _run_raw(cfg):
    ctx = mp.get_context("fork")
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    q = ctx.Queue()
    s = ctx.Process(target=_raw_side, args=("secondary", lsock, cfg, q))
    s.start()
    p = ctx.Process(target=_raw_side, args=("primary", port, cfg, q))
    p.start()
    got = {}
    try:
        for _ in range(2):
            item = q.get(timeout=cfg["seconds"] + 60)
            got[item["role"]] = item
    finally:
        p.join(10)
        s.join(10)
        if s.is_alive():
            s.kill()
        lsock.close()
    res = got["primary"]
    lat = res["lat"]
    # wall clock from the first request to the last vmstate-loaded, as the
    # engine's rate (first begin .. last commit): loop overhead included
    total = res["span"] or sum(lat) / 1000
    return {"rate": len(lat) / total if total else 0,
            "latency_ms": statistics.median(lat) if lat else None,
            **_side_cpu(_cpu_us(res["cpu_s"], res["n"]),
                        _cpu_us(got["secondary"]["cpu_s"], res["n"]))}


def _vmstate_bytes(pages: int, blob: int) -> int:
    """Bytes the engine's primary sends per checkpoint besides the messages: the
    RAM part (after vmstate-send) and the device blob.  The raw peers send as
    many after vmstate-size, so both move the same bytes."""
    from protocol.migration.stream import encode_ram_part
    g = BenchGuest(pages, blob)
    g.initial_stream()
    return len(encode_ram_part(g.collect_dirty_pages(), g.ram_context)) + len(g.save_devices())


def _cfg(**kw):
    base = dict(cpu=(0, 1), pages=0, blob=1, delay_ms=0, nodelay=True, coalesce=True,
                seconds=2.0, max_cp=10 ** 9, payload=0, uvloop=True)
    base.update(kw)
    return base


def _median(runs, key):
    vals = [r[key] for r in runs if r[key] is not None]
    return statistics.median(vals) if vals else None


def _cpu_fields(eng, raw, core_us) -> dict:
    """CPU per checkpoint (both sides, medians): the engine run's, the raw peers',
    the core's alone in one process (hot), and what the two-process run costs
    beyond that: syscalls (which the raw peers pay too), the loop and the engine,
    and the core's own cache misses when it runs a wake-up at a time."""
    e, b = _median(eng, "cpu_us"), _median(raw, "cpu_us")
    out = {"cpu_us": _round(e), "baseline_cpu_us": _round(b), "core_cpu_us": _round(core_us)}
    for side in ("primary", "secondary"):
        out[f"{side}_cpu_us"] = _round(_median(eng, f"{side}_cpu_us"))
        out[f"baseline_{side}_cpu_us"] = _round(_median(raw, f"{side}_cpu_us"))
    if e is not None and core_us is not None:
        out["beyond_core_cpu_us"] = _round(e - core_us)
    return out


def _round(x, nd: int = 1):
    return None if x is None else round(x, nd)


def _floor_fields(floor: list[dict], base: float | None, key: str) -> dict:
    """The engine's floor (`enginefloor.FloorEndpoint`: the same wire bytes, no
    core) in the same run: what the engine, the loop and the kernel allow."""
    f = _median(floor, key)
    if f is None or not base:
        return {}
    return {"floor": _round(f, 3), "floor_ratio": round(f / base, 3),
            "floor_cpu_us": _round(_median(floor, "cpu_us"))}


def bench(rounds: int = 3, seconds: float = 2.0) -> list[dict]:
    rows = []
    core0 = core_cpu_us(0, 1)
    small = _vmstate_bytes(0, 1)
    for label, cpus in (("control rate, 1 CPU", (0, 0)), ("control rate, 2 CPUs", (0, 1))):
        eng, raw, floor = [], [], []
        for _ in range(rounds):     # interleaved: a change in the machine's load hits all
            eng.append(_run_engine(_cfg(cpu=cpus, seconds=seconds)))
            raw.append(_run_raw(_cfg(cpu=cpus, seconds=seconds, payload=small)))
            floor.append(_run_engine(_cfg(cpu=cpus, seconds=seconds, payload=small,
                                          floor=True)))
        e, b = _median(eng, "rate"), _median(raw, "rate")
        rows.append({"name": label, "unit": "checkpoints/s", "value": round(e, 1),
                     "baseline": round(b, 1), "baseline_name": "blocking raw sockets",
                     "ratio": round(e / b, 3) if b else None,
                     **_cpu_fields(eng, raw, core0), **_floor_fields(floor, b, "rate")})
    mib = 64
    pages = mib * 1024 * 1024 // PAGE_SIZE
    big = _vmstate_bytes(pages, 1)
    eng, raw, floor = [], [], []
    for _ in range(rounds):
        eng.append(_run_engine(_cfg(pages=pages, seconds=30, max_cp=3)))
        # the raw secondary reads into a buffer as big as the engine's (not one
        # of 64 MiB, which costs it cache misses): the stronger baseline
        raw.append(_run_raw(_cfg(payload=big, seconds=30, max_cp=3,
                                 raw_chunk=RECV_BUFFER_BYTES)))
        floor.append(_run_engine(_cfg(payload=big, seconds=30, max_cp=3, floor=True)))
    el, bl = _median(eng, "latency_ms"), _median(raw, "latency_ms")
    e, b = mib / (el / 1000), mib / (bl / 1000)
    fl = _median(floor, "latency_ms")
    rows.append({"name": "bulk 64 MiB of pages per checkpoint", "unit": "MiB/s",
                 "value": round(e, 1), "baseline": round(b, 1),
                 "baseline_name": "raw sendall/recv_into", "ratio": round(e / b, 3),
                 **_cpu_fields(eng, raw, core_cpu_us(pages, 1, n=3)),
                 **({"floor": round(mib / (fl / 1000), 1), "floor_ratio": round(bl / fl, 3),
                     "floor_cpu_us": _round(_median(floor, "cpu_us"))} if fl else {})})
    cap = dict(pages=40, blob=14 << 10, delay_ms=100, seconds=30, max_cp=12)
    raw_payload = _vmstate_bytes(40, 14 << 10)
    variants = (("capture workload latency, TCP_NODELAY", dict(nodelay=True)),
                ("capture workload latency, Nagle on, one write per wake-up",
                 dict(nodelay=False)),
                ("capture workload latency, Nagle on, QEMU-like separate writes",
                 dict(nodelay=False, coalesce=False)),
                ("capture workload latency, Nagle on, QEMU-like writes + 1 ms "
                 "device save", dict(nodelay=False, coalesce=False, save_ms=1)))
    base, cap_floor = [], []
    runs: dict[str, list] = {label: [] for label, _ in variants}
    for _ in range(rounds):     # interleaved: the baseline, the floor, every variant
        base.append(_run_raw(_cfg(payload=raw_payload, delay_ms=100, seconds=30, max_cp=12)))
        cap_floor.append(_run_engine(_cfg(payload=raw_payload, delay_ms=100, seconds=30,
                                          max_cp=12, floor=True)))
        for label, kw in variants:
            runs[label].append(_run_engine(_cfg(**cap, **kw)))
    b = _median(base, "latency_ms")
    core_cap = core_cpu_us(40, 14 << 10, n=500)
    rows.append(_hot_capture_row(rounds, raw_payload, core_cap))
    for label, kw in variants:
        e = _median(runs[label], "latency_ms")
        rows.append({"name": label, "unit": "ms/checkpoint", "value": round(e, 3),
                     "baseline": round(b, 3), "baseline_name": "raw blocking peers, NODELAY",
                     "ratio": round(e / b, 3) if b else None,
                     "qemu_7_2_ms": 88, **_cpu_fields(runs[label], base, core_cap),
                     **(_floor_fields(cap_floor, b, "latency_ms") if kw == {"nodelay": True}
                        else {})})
    return rows


def _hot_capture_row(rounds: int, raw_payload: int, core_us: float,
                     checkpoints: int = 200) -> dict:
    """The capture workload back to back (checkpoint delay 0, NODELAY): no idle
    gap, so neither side's caches go cold between checkpoints.  Beside the
    100 ms-paced rows it splits their cost: what is left here is the path's own
    work; what those add is the cold start of every wake-up."""
    hot = dict(delay_ms=0, seconds=30, max_cp=checkpoints)
    eng, raw, floor = [], [], []
    for _ in range(rounds):
        raw.append(_run_raw(_cfg(payload=raw_payload, **hot)))
        floor.append(_run_engine(_cfg(payload=raw_payload, floor=True, **hot)))
        eng.append(_run_engine(_cfg(pages=40, blob=14 << 10, **hot)))
    e, b = _median(eng, "latency_ms"), _median(raw, "latency_ms")
    return {"name": "capture workload latency, TCP_NODELAY, back to back (hot)",
            "unit": "ms/checkpoint", "value": round(e, 3), "baseline": round(b, 3),
            "baseline_name": "raw blocking peers, NODELAY, back to back",
            "ratio": round(e / b, 3) if b else None, **_cpu_fields(eng, raw, core_us),
            **_floor_fields(floor, b, "latency_ms")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="colo bench engine", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int_in(1, 1000), default=3)
    ap.add_argument("--seconds", type=number_in(0.1, 3600.0), default=2.0)
    ap.add_argument("--soak", type=number_in(1.0, 86_400.0), metavar="SECONDS", default=0,
                    help="only the soak: both nodes at full rate; RSS growth (goal < 5 %%)")
    ap.add_argument("--soak-workload", choices=list(SOAK_WORKLOADS), default="null",
                    help="the soak's checkpoint: null guest, or the capture's 40 pages + "
                         "14 KiB blob (default %(default)s)")
    args = ap.parse_args(argv)
    tune_process()     # as `colo` does (python -m runs come here directly)
    if args.soak:
        res = soak(args.soak, args.soak_workload)
        if args.json:
            print(json.dumps({"soak": res}, indent=1))
        else:
            print(f"soak {res['seconds']:.0f} s, {res['workload']} workload: "
                  f"{res['checkpoints']} checkpoints")
            for role in ("primary", "secondary"):
                r = res[role]
                print(f"  {role:9s} RSS {r['rss_start_kib']} KiB -> {r['rss_end_kib']} KiB "
                      f"({r['growth_pct']} %; peak {r['rss_peak_kib']} KiB, "
                      f"{r['peak_growth_pct']} %; goal < 5 %)")
        return 0
    from protocol.drivers.tcp import loop_name, new_loop
    lp = new_loop()
    name = loop_name(lp)
    lp.close()
    rows = bench(args.rounds, args.seconds)
    if args.json:
        print(json.dumps({"loop": name, "cpus": os.cpu_count(), "results": rows}, indent=1))
    else:
        print(f"loop: {name}, cpus: {os.cpu_count()}, medians of {args.rounds} rounds")
        print(f"{'benchmark':62} {'value':>10} {'baseline':>10} {'ratio':>7}  unit")
        for r in rows:
            print(f"{r['name']:62} {r['value']:>10} {r['baseline']:>10} {r['ratio']:>7}  "
                  f"{r['unit']} (baseline: {r['baseline_name']})")
        print("CPU µs per checkpoint, both sides (load-independent): engine run = core "
              "alone in one process + the rest (syscalls, loop, engine, cold caches); raw peers")
        for r in rows:
            print(f"  {r['name']:60} engine {r['cpu_us']} = core {r['core_cpu_us']} + "
                  f"{r.get('beyond_core_cpu_us')}; raw {r['baseline_cpu_us']}")
        print("the same per side, primary / secondary (on two CPUs the busier side sets "
              "the pace)")
        for r in rows:
            print(f"  {r['name']:60} engine {r['primary_cpu_us']} / {r['secondary_cpu_us']}; "
                  f"raw {r['baseline_primary_cpu_us']} / {r['baseline_secondary_cpu_us']}")
        print("the engine's floor: the same engine and wire bytes with a minimal endpoint "
              "(no core), same run")
        for r in rows:
            if "floor" in r:
                print(f"  {r['name']:60} {r['floor']:>10} {r['unit']}, ratio "
                      f"{r['floor_ratio']}, CPU µs {r['floor_cpu_us']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
