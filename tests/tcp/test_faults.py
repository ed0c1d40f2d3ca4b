"""Every fault kind through the proxy between two real nodes: a defined end."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from protocol.drivers.proxy import Proxy
from protocol.drivers.qmp import qmp_call
from tests.tcp._nodes import NodeProc, free_port

GONE = "gone"       # killed or exited
STOPPED = "stopped"
ERR = "ERROR"
IDLE = "IDLE"
# spec -> (primary end state(s), secondary end state(s), checkpoints keep going)
CASES = {
    "drop@checkpoint-request#2": ({"WAIT_REPLY"}, {IDLE}, False),
    "delay=200@vmstate-send#1": ({IDLE, "WAIT_REPLY", "WAIT_LOADED", "WAIT_RECEIVED"},
                                 {IDLE, "WAIT_SEND", "RECV_RAM"}, True),
    "corrupt@checkpoint-reply#1": ({ERR}, {"WAIT_SEND"}, False),
    "truncate@device-state#1": ({ERR}, {ERR}, False),
    "duplicate@vmstate-received#1": ({ERR}, {IDLE, ERR}, False),
    "close@vmstate-size#1": ({ERR}, {ERR}, False),
    "reset@checkpoint-request#2": ({ERR}, {ERR}, False),
    "unexpected=vmstate-loaded@vmstate-received#1": ({ERR}, {IDLE, ERR}, False),
    "value=7@checkpoint-request#1": ({"WAIT_REPLY", "WAIT_RECEIVED", ERR}, {ERR}, False),
    "partition=300@checkpoint-reply#1": ({IDLE, "WAIT_REPLY", "WAIT_RECEIVED", "WAIT_LOADED"},
                                         {IDLE, "WAIT_SEND", "RECV_RAM"}, True),
    "kill-primary@vmstate-send#1": ({GONE}, {ERR}, False),
    "kill-secondary@checkpoint-reply#1": ({ERR}, {GONE}, False),
    "kill-secondary@load#1": ({ERR}, {GONE}, False),
    "stall-secondary@checkpoint-request#2": ({"WAIT_REPLY"}, {STOPPED}, False),
    "stall-primary@checkpoint-reply#2": ({STOPPED}, {"WAIT_SEND"}, False),
    "heartbeat-secondary@checkpoint-request#2": ({ERR}, {"DONE"}, False),
    "heartbeat-primary@checkpoint-reply#1": ({"DONE"}, {ERR}, False),
    "shutdown@checkpoint-request#2": ({GONE}, {ERR}, False),
}


def _ends(nodes: dict, stopped: set) -> dict:
    ends = {}
    for side, node in nodes.items():
        if side in stopped:
            ends[side] = STOPPED
        elif node.proc.poll() is not None:
            ends[side] = GONE
        else:
            ends[side] = node.state()
    return ends


async def _poll(pred, timeout_s: float) -> bool:
    """Poll `pred` until true or `timeout_s` passed.  Polling: the nodes are other
    processes and their state is in their recordings; there is no event to await."""
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


#: "checkpoints keep going" means a commit within this long (60 ms apart: several)
GOING_S = 0.4
#: ... and no later than this when they are expected to go on: a loaded machine may
#: stretch one checkpoint past GOING_S, but a commit that takes longer than this is
#: a stop.  (A case that expects them to stop keeps the short window, so a case whose
#: checkpoints come back after a stall is caught as before.)
GOING_SLOW_S = 3.0


def run_scenario(tmp_path, spec, *, dialect="qemu", node_args=(), settled=None,
                 window_s=0.0, heartbeat=None, going_s=GOING_S):
    """Run two nodes through the fault proxy with `spec`.  Once the fault fired, wait
    (at most 10 s) until ``settled(nodes, ends)`` holds, watch for `window_s` more
    (an observation window: nothing may change in it), then see whether checkpoints
    keep going (a commit within `going_s`) and take the end states."""
    sport = free_port()
    extra = ["--dialect", dialect, *node_args]
    if heartbeat:
        extra += ["--heartbeat-ms", str(heartbeat)]
    sec = NodeProc("secondary", tmp_path, f"127.0.0.1:{sport}", *extra)
    sec.wait_ready()
    nodes = {"secondary": sec}
    stopped: set[str] = set()

    async def on_fault(f):
        side = f.kind.partition("-")[2] or "primary"
        node = nodes[side]
        if f.kind.startswith("kill-"):
            os.kill(node.pid, signal.SIGKILL)
        elif f.kind.startswith("stall-"):
            os.kill(node.pid, signal.SIGSTOP)
            stopped.add(side)
        elif f.kind.startswith("heartbeat-"):
            await qmp_call(f"unix:{node.qmp_path}", "x-colo-lost-heartbeat")
        elif f.kind == "shutdown":
            await qmp_call(f"unix:{nodes['primary'].qmp_path}", "system_powerdown")

    async def go():
        proxy = Proxy(("127.0.0.1", 0), ("127.0.0.1", sport), [spec] if spec else [],
                      dialect=dialect, on_process_fault=on_fault)
        port = await proxy.start()
        pri = NodeProc("primary", tmp_path, f"127.0.0.1:{port}", "--checkpoint-delay", "60",
                       *extra)
        nodes["primary"] = pri
        await _poll(lambda: proxy.all_fired, 10)
        # a partition's bytes cross once it ends: settle (and watch commits) after it,
        # not during it (a CI run settled mid-partition; its 0.4 s commit window then
        # left the checkpoint 0.1 s and caught the secondary mid-checkpoint)
        await _poll(lambda: time.monotonic() >= proxy.partition_until, 10)
        if settled is not None:
            await _poll(lambda: settled(nodes, _ends(nodes, stopped)), 10)
        if window_s:
            await asyncio.sleep(window_s)      # observation window, not a wait for anything
        base = pri.commits()
        going = await _poll(lambda: pri.commits() > base, going_s)
        ends = _ends(nodes, stopped)
        await proxy.close()
        return proxy, going, ends
    try:
        proxy, going, ends = asyncio.run(asyncio.wait_for(go(), 30))
        for side, node in nodes.items():
            if ends[side] not in (STOPPED, GONE) and node.proc.poll() is None:
                # a live node still answers QMP (no hang)
                reply = asyncio.run(qmp_call(f"unix:{node.qmp_path}", "query-colo-status"))
                assert "return" in reply, reply
        return nodes, proxy, ends, going
    finally:
        for side, node in nodes.items():
            if node.proc.poll() is None:
                rc = node.stop()
                assert rc in (0, 1), (side, rc)
            else:
                node.log.close()


@pytest.mark.parametrize("spec", list(CASES))
def test_fault_ends_in_defined_state(tmp_path, spec):
    want_p, want_s, want_going = CASES[spec]
    nodes, proxy, ends, going = run_scenario(
        tmp_path, spec, settled=lambda _n, e: e["primary"] in want_p and e["secondary"] in want_s,
        going_s=GOING_SLOW_S if want_going else GOING_S)
    assert proxy.all_fired, proxy.log
    detail = f"{ends} proxy={proxy.log[-6:]}\nP:{nodes['primary'].output()[-1500:]}" \
             f"\nS:{nodes['secondary'].output()[-1500:]}"
    assert ends["primary"] in want_p, detail
    assert ends["secondary"] in want_s, detail
    assert going == want_going, detail
    if ends["secondary"] == ERR:
        assert nodes["secondary"].colo_exits()[-1] == {"mode": "secondary", "reason": "error"}


def test_no_fault_keeps_going_through_proxy(tmp_path):
    nodes, proxy, ends, going = run_scenario(
        tmp_path, None, settled=lambda n, _e: n["secondary"].commits() >= 3,
        going_s=GOING_SLOW_S)
    assert going and ends == {"primary": ends["primary"], "secondary": ends["secondary"]}
    assert nodes["secondary"].commits() >= 3


@pytest.mark.parametrize("dialect", ["v11", "prototype"])
def test_faults_in_other_dialects(tmp_path, dialect):
    nodes, proxy, ends, going = run_scenario(
        tmp_path, "corrupt@checkpoint-request#2", dialect=dialect,
        settled=lambda _n, e: e["secondary"] in (ERR, "SHUTDOWN", GONE))
    assert proxy.all_fired
    assert ends["secondary"] in (ERR, "SHUTDOWN", GONE)


def test_heartbeat_fails_over_on_silent_peer(tmp_path):
    """SIGSTOP: the kernel still ACKs, only the keepalive notices."""
    nodes, proxy, ends, going = run_scenario(
        tmp_path, "stall-secondary@checkpoint-request#2", heartbeat=300,
        settled=lambda _n, e: e["primary"] == "DONE")
    assert ends["primary"] == "DONE", nodes["primary"].output()
    assert nodes["primary"].kinds("heartbeat-lost")


def test_heartbeat_in_idle_via_keepalive(tmp_path):
    nodes, proxy, ends, going = run_scenario(
        tmp_path, "stall-primary@vmstate-loaded#1", heartbeat=300,
        settled=lambda _n, e: e["secondary"] == "DONE")
    assert ends["secondary"] == "DONE", nodes["secondary"].output()
    lost = nodes["secondary"].kinds("heartbeat-lost")
    assert lost and "keepalive" in lost[0]["data"]["why"]


def test_without_heartbeat_a_silent_peer_is_waited_for(tmp_path):
    # 1.5 s of watching: a faithful primary still waits (COLO has no timeout)
    nodes, proxy, ends, going = run_scenario(tmp_path, "stall-secondary@checkpoint-request#2",
                                             window_s=1.5)
    assert ends["primary"] == "WAIT_REPLY"       # faithful: COLO has no timeout
    assert not nodes["primary"].kinds("heartbeat-lost")
