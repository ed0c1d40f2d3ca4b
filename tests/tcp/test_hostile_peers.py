"""Hostile peers over real sockets against real `colo` processes: memory stays
bounded by the guest's RAM, whatever the peer sends (issue 15, §2)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import threading

import pytest

from tests.tcp._hostile import (
    PAGE,
    RAM_HEAD,
    RAM_TAIL,
    Attacker,
    colo_cmd,
    initial_stream,
    msg,
    ram_records,
    status_kib,
    wait_listening,
)
from tests.tcp._nodes import ROOT, NodeProc, free_port, wait_for

GUEST_MIB = 64
PAGES = (GUEST_MIB << 20) // PAGE


def _recv_ram(node: NodeProc):
    return [e["data"] for e in node.kinds("recv-ram")]


def _errors(node: NodeProc):
    return [e["data"]["message"] for e in node.kinds("error")]


@pytest.mark.parametrize("guest", ["mirror", "null"])
def test_a_secondary_consumes_the_ram_part_as_it_arrives(tmp_path, guest):
    """A whole guest's worth of one repeated page: accepted, and the node's peak
    RSS grows by far less than the part (it held the whole part before)."""
    port = free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}", "--guest", guest)
    try:
        node.wait_ready()
        atk = Attacker("127.0.0.1", port)
        atk.start_checkpoint(GUEST_MIB << 20)
        base = status_kib(node.pid)
        assert atk.send_pages(PAGES) == PAGES
        atk.sock.sendall(RAM_TAIL)
        got = wait_for(lambda: _recv_ram(node), 30, "recv-ram")
        assert got[0]["pages"] == PAGES and got[0]["page"] == PAGES
        grown_mib = (status_kib(node.pid) - base) >> 10
        assert grown_mib < GUEST_MIB // 2, f"peak RSS grew by {grown_mib} MiB"
        atk.close()
    finally:
        node.stop()


@pytest.mark.parametrize("guest", ["mirror", "null"])
def test_a_ram_part_larger_than_the_guest_is_refused_by_name(tmp_path, guest):
    port = free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}", "--guest", guest)
    try:
        node.wait_ready()
        atk = Attacker("127.0.0.1", port)
        atk.start_checkpoint(8 << 20)
        atk.send_pages(2048 + 1)
        errs = wait_for(lambda: _errors(node), 20, "an error event")
        assert "RAM part refused" in errs[0] and "at most 2048 page records" in errs[0], errs
        assert node.state() == "ERROR"
        atk.close()
    finally:
        assert node.stop() == 0
    assert "Traceback" not in node.output()


def test_the_proxy_keeps_no_page_of_the_ram_part(tmp_path):
    port, pport = free_port(), free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}")
    cmd, env = colo_cmd(ROOT, "proxy", "--listen", f"127.0.0.1:{pport}",
                        "--connect", f"127.0.0.1:{port}")
    log = open(tmp_path / "proxy.log", "w")  # noqa: SIM115
    proxy = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        node.wait_ready()
        wait_listening(pport, proxy)
        atk = Attacker("127.0.0.1", pport)
        atk.start_checkpoint(GUEST_MIB << 20)
        base = status_kib(proxy.pid)
        assert atk.send_pages(PAGES) == PAGES
        atk.sock.sendall(RAM_TAIL)
        wait_for(lambda: _recv_ram(node), 30, "recv-ram at the secondary")
        grown_mib = (status_kib(proxy.pid) - base) >> 10
        assert grown_mib < GUEST_MIB // 2, f"the proxy's peak RSS grew by {grown_mib} MiB"
        atk.close()
    finally:
        proxy.terminate()
        proxy.wait(10)
        log.close()
        node.stop()
    out = (tmp_path / "proxy.log").read_text()
    assert f"pages={PAGES}" in out and "Traceback" not in out, out[-2000:]


def _decode(stream_parts, n_pages: int, *, expect_ram: bool = True):
    """Feed `colo decode --initial` a RAM part of n_pages repeated records; returns
    (exit code, stdout, stderr, peak RSS in MiB read from /proc before it exits:
    stdin stays open until the part's line is out)."""
    cmd, env = colo_cmd(ROOT, "decode", "--initial", "--from", "primary", "-")
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    out: dict = {"lines": []}
    seen_ram = threading.Event()

    def feed() -> None:
        try:
            proc.stdin.write(stream_parts)
            left = n_pages - 1
            while left > 0:
                k = min(256, left)
                proc.stdin.write(ram_records(k, first=False))
                left -= k
            proc.stdin.write(RAM_TAIL)
            proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def read_out() -> None:
        for line in proc.stdout:
            out["lines"].append(line.decode())
            if b'"type": "ram"' in line:
                seen_ram.set()

    def read_err() -> None:
        out["err"] = proc.stderr.read().decode()

    threads = [threading.Thread(target=f) for f in (feed, read_out, read_err)]
    for t in threads:
        t.start()
    threads[0].join(60)
    if expect_ram:
        assert seen_ram.wait(30), "no RAM part line from colo decode"
    peak_mib = status_kib(proc.pid) >> 10          # VmHWM, while it still runs
    with contextlib.suppress(OSError):
        proc.stdin.close()
    code = proc.wait(30)
    for t in threads[1:]:
        t.join(30)
    return code, "".join(out["lines"]), out.get("err", ""), peak_mib


def test_decode_initial_keeps_no_page_and_refuses_a_part_beyond_the_guest():
    guest = 128 << 20
    head = initial_stream(guest) + msg("checkpoint-request") + msg("vmstate-send") + RAM_HEAD \
        + ram_records(1)
    code, out, err, peak_mib = _decode(head, guest // PAGE)
    assert code == 0, err
    assert f'"pages": {guest // PAGE}' in out
    print("decode peak MiB", peak_mib)
    assert peak_mib < 128, f"colo decode peaked at {peak_mib} MiB for a 128 MiB part"
    head = initial_stream(8 << 20) + msg("checkpoint-request") + msg("vmstate-send") \
        + RAM_HEAD + ram_records(1)
    code, out, err, _ = _decode(head, 2049, expect_ram=False)
    assert code == 1 and "RAM part refused" in err and "at most 2048 page records" in err
    assert "Traceback" not in err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_silent_or_trickling_peer_is_timed_out_by_progress(tmp_path):
    """--progress-timeout-ms: silence in the initial migration, and one byte at a
    time inside a RAM part (never silent for long), both end COLO by name."""
    import time
    port = free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}", "--progress-timeout-ms", "500")
    try:
        node.wait_ready()
        atk = Attacker("127.0.0.1", port)
        errs = wait_for(lambda: _errors(node), 20, "the progress timeout")
        assert "initial migration" in errs[0] and "500 ms" in errs[0], errs
        assert [e["data"]["stage"] for e in node.kinds("progress-timeout")] == \
            ["the initial migration stream"]
        atk.close()
    finally:
        node.stop()
    port = free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}", "--progress-timeout-ms", "1000",
                    name="trickled")
    try:
        node.wait_ready()
        atk = Attacker("127.0.0.1", port)
        atk.start_checkpoint(8 << 20)
        for b in ram_records(1)[:100]:       # the attack: a byte every 0.2 s
            if _errors(node):
                break
            atk.sock.sendall(bytes([b]))
            time.sleep(0.2)                  # behaviour: the attack's pace
        errs = wait_for(lambda: _errors(node), 20, "the progress timeout")
        assert "RAM part" in errs[0] and "1000 ms" in errs[0], errs
        atk.close()
    finally:
        node.stop()


