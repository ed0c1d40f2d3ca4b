"""End to end with two real QEMUs (Debian 12's 7.2, TCG) through the live proxy.

secondary (-incoming defer) <- Proxy <- primary (migrate), driven over QMP
exactly as /work/shared/qemu-colo/run1 (README "How to reproduce" steps 3-4):
x-colo, x-checkpoint-delay 1000, migrate-incoming, migrate.  The proxy must
decode >= 5 checkpoints live with the guest's page-count shape, then
``close@checkpoint-request#6`` cuts the pair: both sides emit COLO_EXIT
reason "error" and stay in COLO until x-colo-lost-heartbeat fails each over.
Every QEMU is SIGKILLed in teardown.  Skips without x86_64 / QEMU / as+ld+gcc.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from protocol.drivers.proxy import Proxy
from tests.qemu._qemu import CAP, REAL_QEMU, Side, free_port, stall_report

pytestmark = REAL_QEMU
FAULT = "close@checkpoint-request#6"

def _committed(events) -> list[dict]:
    return [e.payload() for e in events if e.kind == "checkpoint" and e.payload()["phase"] == "commit"]


async def _scenario(work: Path, art: dict, procs: list) -> dict:
    events: list = []
    sport = free_port()
    sec = Side("secondary", work, art, procs)
    pri = Side("primary", work, art, procs)
    arrived = asyncio.Event()

    def on_event(ev) -> None:
        events.append(ev)
        arrived.set()
    proxy = Proxy(("127.0.0.1", 0), ("127.0.0.1", sport), [FAULT], on_event,
                      str(work / "proxy.jsonl"))
    report: dict = {"fault": FAULT}
    try:
        await sec.connect()
        await pri.connect()
        report["qemu"] = (await pri.ex("query-version"))["package"]
        await sec.ex("migrate-set-capabilities", CAP)
        await sec.ex("migrate-incoming", {"uri": f"tcp:127.0.0.1:{sport}"})
        pport = await proxy.start()
        await asyncio.sleep(2)    # behaviour, not a wait: the guest runs on the primary first
        await pri.ex("migrate-set-capabilities", CAP)
        await pri.ex("migrate-set-parameters", {"x-checkpoint-delay": 1000})
        await pri.ex("migrate", {"uri": f"tcp:127.0.0.1:{pport}"})
        t0 = time.monotonic()
        while len(_committed(events)) < 5:
            if time.monotonic() - t0 > 30:
                raise AssertionError(
                    f"only {len(_committed(events))} checkpoints in 30 s: "
                    f"{[(e.kind, e.payload()) for e in events][-8:]}\nprimary threads:\n"
                    f"{stall_report(pri.proc)}\nsecondary threads:\n"
                    f"{stall_report(sec.proc)}")
            arrived.clear()                    # wake on the proxy's next event
            try:
                await asyncio.wait_for(arrived.wait(), 1.0)
            except TimeoutError:
                pass
        report["colo_status_running"] = {
            "primary": await pri.ex("query-colo-status"),
            "secondary": await sec.ex("query-colo-status")}
        await pri.wait_event("COLO_EXIT", 20)
        await sec.wait_event("COLO_EXIT", 10)
        await asyncio.sleep(0.5)   # observation window: the statuses stay after COLO_EXIT
        report["after_fault"] = {s.name: {"colo": await s.ex("query-colo-status"),
                                          "migrate": (await s.ex("query-migrate"))["status"],
                                          "status": (await s.ex("query-status"))["status"]}
                                 for s in (pri, sec)}
        await sec.ex("x-colo-lost-heartbeat")
        await sec.wait_failed_over()
        await pri.ex("x-colo-lost-heartbeat")
        await pri.wait_failed_over()
        report["after_failover"] = {s.name: {"colo": await s.ex("query-colo-status"),
                                             "migrate": (await s.ex("query-migrate"))["status"],
                                             "status": (await s.ex("query-status"))["status"]}
                                    for s in (pri, sec)}
        report["qmp_events"] = {s.name: [e["event"] if e["event"] != "COLO_EXIT" else
                                         {"COLO_EXIT": e["data"]} for e in s.events
                                         if e["event"] not in ("STOP", "RESUME")]
                                for s in (pri, sec)}
    finally:
        for s in (pri, sec):
            await s.close()
        await proxy.close()
    report["proxy_events"] = events
    return report


def test_real_qemu_colo_through_live_proxy(tmp_path, artifacts, procs):
    t_start = time.monotonic()
    rep = asyncio.run(asyncio.wait_for(_scenario(tmp_path, artifacts, procs), 180))
    events = rep.pop("proxy_events")
    ini = next(e.payload() for e in events if e.kind == "recv-initial")
    assert ini["enable_colo"] and ini["device_sections"] >= 30
    commits = _committed(events)
    assert len(commits) == 5, commits      # the 6th request never crossed the proxy
    for c in commits[1:]:
        # 1 vga + 2 (data, stack) + 8 HOT + 2k SWEEP + 8 ZERO, ZERO as zero pages or full
        assert c["zero"] in (0, 8) and c["xbzrle"] == 0, c
        rest = c["full"] + c["zero"] - 19
        assert rest % 2 == 0 and 2 * 5 <= rest <= 2 * 12, c
        assert c["sections"] == ini["device_sections"] and c["device_bytes"] > 0, c
    faults = [e.payload() for e in events if e.kind == "fault"]
    assert [f["spec"] for f in faults] == [FAULT]
    assert "error" not in [e.kind for e in events]
    for side, mode in (("primary", "primary"), ("secondary", "secondary")):
        assert rep["colo_status_running"][side]["mode"] == mode
        exits = [e for e in rep["qmp_events"][side] if isinstance(e, dict)]
        assert exits and exits[0]["COLO_EXIT"] == {"mode": mode, "reason": "error"}, exits
        # COLO_EXIT "error" does not change query-colo-status (README)
        assert rep["after_fault"][side]["colo"]["mode"] == mode
        assert rep["after_fault"][side]["migrate"] == "colo"
        assert rep["after_failover"][side]["colo"] == {
            "mode": "none", "last-mode": mode, "reason": "request"}
        assert rep["after_failover"][side]["migrate"] == "completed"
        assert rep["after_failover"][side]["status"] == "running"
    head = json.loads((tmp_path / "proxy.jsonl").read_text().splitlines()[0])
    assert head["format"] == "colo-proxy-log" and head["faults"] == [FAULT]
    rep["checkpoints"] = commits
    rep["seconds"] = round(time.monotonic() - t_start, 1)
    print(json.dumps(rep, indent=1, default=str))

