"""Live sessions: the endpoints over real TCP, the live proxy, and QMP attach."""
import time

import pytest

from colo_tui.session.live import LiveError, live_controller
from colo_tui.session.live_sources import ProxyFeed, QmpFeed, TcpPair
from protocol.sim.config import SimConfig
from tests.tcp._nodes import NodeProc, free_port, wait_for


def pump(c, until, timeout_s=10.0):
    """Take events in until `until(c)` holds: blocks on the source's queue for the
    next event (no polling), at most `timeout_s` in all."""
    deadline = time.monotonic() + timeout_s
    while True:
        c.step(500)                              # whatever has arrived
        if until(c):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not c.step(1, wait_s=left) and c.session.source.done.is_set():
            return bool(until(c))                # the source ended: nothing more comes


def settle(c, still_s=0.5, timeout_s=10.0):
    """Take events in until none arrives for `still_s` (the session is quiet), at
    most `timeout_s` in all."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c.step(500)
        if not c.step(1, wait_s=still_s):
            return True
    return False


def test_tcp_pair_runs_checkpoints_and_fails_over():
    c = live_controller(TcpPair(SimConfig(checkpoint_delay_ms=100)))
    try:
        assert pump(c, lambda c: c.status()["primary"]["checkpoint"] >= 2)
        wire = [w["msg"] for w in c.wire()]
        assert wire[:7] == ["checkpoint-ready", "checkpoint-request", "checkpoint-reply",
                            "vmstate-send", "vmstate-size", "vmstate-received", "vmstate-loaded"]
        c.lost_heartbeat("secondary")
        assert pump(c, lambda c: c.status()["secondary"]["colo_status"]["reason"] == "request")
        with pytest.raises(LiveError, match="cannot step back"):
            c.back(1)
        with pytest.raises(LiveError, match="colo proxy --fault"):
            c.add_fault("drop@ram")
    finally:
        c.close()
    # close() returns only once the engine's thread has ended: a process exiting
    # under a running uvloop thread segfaulted now and then (CI, stop 8)
    assert not c.session.source._thread.is_alive()
    assert c.session.source.loop.is_closed()


def test_tcp_pair_in_the_app():
    from colo_tui.tui.app import ColoApp

    async def go():
        c = live_controller(TcpPair(SimConfig(checkpoint_delay_ms=50)))
        app = ColoApp(c)
        try:
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.press("space")
                for _ in range(200):
                    await pilot.pause(0.05)
                    if any(e.kind == "send" and e.payload().get("msg") == "vmstate-loaded"
                           for e in c.events):
                        break
                assert any(e.kind == "send" and e.payload().get("msg") == "vmstate-loaded"
                           for e in c.events)
                await pilot.press("space")
        finally:
            c.close()
    import asyncio
    asyncio.run(go())


def _pair(tmp_path, proxy_port=None):
    sec_addr = f"127.0.0.1:{free_port()}"
    sec = NodeProc("secondary", tmp_path, sec_addr, "--checkpoint-delay", "150")
    sec.wait_ready()
    target = f"127.0.0.1:{proxy_port}" if proxy_port else sec_addr
    return sec, sec_addr, target


def test_proxy_feed_decodes_two_live_nodes(tmp_path):
    listen = free_port()
    sec, sec_addr, target = _pair(tmp_path, proxy_port=listen)
    c = live_controller(ProxyFeed(SimConfig(), f"127.0.0.1:{listen}", sec_addr))
    pri = None
    try:
        assert pump(c, lambda c: any(e.kind == "listening" for e in c.events), 5)
        pri = NodeProc("primary", tmp_path, target, "--checkpoint-delay", "150")
        pri.wait_ready()
        assert pump(c, lambda c: c.status()["primary"]["checkpoint"] >= 2, 20)
        kinds = {e.kind for e in c.events}
        assert {"recv-initial", "send", "checkpoint"} <= kinds
        with pytest.raises(Exception, match="only watches"):
            c.lost_heartbeat("primary")
    finally:
        c.close()
        assert not c.session.source._thread.is_alive()
        if pri:
            pri.stop()
        sec.stop()


def test_qmp_feed_watches_and_drives_two_nodes(tmp_path):
    sec, sec_addr, _ = _pair(tmp_path)
    pri = NodeProc("primary", tmp_path, sec_addr, "--checkpoint-delay", "150")
    pri.wait_ready()
    wait_for(lambda: pri.commits() >= 1, what="a checkpoint")
    c = live_controller(QmpFeed(SimConfig(), f"unix:{pri.qmp_path}", f"unix:{sec.qmp_path}"))
    try:
        assert pump(c, lambda c: c.status()["primary"]["colo_status"]["mode"] == "primary")
        c.lost_heartbeat("secondary")
        assert pump(c, lambda c: c.status()["secondary"]["colo_status"] ==
                    {"mode": "none", "last-mode": "secondary", "reason": "request"})
        assert pump(c, lambda c: any(e.kind == "colo-exit" and e.side == "secondary"
                                     and e.payload().get("reason") == "request" for e in c.events))
    finally:
        c.close()
        pri.stop()
        sec.stop()


def test_peer_feed_mirrors_a_primary_process_and_shows_it(tmp_path):
    """`colo tui --peer`: the testbed's secondary for a primary in another process
    (here the testbed's own model primary, which sends a QEMU-shaped initial
    migration; tests/qemu/test_real_peer.py does it with real QEMU)."""
    from colo_tui.session.live_sources import PeerFeed

    port = free_port()
    c = live_controller(PeerFeed(SimConfig(), f"127.0.0.1:{port}"))
    pri = None
    try:
        assert pump(c, lambda c: any(e.kind == "listening" for e in c.events), 5)
        pri = NodeProc("primary", tmp_path, f"127.0.0.1:{port}", "--guest", "model",
                       "--checkpoint-delay", "150", "--workload", "hot")
        pri.wait_ready()
        assert pump(c, lambda c: c.status()["secondary"]["checkpoint"] >= 3, 20)
        st = c.status()
        assert st["primary"]["checkpoint"] >= 2      # the primary's view follows
        wire = [w["msg"] for w in c.wire()]
        assert wire[:7] == ["checkpoint-ready", "checkpoint-request", "checkpoint-reply",
                            "vmstate-send", "vmstate-size", "vmstate-received", "vmstate-loaded"]
        flushes = [e.payload() for e in c.events if e.kind == "action"
                   and e.payload().get("name") == "flush-cache"]
        assert flushes and all(f["blocks"].get("pc.ram", 0) > 0 for f in flushes)
        view = c.guest("secondary")
        assert view.kind == "mirror"
        summary = view.summary()
        assert summary["heat_label"].startswith("pc.ram: flushed by ckpt #")
        assert summary["heat_count"] > 0 and max(summary["heat"]) > 0
        with pytest.raises(Exception, match="`heartbeat secondary`"):
            c.lost_heartbeat("primary")
        c.lost_heartbeat("secondary")
        assert pump(c, lambda c: c.status()["secondary"]["colo_status"]["reason"] == "request")
        assert pump(c, lambda c: c.guest_report().secondary.mirror.took_over)
    finally:
        c.close()
        if pri:
            pri.stop()


def test_peer_feed_refuses_a_port_in_use_and_other_dialects():
    import socket

    from colo_tui.session.live_sources import PeerFeed
    from protocol.errors import ColoError
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            PeerFeed(SimConfig(), f"127.0.0.1:{port}")
    with pytest.raises(ColoError, match="dialect qemu"):
        PeerFeed(SimConfig(dialect="v11"), "127.0.0.1:0")


def test_peer_feed_closed_before_any_primary_frees_its_port():
    import socket

    from colo_tui.session.live_sources import PeerFeed
    port = free_port()
    c = live_controller(PeerFeed(SimConfig(), f"127.0.0.1:{port}"))
    assert pump(c, lambda c: any(e.kind == "listening" for e in c.events), 5)
    c.close()
    assert not c.session.source._thread.is_alive()
    with socket.create_server(("127.0.0.1", port)):     # the port is free again
        pass


@pytest.mark.parametrize("kind", ["peer", "proxy"])
def test_a_source_stopped_before_its_task_exists_still_ends(kind):
    """stop() can come before the source's loop has created its task (nothing to
    cancel yet): the task is cancelled as it is created, and close() returns at
    once with the thread ended, instead of waiting out the join timeout."""
    from colo_tui.session.live_sources import PeerFeed
    if kind == "peer":
        src = PeerFeed(SimConfig(), f"127.0.0.1:{free_port()}")
    else:
        src = ProxyFeed(SimConfig(), f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    src.stop()                                   # before the thread even starts
    t0 = time.monotonic()
    c = live_controller(src)
    c.close()
    assert time.monotonic() - t0 < 3.0
    assert not src._thread.is_alive()


def test_a_full_speed_tick_on_a_quiet_live_session_returns_at_once():
    """At full speed a tick steps until its budget is spent; on a live session
    with nothing new it used to spin for the whole budget (150 ms of CPU per
    tick, ~7 ticks a second).  It now looks once and returns."""
    from colo_tui.tui.bridge import SPEEDS, Bridge
    c = live_controller(TcpPair(SimConfig(checkpoint_delay_ms=60_000)))
    try:
        assert pump(c, lambda c: len(c.events) > 0)
        # the start-up's events have all arrived: the ticks below meet a quiet session
        # (each event arriving mid-tick would cost one more call)
        assert settle(c)
        b = Bridge(c)
        b.speed_index = SPEEDS.index(0)
        b.toggle_run()
        calls = []
        real_step = c.step
        c.step = lambda n=1, wait_s=0.0: calls.append(n) or real_step(n, wait_s)
        for _ in range(5):
            calls.clear()
            b.tick(0.05)
            # an event arriving mid-tick costs one more call; spinning costs thousands
            assert b.running and len(calls) <= 3, len(calls)
    finally:
        c.close()