def test_a_device_state_blob_is_held_once(tmp_path):
    """vmstate-size N then N bytes: the node holds the blob once (it was copied
    twice more: out of the receive buffer and into bytes)."""
    port = free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}")
    size_mib = 128
    try:
        node.wait_ready()
        atk = Attacker("127.0.0.1", port)
        atk.start_checkpoint(8 << 20)
        atk.sock.sendall(RAM_TAIL + msg("vmstate-size", size_mib << 20))
        base = status_kib(node.pid)
        chunk = bytes(1 << 20)
        for _ in range(size_mib):
            atk.sock.sendall(chunk)
        received = msg("vmstate-received")
        assert atk.recv_exact(len(received)) == received
        grown_mib = (status_kib(node.pid) - base) >> 10
        assert grown_mib < size_mib * 3 // 2, f"peak RSS grew by {grown_mib} MiB"
        atk.close()
    finally:
        node.stop()


def test_a_node_forgets_the_task_of_each_finished_connection():
    """Connections after the first are heartbeat channels; with heartbeats off the
    node closes them.  Their finished tasks were kept forever (~0.8 KB each)."""
    import asyncio
    import io

    from protocol.drivers.node import Node
    from protocol.drivers.tcp import new_loop

    node = Node("secondary", listen="127.0.0.1:0", out=io.StringIO())
    loop = new_loop(False)

    async def go() -> int:
        main = loop.create_task(node.main(loop))
        for _ in range(200):   # polling: the node has no "listening" event; it binds at once
            if node.listen_address() and node.listen_address()[1]:
                break
            await asyncio.sleep(0.01)
        port = node.listen_address()[1]
        colo = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        for _ in range(100):
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            assert await asyncio.wait_for(r.read(), 10) == b""   # the node closed it
            w.close()
        # a finished task leaves the set in its done-callback, which the loop runs
        # soon after: yield to the loop (no wall time) until no finished task is
        # left, at most 100 turns (a node that keeps them fails the assert below)
        for _ in range(100):
            if not any(t.done() for t in node._tasks):
                break
            await asyncio.sleep(0)
        kept = len(node._tasks)
        colo[1].close()
        node.request_quit("test")
        await asyncio.wait_for(main, 10)
        return kept

    try:
        kept = loop.run_until_complete(go())
    finally:
        loop.close()
    assert kept <= 3, f"{kept} tasks kept after 100 finished connections"
