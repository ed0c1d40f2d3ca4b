"""The proxy's forwarding throughput: a bulk qemu-dialect stream (the simulator's
initial migration, then ~256 MiB of checkpoints of its largest RAM part and
device state) through `colo proxy`'s Proxy in a child process, to a sink.

    python -m tests.tcp._proxy_bench [--runs 5] [--against OTHER_CHECKOUT]

Prints MiB/s per run and the median; with --against, runs alternate between
the two checkouts (this one and OTHER_CHECKOUT, e.g. a tree with the old
liveproxy) and the ratio of the medians is printed.
"""
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STREAM = os.path.join(tempfile.gettempdir(), f"colo-proxy-bench-{os.getpid()}.bin")


def build() -> None:
    from protocol.core.dialects import QEMU
    from protocol.sim.config import SimConfig
    from protocol.sim.core import Simulation
    sim = Simulation(SimConfig(dialect="qemu", guest="model", checkpoints=3, seed=3, ram_mib=64))
    pieces = []
    send, flush = sim._send, sim._flush
    def _send(side, seg):
        if side == "primary":
            pieces.append((seg.point, bytes(seg.data)))
        return send(side, seg)
    def _flush(side, batch):
        if side == "primary":
            pieces.extend((g.point, bytes(g.data)) for g in batch)
        return flush(side, batch)
    sim._send, sim._flush = _send, _flush
    sim.run()
    initial = next(d for p, d in pieces if p == "initial")
    ram = max((d for p, d in pieces if p == "ram"), key=len)
    blob = max((d for p, d in pieces if p == "device-state"), key=len)
    cp = (QEMU.encode("checkpoint-request") + QEMU.encode("vmstate-send") + ram
          + QEMU.encode("vmstate-size", len(blob)) + blob)
    n = max(1, (256 << 20) // len(cp))
    data = initial + cp * n
    with open(STREAM, "wb") as fh:
        fh.write(data)
    print(f"stream: initial {len(initial)} B, ram part {len(ram)} B, {n} checkpoints, "
          f"{len(data) / (1 << 20):.1f} MiB", file=sys.stderr)

async def serve_proxy(sport):
    import importlib
    import importlib.util
    if importlib.util.find_spec("protocol.drivers.proxy") is not None:
        cls = importlib.import_module("protocol.drivers.proxy").Proxy
    else:       # a checkout from before the one proxy machine (issue 10)
        cls = importlib.import_module("protocol.drivers.liveproxy").LiveProxy
    px = cls(("127.0.0.1", 0), ("127.0.0.1", sport), [], None)
    port = await px.start()
    print(port, flush=True)
    await asyncio.wait_for(px.session_done.wait(), 600)
    await px.close()

async def measure(root):
    data = open(STREAM, "rb").read()
    got = 0
    done = asyncio.get_running_loop().create_future()
    async def sink(r, w):
        nonlocal got
        while chunk := await r.read(1 << 20):
            got += len(chunk)
        done.set_result(time.perf_counter())
        w.close()
    srv = await asyncio.start_server(sink, "127.0.0.1", 0)
    sport = srv.sockets[0].getsockname()[1]
    env = dict(os.environ, PYTHONPATH=root)
    proc = await asyncio.create_subprocess_exec(sys.executable, os.path.abspath(__file__),
                                                "proxy", str(sport), env=env,
                                                stdout=subprocess.PIPE)
    port = int((await proc.stdout.readline()).decode())
    r, w = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    mv = memoryview(data)
    for i in range(0, len(data), 1 << 20):
        w.write(mv[i:i + (1 << 20)])
        await w.drain()
    w.write_eof()
    t1 = await asyncio.wait_for(done, 600)
    w.close()
    await proc.wait()
    srv.close()
    assert got == len(data), (got, len(data))
    return len(data) / (1 << 20) / (t1 - t0)

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--against", metavar="CHECKOUT", help="another checkout to compare with")
    ap.add_argument("mode", nargs="?", default="run", help=argparse.SUPPRESS)
    ap.add_argument("port", nargs="?", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode == "proxy":
        asyncio.run(serve_proxy(args.port))
        return
    build()
    roots = {"this": HERE}
    if args.against:
        roots = {"before": os.path.abspath(args.against), "after": HERE}
    res = {k: [] for k in roots}
    try:
        for _ in range(max(1, min(args.runs, 50))):
            for k, root in roots.items():
                res[k].append(asyncio.run(measure(root)))
                print(k, f"{res[k][-1]:.1f} MiB/s", flush=True)
    finally:
        os.unlink(STREAM)
    med = {k: statistics.median(v) for k, v in res.items()}
    print("medians", {k: round(v, 1) for k, v in med.items()}, end="")
    print(f"; ratio after/before {med['after'] / med['before']:.3f}" if args.against else "")


if __name__ == "__main__":
    main()
