"""Every process ends its log and its recording cleanly on SIGTERM and SIGINT;
an explicit wildcard bind says that it binds all interfaces (issue 15, §5)."""
from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.tcp._hostile import colo_cmd, wait_listening
from tests.tcp._nodes import ROOT, free_port


def _spawn(*args):
    cmd, env = colo_cmd(ROOT, *args)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def _stop(proc, sig):
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"no exit on {sig!r}: {err[-2000:]}") from None
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_proxy_ends_its_log_and_recording_on_a_signal(tmp_path, sig):
    port = free_port()
    rec = tmp_path / "proxy.jsonl"
    proc = _spawn("proxy", "--listen", f"127.0.0.1:{port}", "--connect",
                  f"127.0.0.1:{free_port()}", "--record", str(rec), "--json-events")
    wait_listening(port, proc)
    code, out, err = _stop(proc, sig)
    assert code == 0, err
    last = json.loads(rec.read_text().splitlines()[-1])
    assert last["kind"] == "stopped" and last["data"]["why"] == sig.name, last
    assert json.loads(out.splitlines()[-1])["kind"] == "stopped"
    assert "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_node_ends_its_log_and_recording_on_a_signal(tmp_path, sig):
    port = free_port()
    rec = tmp_path / "node.jsonl"
    proc = _spawn("node", "secondary", "--listen", f"127.0.0.1:{port}", "--record", str(rec),
                  "--log-json")
    wait_listening(port, proc)
    code, out, err = _stop(proc, sig)
    assert code == 0, err
    last = json.loads(rec.read_text().splitlines()[-1])
    assert last["kind"] == "node" and last["data"]["what"] == "exit", last
    assert json.loads(out.splitlines()[-1])["data"]["what"] == "exit"


@pytest.mark.parametrize("host,warns", [("0", True), ("0.0.0.0", True), ("127.0.0.1", False),
                                        ("", False)])
@pytest.mark.parametrize("prog", ["node", "proxy"])
def test_an_explicit_wildcard_bind_warns(host, warns, prog):
    port = free_port()
    if prog == "node":
        proc = _spawn("node", "secondary", "--listen", f"{host}:{port}")
    else:
        proc = _spawn("proxy", "--listen", f"{host}:{port}", "--connect",
                      f"127.0.0.1:{free_port()}")
    wait_listening(port, proc)
    code, _out, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert ("binds all interfaces" in err) == warns, err


def test_the_proxy_stops_cleanly_in_the_middle_of_a_session(tmp_path):
    from tests.tcp._hostile import Attacker
    from tests.tcp._nodes import NodeProc
    port, pport = free_port(), free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}")
    rec = tmp_path / "proxy.jsonl"
    try:
        node.wait_ready()
        proc = _spawn("proxy", "--listen", f"127.0.0.1:{pport}", "--connect",
                      f"127.0.0.1:{port}", "--record", str(rec))
        wait_listening(pport, proc)
        atk = Attacker("127.0.0.1", pport)
        atk.start_checkpoint(8 << 20)           # the session is under way
        code, _out, err = _stop(proc, signal.SIGTERM)
        atk.close()
    finally:
        node.stop()
    assert code == 0 and "Traceback" not in err, err
    events = [json.loads(line) for line in rec.read_text().splitlines()[1:]]
    assert events[-1]["kind"] == "stopped" and events[-1]["data"]["busy"] is True
    assert any(e["kind"] == "closed" for e in events)    # the pumps ended, and said so


@pytest.mark.parametrize("dialect", ["v11", "prototype"])
def test_the_proxy_decodes_the_dialect_it_is_given(tmp_path, dialect):
    """`colo proxy --dialect D` between two nodes speaking D: every message decodes
    as D's (with the default qemu dialect the same bytes are errors)."""
    from tests.tcp._nodes import NodeProc, wait_for
    port, pport = free_port(), free_port()
    common = ("--dialect", dialect, "--guest", "null")
    sec = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}", *common)
    rec = tmp_path / "proxy.jsonl"
    proc = None
    try:
        sec.wait_ready()
        proc = _spawn("proxy", "--dialect", dialect, "--listen", f"127.0.0.1:{pport}",
                      "--connect", f"127.0.0.1:{port}", "--record", str(rec), "--once")
        wait_listening(pport, proc)
        pri = NodeProc("primary", tmp_path, f"127.0.0.1:{pport}", *common,
                       "--checkpoint-delay", "50", "--checkpoints", "3")
        try:
            wait_for(lambda: pri.commits() >= 3, what="three checkpoints through the proxy")
        finally:
            pri.stop()
        code, _out, err = _stop(proc, signal.SIGTERM)
    finally:
        sec.stop()
        if proc is not None and proc.poll() is None:
            proc.kill()
    assert code == 0 and "Traceback" not in err, err
    lines = rec.read_text().splitlines()
    assert json.loads(lines[0])["dialect"] == dialect
    events = [json.loads(line) for line in lines[1:]]
    sent = [e["data"]["msg"] for e in events if e["kind"] == "send"]
    assert sent.count("checkpoint-request") >= 3, sent[:20]
    assert not [e for e in events if e["kind"] == "error"], events[:20]


def test_the_proxy_refuses_an_unknown_dialect():
    cmd, env = colo_cmd(ROOT, "proxy", "--dialect", "qemu9", "--listen", "127.0.0.1:1",
                        "--connect", "127.0.0.1:2")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice: 'qemu9'" in r.stderr
