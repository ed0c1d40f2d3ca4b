"""`colo import` on fresh real captures, not only run1.

Each case runs a real QEMU 7.2 pair directly (no proxy) while dumpcap records
loopback, with a different RAM size, checkpoint delay and way of ending the
pair, then imports the pcap and checks it against the guest's rules
(README "The guest": per checkpoint 1 VGA page + 2 data/stack + 8 HOT + 2 per
step SWEEP + 8 ZERO, zero pages or full) and against what the QMP side saw.
Skips without dumpcap (Debian: tshark) or without permission to capture.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.qemu._qemu import CAP, REAL_QEMU, Side, free_port

DUMPCAP = shutil.which("dumpcap")
pytestmark = [*REAL_QEMU,
              pytest.mark.skipif(DUMPCAP is None, reason="dumpcap not installed "
                                 "(Debian package tshark, .ci/qemu-setup.sh)")]
ROOT = Path(__file__).resolve().parents[2]
CASES = {
    # name: (-m, x-checkpoint-delay ms, seconds in COLO, how it ends)
    "256M-500ms-primary-failover": ("256M", 500, 4.0, "lost-heartbeat-primary"),
    "64M-2000ms-secondary-killed": ("64M", 2000, 7.0, "kill-secondary"),
}


def _start_capture(path: Path, port: int) -> subprocess.Popen:
    # -B 64: a 64 MiB kernel buffer; with dumpcap's default 2 MiB, the initial
    # migration's burst over loopback (64 KiB segments) lost packets on a busy machine
    cap = subprocess.Popen([DUMPCAP, "-q", "-i", "lo", "-f", f"tcp port {port}", "-s", "0",
                            "-B", "64", "-P", "-w", str(path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not path.exists() or path.stat().st_size == 0:
        if cap.poll() is not None:
            pytest.skip(f"dumpcap cannot capture here: {cap.stderr.read().strip()[:200]}")
        if time.monotonic() > deadline:
            cap.kill()
            pytest.skip("dumpcap wrote no pcap header within 10 s")
        time.sleep(0.05)       # polling: dumpcap is another process
    time.sleep(0.3)            # dumpcap says nothing when it captures: a margin, no condition
    return cap


async def _pair(work: Path, art: dict, procs: list, ram: str, delay: int, seconds: float,
                end: str) -> dict:
    port = free_port()
    cap = _start_capture(work / "capture.pcap", port)
    procs.append(cap)
    sec = Side("secondary", work, art, procs, ram=ram)
    pri = Side("primary", work, art, procs, ram=ram)
    rep: dict = {}
    try:
        await sec.connect()
        await pri.connect()
        await sec.ex("migrate-set-capabilities", CAP)
        await sec.ex("migrate-incoming", {"uri": f"tcp:127.0.0.1:{port}"})
        await asyncio.sleep(1)    # behaviour, not a wait: the guest runs on the primary first
        await pri.ex("migrate-set-capabilities", CAP)
        await pri.ex("migrate-set-parameters", {"x-checkpoint-delay": delay})
        await pri.ex("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        await asyncio.sleep(seconds)           # behaviour: COLO runs this long
        if end == "lost-heartbeat-primary":
            await pri.ex("x-colo-lost-heartbeat")
            await pri.wait_failed_over()
            # the secondary first sees the link go (COLO_EXIT "error"), then the operator
            # fails it over, as in the documented run; a heartbeat sent before it saw
            # the link go makes its failover a requested one (COLO_EXIT "request": a CI
            # run lost that race)
            await sec.wait_event("COLO_EXIT", 10)
            await sec.ex("x-colo-lost-heartbeat")
            await sec.wait_failed_over()
        else:
            sec.proc.send_signal(signal.SIGKILL)
            await pri.wait_event("COLO_EXIT", delay / 1000 + 10)
            await pri.ex("x-colo-lost-heartbeat")
            await pri.wait_failed_over()
        await pri.wait_event("COLO_EXIT", 10)
        rep["exits"] = {s.name: [e["data"] for e in s.events if e["event"] == "COLO_EXIT"]
                        for s in (pri, sec)}
    finally:
        for s in (pri, sec):
            await s.close()
        await asyncio.sleep(0.5)   # a margin for dumpcap's last packets: it says nothing
        cap.send_signal(signal.SIGINT)
        cap.wait(10)
    return rep


@pytest.mark.parametrize("case", list(CASES))
def test_import_a_fresh_real_capture(case, tmp_path, artifacts, procs):
    ram, delay, seconds, end = CASES[case]
    rep = asyncio.run(asyncio.wait_for(
        _pair(tmp_path, artifacts, procs, ram, delay, seconds, end), 120))
    out = tmp_path / "cap.colo.jsonl"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "import", str(tmp_path / "capture.pcap"),
                        "-o", str(out), "--json"], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    ini = doc["initial"]
    mib = int(ram[:-1])
    assert ini["enable_colo"] and ini["machine"].startswith("pc-i440fx")
    assert {"idstr": "pc.ram", "used_length": mib << 20} in ini["blocks"], ini["blocks"]
    assert len(ini["device_sections"]) >= 30
    cps = doc["checkpoints"]
    complete = [c for c in cps if c["complete"]]
    assert len(complete) >= max(2, int(seconds * 1000 / (delay + 200)) - 1), \
        [(c["index"], c["complete"]) for c in cps]
    steps = delay / 100          # the guest steps every 100 ms while it runs
    for c in complete[1:]:
        assert c["zero_pages"] in (0, 8) and c["xbzrle_pages"] == 0, c
        rest = c["full_pages"] + c["zero_pages"] - 19
        assert rest % 2 == 0 and 0.5 * steps <= rest / 2 <= 1.3 * steps + 2, (steps, c)
        assert c["device_sections"] == len(ini["device_sections"]), c
        assert [m["msg"] for m in c["messages"]] == [
            "checkpoint-request", "checkpoint-reply", "vmstate-send", "vmstate-size",
            "vmstate-received", "vmstate-loaded"], c
        assert c["t_request"] < c["t_loaded"]
    gaps = [b["t_request"] - a["t_request"] for a, b in zip(complete, complete[1:], strict=False)]
    assert all(delay / 1000 * 0.8 < g < delay / 1000 + 1.0 for g in gaps), gaps
    ending = doc["end"]
    assert ending["last_checkpoint"] >= len(complete)
    if end == "kill-secondary":
        # the primary's next request meets a dead peer: the kernel answers with RST
        assert rep["exits"]["primary"] == [{"mode": "primary", "reason": "error"}], rep
        assert ending["rst"] or ending["fin"], ending
        assert any(e["side"] == "secondary" for e in ending["rst"] + ending["fin"]), ending
    else:
        # 7.2 reports a requested primary failover as "request", or "error" when its
        # race is lost (README: faithful quirks); the secondary sees the link go
        assert [e["mode"] for e in rep["exits"]["primary"]] == ["primary"], rep
        assert rep["exits"]["primary"][0]["reason"] in ("request", "error"), rep
        assert rep["exits"]["secondary"] == [{"mode": "secondary", "reason": "error"}], rep
        assert ending["kind"], ending
    print(case, json.dumps(rep), json.dumps({k: v for k, v in ending.items() if k != "note"}), len(complete))
    # the recording opens like any other and steps through the real session
    from protocol.record.format import read
    rec = read(str(out))
    assert rec.header.get("imported") and rec.events
