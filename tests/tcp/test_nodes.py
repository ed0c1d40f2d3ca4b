"""Two real `colo node` processes on loopback; QMP; the CLI's errors."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from tests.tcp._nodes import ROOT, NodeProc, free_port, wait_for


def _start(tmp_path, *args, sec_args=(), pri_args=()):
    addr = f"127.0.0.1:{free_port()}"
    s = NodeProc("secondary", tmp_path, addr, *args, *sec_args)
    s.wait_ready()
    p = NodeProc("primary", tmp_path, addr, *args, *pri_args)
    p.wait_ready()
    return p, s


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
def test_two_processes_reach_n_checkpoints(tmp_path, dialect):
    p, s = _start(tmp_path, "--dialect", dialect, "--checkpoints", "5",
                  "--checkpoint-delay", "20")
    assert p.proc.wait(30) == 0, p.output()
    assert s.proc.wait(30) == 0, s.output()
    assert p.commits() == 5 and s.commits() == 5
    hdr = p.header()
    assert hdr["format"] == "colo-node-log" and hdr["version"] == 1
    assert hdr["params"]["dialect"] == dialect
    ids = [e["data"]["n"] for e in p.kinds("checkpoint") if e["data"]["phase"] == "commit"]
    assert ids == [1, 2, 3, 4, 5]
    seqs = [e["seq"] for e in p.events()]
    assert seqs == sorted(seqs)


def test_model_guest_checkpoints(tmp_path):
    pytest.importorskip("protocol.guest.model")
    p, s = _start(tmp_path, "--guest", "model", "--ram-mib", "16", "--checkpoints", "3",
                  "--checkpoint-delay", "50")
    assert p.proc.wait(60) == 0, p.output()
    assert s.proc.wait(60) == 0, s.output()
    assert s.commits() == 3


def test_qmp_session_with_qemu_qmp(tmp_path):
    from qemu.qmp import QMPClient
    p, s = _start(tmp_path, "--checkpoint-delay", "50")
    try:
        assert stat.S_IMODE(os.stat(s.qmp_path).st_mode) == 0o600
        wait_for(lambda: p.commits() >= 2, 15, "two checkpoints")

        async def session():
            out = {}
            for node in (p, s):
                c = QMPClient(node.name)
                await c.connect(str(node.qmp_path))
                out[node.name] = {
                    "greeting": c.greeting,
                    "status": await c.execute("query-status"),
                    "colo": await c.execute("query-colo-status"),
                    "migrate": await c.execute("query-migrate"),
                }
                out[node.name]["client"] = c
            sc = out["secondary"]["client"]
            pc = out["primary"]["client"]
            with sc.listener() as sl, pc.listener() as pl:
                assert await sc.execute("x-colo-lost-heartbeat") == {}
                sev = []
                async for ev in sl:
                    sev.append(ev)
                    if ev["event"] == "COLO_EXIT":
                        break
                pev = None
                async for ev in pl:
                    if ev["event"] == "COLO_EXIT":
                        pev = ev
                        break
            out["sev"], out["pev"] = sev, pev
            out["s_after"] = await sc.execute("query-colo-status")
            out["p_after"] = await pc.execute("query-colo-status")
            out["p_mig_after"] = await pc.execute("query-migrate")
            assert await pc.execute("x-colo-lost-heartbeat") == {}
            out["p_final"] = await pc.execute("query-colo-status")
            for c in (sc, pc):
                await c.disconnect()
            return out
        out = asyncio.run(asyncio.wait_for(session(), 30))
        assert out["primary"]["status"]["running"] in (True, False)
        assert set(out["primary"]["status"]) == {"status", "singlestep", "running"}
        assert out["primary"]["colo"] == {"mode": "primary", "last-mode": "none",
                                          "reason": "none"}
        assert out["secondary"]["colo"]["mode"] == "secondary"
        assert out["primary"]["migrate"] == {"status": "colo"}
        assert out["secondary"]["migrate"]["status"] == "colo"
        exit_ev = out["sev"][-1]
        assert exit_ev["data"] == {"mode": "secondary", "reason": "request"}
        assert set(exit_ev["timestamp"]) == {"seconds", "microseconds"}
        assert out["s_after"] == {"mode": "none", "last-mode": "secondary", "reason": "request"}
        # faithful 7.2: the primary notices at its next checkpoint, says "error" and
        # stays colo/primary until its own x-colo-lost-heartbeat
        assert out["pev"]["data"] == {"mode": "primary", "reason": "error"}
        assert out["p_after"] == {"mode": "primary", "last-mode": "none", "reason": "none"}
        assert out["p_mig_after"] == {"status": "colo"}
        assert out["p_final"] == {"mode": "none", "last-mode": "primary", "reason": "request"}
    finally:
        assert p.stop() == 0
        assert s.stop() == 0


def test_qmp_errors_and_malformed_json(tmp_path):
    p, s = _start(tmp_path, "--checkpoint-delay", "1000")

    def raw(node, payloads):
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(5)
        c.connect(str(node.qmp_path))
        f = c.makefile("rb")
        import json
        greeting = json.loads(f.readline())
        replies = []
        for data in payloads:
            c.sendall(data)
            reply = json.loads(f.readline())
            # after qmp_capabilities a checkpoint's STOP/RESUME may come between
            # replies (every 1000 ms here), as from a real QEMU: a client skips them
            while isinstance(reply, dict) and "event" in reply:
                reply = json.loads(f.readline())
            replies.append(reply)
        c.close()
        return greeting, replies
    try:
        g, r = raw(s, [b'{"execute":"query-status","id":1}',
                       b'{"execute":"qmp_capabilities"}',
                       b'{"execute": nonsense}',
                       b'[1, 2]',
                       b'{"execute":"no-such-thing","id":"x"}',
                       b'{"execute":"migrate-set-parameters","arguments":{"x-checkpoint-delay":"a"}}',
                       b'{"execute":"migrate-set-parameters","arguments":{"bogus":1}}',
                       b'{"execute":"qmp_capabilities"}',
                       b'{"execute":"query-migrate-parameters"}\n'])
        assert g["QMP"]["version"]["qemu"]["major"] == 7 and g["QMP"]["capabilities"] == ["oob"]
        assert "colo-testbed" in g["QMP"]["version"]["package"]
        assert r[0] == {"error": {"class": "CommandNotFound", "desc": "Expecting capabilities "
                                  "negotiation with 'qmp_capabilities'"}, "id": 1}
        assert r[1] == {"return": {}}
        assert r[2]["error"]["class"] == "GenericError"
        assert r[2]["error"]["desc"].startswith("JSON parse error, ")
        assert r[3]["error"]["desc"] == "QMP input must be a JSON object"
        assert r[4] == {"error": {"class": "CommandNotFound",
                                  "desc": "The command no-such-thing has not been found"},
                        "id": "x"}
        assert r[5]["error"] == {"class": "GenericError",    # as a real QEMU 7.2 says
                                 "desc": "Parameter 'x-checkpoint-delay' expects uint64"}
        assert r[6]["error"]["desc"] == "Parameter 'bogus' is unexpected"
        assert r[7]["error"]["class"] == "CommandNotFound"
        assert r[8]["return"]["x-checkpoint-delay"] == 1000
        # an over-long input gets an error, then the connection is closed
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(5)
        c.connect(str(s.qmp_path))
        f = c.makefile("rb")
        f.readline()
        c.sendall(b'{"execute": "' + b"a" * (70 << 10))
        assert b"GenericError" in f.readline()
        assert f.readline() == b""
        c.close()
        assert s.proc.poll() is None     # never a crash
    finally:
        p.stop()
        s.stop()


def test_sigterm_exits_cleanly(tmp_path):
    p, s = _start(tmp_path, "--checkpoint-delay", "30")
    wait_for(lambda: p.commits() >= 1, 15, "a checkpoint")
    p.proc.send_signal(signal.SIGINT)
    assert p.proc.wait(5) == 0
    assert s.stop() == 0
    assert p.kinds("node")[-1]["data"] == {"what": "exit", "code": 0}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "colo_tui.cli.node", *args],
                          capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("args", [
    ["node", "secondary", "--listen", "nohost"],
    ["node", "primary", "--connect", "127.0.0.1:99999"],
    ["node", "primary", "--connect", "127.0.0.1:1", "--checkpoints", "0"],
    ["node", "secondary", "--listen", "127.0.0.1:1", "--dialect", "v12"],
    ["node", "secondary", "--listen", "127.0.0.1:1", "--qmp", "pipe:x"],
    ["node"],
])
def test_cli_bad_arguments(args):
    r = _cli(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("colo") and "error" in r.stderr


def test_cli_port_in_use_and_refused():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _cli("node", "secondary", "--listen", f"127.0.0.1:{port}")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "cannot listen" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("node", "primary", "--connect", f"127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot connect" in r.stderr and "refused" in r.stderr.lower()


def test_guest_ram_over_qmp(tmp_path):
    """x-testbed-read-ram / x-testbed-query-guest: a mirror before any primary, a model
    guest after checkpoints (its bytes are the guest's), the null guest, bad arguments."""
    from protocol.drivers.qmpclient import QmpClient
    from protocol.errors import QmpCommandError
    mirror = NodeProc("secondary", tmp_path, f"127.0.0.1:{free_port()}", "--guest", "mirror",
                      name="mirror")
    p, s = _start(tmp_path, "--checkpoint-delay", "50", "--guest", "model")
    try:
        mirror.wait_ready()
        q = QmpClient(f"unix:{mirror.qmp_path}")
        info = q.execute("x-testbed-query-guest")
        assert info["kind"] == "MirrorGuest" and info["blocks"] == [] and info["checkpoint"] == 0
        with pytest.raises(QmpCommandError, match="initial migration has not arrived"):
            q.execute("x-testbed-read-ram", {"offset": 0, "size": 16})
        q.close()
        wait_for(lambda: s.commits() >= 2, what="two checkpoints")
        q = QmpClient(f"unix:{s.qmp_path}")
        r = q.execute("x-testbed-read-ram", {"block": "pc.ram", "offset": 4096, "size": 32})
        assert r["size"] == 32 and len(bytes.fromhex(r["data"])) == 32 and r["checkpoint"] >= 2
        bad = [({"size": 1}, "Parameter 'offset' is missing"),
               ({"offset": -1, "size": 1}, "expected: uint64"),
               ({"offset": 0, "size": 1 << 20}, "above 65536 bytes"),
               ({"offset": 0, "size": 1, "block": "nope"}, "nope"),
               ({"offset": 1 << 40, "size": 1}, "outside"),
               ({"offset": 0, "size": 1, "extra": 1}, "Parameter 'extra' is unexpected")]
        for args, why in bad:
            with pytest.raises(QmpCommandError, match=why):
                q.execute("x-testbed-read-ram", args)
        q.close()
        q = QmpClient(f"unix:{p.qmp_path}")
        assert q.execute("x-testbed-query-guest")["kind"] == "Guest"
        q.close()
    finally:
        p.stop()
        s.stop()
        mirror.stop()
    null = NodeProc("secondary", tmp_path, f"127.0.0.1:{free_port()}", name="null")
    try:
        null.wait_ready()
        q = QmpClient(f"unix:{null.qmp_path}")
        with pytest.raises(QmpCommandError, match="keeps no RAM"):
            q.execute("x-testbed-read-ram", {"offset": 0, "size": 1})
        q.close()
    finally:
        null.stop()
