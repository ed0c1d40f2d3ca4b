"""The testbed's secondary as the live peer of a real QEMU 7.2 primary.

A real primary (Debian's QEMU, TCG, the tiny guest, the BQL shim) migrates with
x-colo into `colo node secondary --dialect qemu --guest mirror`, a separate
process.  The node follows the initial migration, answers every checkpoint,
and its mirror of the guest's RAM must show what the guest wrote — checked
through the node's QMP (`x-testbed-read-ram`) against the guest's own rules
(tools/qemu/guest.S): in step s, HOT = SWEEP = (s+1)|0x5A000000, ZERO is that
or 0 by bit 4 of s, and the VGA text says "COLO step s".  Then the node is
SIGKILLed: the primary reports COLO_EXIT error and, after the operator's
x-colo-lost-heartbeat, runs on alone.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from protocol.drivers.qmpclient import QmpClient
from tests.qemu._qemu import CAP, REAL_QEMU, Side, free_port, stall_report
from tests.tcp._nodes import unix_listening

pytestmark = REAL_QEMU
ROOT = Path(__file__).resolve().parents[2]
HOT, SWEEP, ZERO = 0x400000, 0x800000, 0xC00000


def _node(work: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "colo_tui", "node", "secondary", "--dialect", "qemu",
           "--guest", "mirror", "--listen", f"127.0.0.1:{port}",
           "--qmp", f"unix:{work / 'node.qmp'}", "--record", str(work / "node.jsonl")]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=open(work / "node.out", "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _words(hexdata: str, stride: int) -> list[int]:
    raw = bytes.fromhex(hexdata)
    return [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), stride)]


def _read(q: QmpClient, offset: int, size: int, block: str = "pc.ram") -> dict:
    return q.execute("x-testbed-read-ram", {"block": block, "offset": offset, "size": size})


def _vga_step(read: dict) -> int | None:
    text = bytes.fromhex(read["data"])[0::4].decode("ascii", "replace")
    m = re.match(r"COLO step ([0-9A-F]{8})", text)
    return int(m.group(1), 16) if m else None


def _snapshot(q: QmpClient, vga: str) -> tuple[int, dict] | None:
    """One consistent view of the mirror (every read from the same checkpoint)."""
    reads = {"vga": _read(q, 0, 80 * 4, vga)}
    s = _vga_step(reads["vga"]) or 0
    reads |= {"hot": _read(q, HOT, 8 * 4096), "zero": _read(q, ZERO, 8 * 4096),
              "sweep0": _read(q, SWEEP + 4096 * ((2 * s) % 256), 4),
              "sweep1": _read(q, SWEEP + 4096 * ((2 * s + 1) % 256), 4)}
    ns = {r["checkpoint"] for r in reads.values()}
    return (ns.pop(), reads) if len(ns) == 1 else None


def _check_guest_rules(reads: dict) -> str | None:
    """None if the mirror is a state the guest can be in between two steps."""
    s = _vga_step(reads["vga"])
    if s is None:
        return f"VGA text is {bytes.fromhex(reads['vga']['data'])[0::4][:40]!r}"
    value = (s + 1) | 0x5A000000
    hot = _words(reads["hot"]["data"], 4096)
    zero = _words(reads["zero"]["data"], 4096)
    want_zero = value if s & 16 else 0
    if hot != [value] * 8:
        return f"step {s:#x}: HOT {[hex(w) for w in hot]} != {value:#x}"
    if zero != [want_zero] * 8:
        return f"step {s:#x}: ZERO {[hex(w) for w in zero]} != {want_zero:#x}"
    for i in (0, 1):
        got = _words(reads[f"sweep{i}"]["data"], 4)[0]
        if got != value:
            return f"step {s:#x}: SWEEP page {(2 * s + i) % 256} = {got:#x} != {value:#x}"
    return None


async def _scenario(work: Path, art: dict, procs: list) -> dict:
    port = free_port()
    node = _node(work, port)
    procs.append(node)
    pri = Side("primary", work, art, procs)
    rep: dict = {}
    try:
        await pri.connect()
        deadline = time.monotonic() + 20
        # listening, not just there: the file exists from bind(), a moment before
        # listen(), and a connection in between is refused
        while not unix_listening(work / "node.qmp", node.pid):
            assert node.poll() is None, (work / "node.out").read_text()
            assert time.monotonic() < deadline, "the node opened no QMP socket"
            await asyncio.sleep(0.05)         # polling: another process's socket
        q = QmpClient(f"unix:{work / 'node.qmp'}", timeout=5)
        await pri.ex("migrate-set-capabilities", CAP)
        await pri.ex("migrate-set-parameters", {"x-checkpoint-delay": 1000})
        await pri.ex("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        t0 = time.monotonic()
        while (info := await asyncio.to_thread(q.execute, "x-testbed-query-guest"))[
                "checkpoint"] < 5:
            if time.monotonic() - t0 > 40:
                raise AssertionError(f"{info}\nprimary threads:\n{stall_report(pri.proc)}\n"
                                     f"{(work / 'node.out').read_text()[-2000:]}")
            await asyncio.sleep(0.2)          # polling QMP: no event carries it
        rep["info"] = info
        rep["colo_primary"] = await pri.ex("query-colo-status")
        rep["colo_node"] = await asyncio.to_thread(q.execute, "query-colo-status")
        vga = next(b["name"] for b in info["blocks"] if b["name"].endswith("vga.vram"))
        rep["checks"] = []
        for _ in range(3):                     # a checkpoint may land mid-step: try 3
            snap = None
            for _ in range(50):                # reads that straddle a flush: read again
                snap = await asyncio.to_thread(_snapshot, q, vga)
                if snap is not None:
                    break
            assert snap is not None, "50 reads in a row straddled a checkpoint"
            n, reads = snap
            why = _check_guest_rules(reads)
            rep["checks"].append((n, why))
            if why is None:
                break
            await asyncio.sleep(1.1)           # behaviour: the guest's next step
        rep["bad_read"] = await asyncio.to_thread(_bad_read, q)
        q.close()
        node.send_signal(signal.SIGKILL)
        await pri.wait_event("COLO_EXIT", 20)
        await pri.ex("x-colo-lost-heartbeat")
        await pri.wait_failed_over()
        rep["after"] = {"colo": await pri.ex("query-colo-status"),
                        "status": (await pri.ex("query-status"))["status"],
                        "exit": next(e["data"] for e in pri.events
                                     if e["event"] == "COLO_EXIT")}
    finally:
        await pri.close()
    return rep


def _bad_read(q: QmpClient) -> str:
    from protocol.errors import QmpCommandError
    try:
        q.execute("x-testbed-read-ram", {"block": "nope", "offset": 0, "size": 1})
    except QmpCommandError as exc:
        return exc.desc
    return "accepted"


def test_testbed_secondary_follows_a_real_qemu_primary(tmp_path, artifacts, procs):
    rep = asyncio.run(asyncio.wait_for(_scenario(tmp_path, artifacts, procs), 180))
    info = rep["info"]
    assert info["kind"] == "MirrorGuest" and info["checkpoint"] >= 5
    assert {"name": "pc.ram", "size": 128 << 20} in info["blocks"]
    assert info["devices"] >= 30 and info["screen"].startswith("COLO step "), info
    assert rep["colo_primary"]["mode"] == "primary"
    assert rep["colo_node"]["mode"] == "secondary"
    assert rep["checks"][-1][1] is None, rep["checks"]
    assert "no RAM block 'nope'" in rep["bad_read"]
    assert rep["after"]["exit"] == {"mode": "primary", "reason": "error"}
    assert rep["after"]["colo"] == {"mode": "none", "last-mode": "primary",
                                    "reason": "request"}
    assert rep["after"]["status"] == "running"
    log = [json.loads(line) for line in (tmp_path / "node.jsonl").read_text().splitlines()]
    assert log[0]["format"] == "colo-node-log" and log[0]["params"]["guest"] == "mirror"
    init = next(e["data"] for e in log if e.get("kind") == "action"
                and e["data"].get("name") == "load-initial")
    assert init["machine"].startswith("pc-i440fx") and init["device_sections"] >= 30
    flushes = [e["data"] for e in log if e.get("kind") == "action"
               and e["data"].get("name") == "flush-cache"]
    assert len(flushes) >= 5
    steps = []
    for f in flushes:
        # every checkpoint: the VGA page and 18 + 2k pc.ram pages (see README "The guest")
        assert f["blocks"]["0000:00:02.0/vga.vram"] == 1, f
        rest = f["blocks"]["pc.ram"] - 18
        assert rest % 2 == 0 and 2 * 5 <= rest <= 2 * 12, f
        steps.append(int(re.match(r"COLO step ([0-9A-F]{8})", f["screen"]).group(1), 16))
    # the mirror moves with the guest: ~9-10 steps between 1 s checkpoints
    assert all(5 <= b - a <= 12 for a, b in zip(steps, steps[1:], strict=False)), steps
    print(json.dumps(rep, indent=1, default=str))


async def _tui_scenario(work: Path, art: dict, procs: list) -> dict:
    from colo_tui.session.live import live_controller
    from colo_tui.session.live_sources import PeerFeed
    from colo_tui.tui.app import ColoApp
    from colo_tui.tui.widgets import SidePanel
    from protocol.sim.config import SimConfig

    port = free_port()
    c = live_controller(PeerFeed(SimConfig(), f"127.0.0.1:{port}"))
    pri = Side("primary", work, art, procs)
    seen: list[str] = []
    try:
        await pri.connect()
        await pri.ex("migrate-set-capabilities", CAP)
        await pri.ex("migrate-set-parameters", {"x-checkpoint-delay": 1000})
        app = ColoApp(c)
        async with app.run_test(size=(140, 44)) as pilot:
            await pri.ex("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
            await pilot.press("space")                      # follow the live events
            t0 = time.monotonic()
            while time.monotonic() - t0 < 40:
                await pilot.pause(0.2)
                text = str(app.query_one("#secondary", SidePanel).render())
                m = re.search(r"COLO step ([0-9A-F]{8})", text)
                if m and (not seen or seen[-1] != m.group(1)):
                    seen.append(m.group(1))
                if len(seen) >= 3 and "flushed by ckpt" in text:
                    break
            primary_text = str(app.query_one("#primary", SidePanel).render())
            await pilot.press("space")
        return {"seen": seen, "secondary": text, "primary": primary_text,
                "checkpoint": c.status()["secondary"]["checkpoint"]}
    finally:
        c.close()
        await pri.close()


def test_tui_peer_shows_the_real_guest_change(tmp_path, artifacts, procs):
    """`colo tui --peer`: the secondary panel shows the real guest's VGA line and
    the pages each checkpoint flushed, changing from checkpoint to checkpoint."""
    rep = asyncio.run(asyncio.wait_for(_tui_scenario(tmp_path, artifacts, procs), 120))
    assert len(rep["seen"]) >= 3, rep
    steps = [int(s, 16) for s in rep["seen"]]
    assert steps == sorted(steps), rep
    assert "flushed by ckpt #" in rep["secondary"], rep["secondary"]
    assert rep["checkpoint"] >= 2
    assert re.search(r"ckpt\s+#[1-9]", rep["primary"]), rep["primary"]   # the primary's view
