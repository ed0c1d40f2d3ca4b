"""Hostile QMP clients against a real `colo node` (issue 15): a client that never
reads is dropped, not buffered without end; every input gets QEMU's answer."""
from __future__ import annotations

import json
import os
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.drivers.qmpjson import parse_json
from tests.tcp._hostile import status_kib
from tests.tcp._nodes import NodeProc, free_port, qmp, wait_for


def _pair(tmp_path, *args):
    addr = f"127.0.0.1:{free_port()}"
    s = NodeProc("secondary", tmp_path, addr, *args)
    s.wait_ready()
    p = NodeProc("primary", tmp_path, addr, *args)
    p.wait_ready()
    return p, s


def _negotiated(node: NodeProc, rcvbuf: int = 4096) -> socket.socket:
    c = socket.socket(socket.AF_UNIX)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.settimeout(10)
    c.connect(str(node.qmp_path))
    c.sendall(json.dumps({"execute": "qmp_capabilities"}).encode())
    return c


def test_clients_that_never_read_are_dropped_and_the_node_stays_small(tmp_path):
    p, s = _pair(tmp_path, "--checkpoint-delay", "0")
    clients = []
    try:
        wait_for(lambda: p.commits() >= 1, 20, "a first checkpoint")
        base = status_kib(p.pid, "VmRSS")
        clients = [_negotiated(p) for _ in range(5)]
        dropped = wait_for(lambda: len([e for e in p.kinds("qmp")
                                        if e["data"].get("what") == "client-dropped"]) >= 5,
                           90, "the non-reading clients to be dropped")
        assert dropped
        assert (status_kib(p.pid) - base) >> 10 < 64
        for c in clients:       # the node closed them: reading ends (after the backlog)
            c.settimeout(10)
            try:
                while c.recv(1 << 20):
                    pass
            except ConnectionResetError:
                pass
        # a client that reads is still served
        assert qmp(p, "query-status")["return"]["status"] in ("running", "colo", "paused")
    finally:
        for c in clients:
            c.close()
        p.stop()
        s.stop()


class _Qmp:
    """One negotiated QMP connection to a real node; `ask` sends one text and
    returns its one reply (events skipped), or None if the node closed."""

    def __init__(self, node: NodeProc, enable=None) -> None:
        self.c = socket.socket(socket.AF_UNIX)
        self.c.settimeout(20)
        self.c.connect(str(node.qmp_path))
        self.f = self.c.makefile("rb")
        self.f.readline()
        args = {} if enable is None else {"arguments": {"enable": enable}}
        assert self.ask(json.dumps({"execute": "qmp_capabilities", **args})) == {"return": {}}

    def ask(self, text: str | bytes):
        self.c.sendall(text.encode() if isinstance(text, str) else text)
        while True:
            line = self.f.readline()
            if not line:
                return None
            reply = parse_json(line)      # replies may echo an id 1024 levels deep
            if "event" not in reply:
                return reply

    def close(self) -> None:
        self.c.close()


def _err(reply):
    assert reply is not None and "error" in reply, reply
    return reply["error"]["desc"]


def _secondary(tmp_path):
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{free_port()}")
    node.wait_ready()
    return node


def test_qmp_answers_as_qemu_7_2(tmp_path):
    """Each answer below is what a real qemu-system-x86_64 7.2 says to the same text."""
    node = _secondary(tmp_path)
    try:
        q = _Qmp.__new__(_Qmp)
        q.c = socket.socket(socket.AF_UNIX)
        q.c.settimeout(20)
        q.c.connect(str(node.qmp_path))
        q.f = q.c.makefile("rb")
        q.f.readline()
        caps = '{"execute":"qmp_capabilities","arguments":{"enable":%s}}'
        assert _err(q.ask(caps % "5")) == "Invalid parameter type for 'enable', expected: array"
        assert _err(q.ask(caps % "null")) == "Invalid parameter type for 'enable', expected: array"
        assert _err(q.ask(caps % "[5]")) == \
            "Invalid parameter type for 'enable[0]', expected: string"
        assert _err(q.ask(caps % '["foo"]')) == "Parameter 'null' does not accept value 'foo'"
        assert _err(q.ask('{"exec-oob":"qmp_capabilities"}')) == \
            "QMP input member 'exec-oob' is unexpected"
        assert _err(q.ask("[" * 1025 + "]" * 1025)) == "JSON nesting depth limit exceeded"
        assert _err(q.ask("[" * 1024 + "]" * 1024)) == "QMP input must be a JSON object"
        deep = '{"execute":"qmp_capabilities","id":%s}' % ("[" * 1023 + "]" * 1023)
        assert q.ask(deep)["return"] == {}          # 1024 levels in all: QEMU takes it
        assert _err(q.ask('{"a":1,"a":2}')) == "JSON parse error, duplicate key"
        assert _err(q.ask('{"execute":"query-status","id":NaN}')).startswith(
            "JSON parse error, stray 'N'")
        assert _err(q.ask('{"exec-oob":"query-status","id":1}')) == \
            "QMP input member 'exec-oob' is unexpected"
        q.close()

        q = _Qmp(node, enable=["oob", "oob"])
        assert q.ask('{"exec-oob":"query-status","id":1}') == {"id": 1, "error": {
            "class": "GenericError", "desc": "The command query-status does not support OOB"}}
        assert _err(q.ask('{"exec-oob":5}')) == "QMP input member 'exec-oob' must be a string"
        assert _err(q.ask('{"exec-oob":"query-status","execute":"query-status"}')) == \
            "QMP input member 'execute' clashes with 'exec-oob'"
        assert _err(q.ask('{"execute":"query-status","control":{}}')) == \
            "QMP input member 'control' is unexpected"
        q.close()

        q = _Qmp(node)
        msp = '{"execute":"migrate-set-parameters","arguments":{"%s":%s}}'
        for name, value, desc in [
                ("x-checkpoint-delay", '"a"', "Parameter 'x-checkpoint-delay' expects uint64"),
                ("x-checkpoint-delay", "-1", "Parameter 'x-checkpoint-delay' expects uint32_t"),
                ("x-checkpoint-delay", "4294967296",
                 "Parameter 'x-checkpoint-delay' expects uint32_t"),
                ("x-checkpoint-delay", "1.5", "Parameter 'x-checkpoint-delay' expects uint64"),
                ("x-checkpoint-delay", "18446744073709551616",
                 "Parameter 'x-checkpoint-delay' expects uint64"),
                ("compress-level", "10",
                 "Parameter 'compress_level' expects a value between 0 and 9"),
                ("compress-level", "256", "Parameter 'compress-level' expects uint8_t"),
                ("compress-threads", "0",
                 "Parameter 'compress_threads' expects a value between 1 and 255"),
                ("downtime-limit", "-1", "Parameter 'downtime_limit' expects an integer in "
                 "the range of 0 to (2000 * 1000) ms"),
                ("xbzrle-cache-size", "5000", "Parameter 'xbzrle_cache_size' expects a power "
                 "of two no less than the target page size"),
                ("max-cpu-throttle", "5", "Parameter 'max_cpu_throttle' expects an integer "
                 "in the range of cpu_throttle_initial to 99"),
                ("cpu-throttle-initial", "100", "Parameter 'cpu_throttle_initial' expects an "
                 "integer in the range of 1 to 99"),
                ("announce-step", "0",
                 "Parameter 'announce_step' expects a value between 0 and 10000"),
                ("tls-creds", "5", "Invalid parameter type for 'tls-creds', expected: StrOrNull"),
                ("block-incremental", "1",
                 "Invalid parameter type for 'block-incremental', expected: boolean"),
                ("multifd-compression", '"x"',
                 "Parameter 'multifd-compression' does not accept value 'x'"),
                ("multifd-compression", "1",
                 "Invalid parameter type for 'multifd-compression', expected: string")]:
            assert _err(q.ask(msp % (name, value))) == desc, (name, value)
        for name, value in [("max-bandwidth", "-1"), ("multifd-zlib-level", "99"),
                            ("tls-creds", "null"), ("x-checkpoint-delay", "4294967295")]:
            assert q.ask(msp % (name, value)) == {"return": {}}, (name, value)
        params = q.ask('{"execute":"query-migrate-parameters"}')["return"]
        assert params["max-bandwidth"] == (1 << 64) - 1 and params["tls-creds"] == ""
        assert params["x-checkpoint-delay"] == 4294967295
        q.close()
    finally:
        node.stop()
    assert "Traceback" not in node.output()


def test_migrate_set_capabilities_answers_as_qemu_7_2(tmp_path):
    node = _secondary(tmp_path)
    try:
        q = _Qmp(node)
        msc = '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[%s]}}'
        for item, desc in [
                ("{}", "Parameter 'capabilities[0].capability' is missing"),
                ('{"capability":"x","state":true}',
                 "Parameter 'capability' does not accept value 'x'"),
                ('{"capability":"events"}', "Parameter 'capabilities[0].state' is missing"),
                ('{"capability":"events","state":true,"x":1}',
                 "Parameter 'capabilities[0].x' is unexpected"),
                ('{"capability":5,"state":true}',
                 "Invalid parameter type for 'capabilities[0].capability', expected: string")]:
            assert _err(q.ask(msc % item)) == desc, item
        assert q.ask('{"execute":"migrate-set-parameters","arguments":'
                     '{"block-bitmap-mapping":[]}}') == {"return": {}}
        q.close()
    finally:
        node.stop()


FUZZ_EXAMPLES = int(os.environ.get("COLO_QMP_FUZZ_EXAMPLES", 2000))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=12)
_COMMANDS = ["qmp_capabilities", "query-status", "query-migrate", "query-colo-status",
             "x-colo-lost-heartbeat", "migrate-set-parameters", "query-migrate-parameters",
             "migrate-set-capabilities", "query-migrate-capabilities", "query-commands",
             "x-testbed-read-ram", "x-testbed-query-guest", "no-such-command"]
_PARAM_NAMES = ["x-checkpoint-delay", "compress-level", "max-cpu-throttle", "tls-creds",
                "xbzrle-cache-size", "downtime-limit", "announce-step", "block-incremental",
                "multifd-compression", "bogus"]
_arguments = st.one_of(
    _json,
    st.dictionaries(st.sampled_from(_PARAM_NAMES + ["enable", "capabilities", "offset",
                                                    "size", "block"]), _json, max_size=3))
_message = st.one_of(
    st.fixed_dictionaries({"execute": st.sampled_from(_COMMANDS)},
                          optional={"arguments": _arguments, "id": _json,
                                    "exec-oob": st.sampled_from(_COMMANDS) | _json}),
    st.dictionaries(st.sampled_from(["execute", "exec-oob", "arguments", "id", "x"]), _json,
                    max_size=4),
    _json.filter(lambda v: isinstance(v, (list, dict))))
_text = st.one_of(
    _message.map(json.dumps),
    st.integers(1000, 1100).map(lambda d: "[" * d + "]" * d),
    st.sampled_from(['{"execute": nonsense}', '{"a":1,"a":2}', '{"id":NaN}', '{"x":-Infinity}',
                     '{"execute":"query-status","id":1,}', "]", '{"id":"\\ud800"}']))


def test_qmp_fuzz_every_message_gets_one_answer_and_the_server_keeps_serving(tmp_path):
    node = _secondary(tmp_path)
    count = {"sent": 0, "internal": 0}
    q = _Qmp(node, enable=["oob"])

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(text=_text)
    def one(text):
        reply = q.ask(text + " ")          # a trailing space ends a bare scalar
        count["sent"] += 1
        assert reply is not None, f"the node closed the connection on {text[:200]!r}"
        assert "return" in reply or "error" in reply, reply
        if "error" in reply and reply["error"]["desc"].startswith("internal error"):
            count["internal"] += 1
            raise AssertionError(f"{text[:200]!r} -> {reply}")

    try:
        one()
        assert q.ask('{"execute":"query-status","id":"last"}')["id"] == "last"
    finally:
        q.close()
        node.stop()
    print(f"QMP fuzz: {count['sent']} messages, {count['internal']} internal errors")
    out = node.output()
    assert "Traceback" not in out and "Error" not in out.replace("error", ""), out[-2000:]


def _hostile_qmp_server(path, behaviour):
    """A unix-socket QMP 'server' run in a thread: greets, answers
    qmp_capabilities, then does `behaviour(conn)`; returns (thread, state)."""
    import threading
    import time as _time

    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    state = {"hit_cap": False}

    def run():
        conn, _ = srv.accept()
        conn.settimeout(30)
        with conn:
            conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
            conn.recv(4096)
            conn.sendall(b'{"return": {}, "id": 1}\r\n')
            conn.recv(4096)
            end = _time.monotonic() + 30          # the cap: the client should give up first
            try:
                behaviour(conn, end)
            except OSError:
                return
            state["hit_cap"] = _time.monotonic() >= end
        srv.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, state


def test_the_qmp_client_gives_up_on_a_server_that_only_sends_events(tmp_path):
    import time as _time

    from protocol.drivers.qmpclient import QmpClient, QmpTimeout

    def events_forever(conn, end):
        while _time.monotonic() < end:
            conn.sendall(b'{"event": "STOP", "timestamp": {}}\r\n')
            _time.sleep(0.05)        # behaviour: the hostile server's pace

    th, state = _hostile_qmp_server(tmp_path / "q.sock", events_forever)
    c = QmpClient(f"unix:{tmp_path / 'q.sock'}", timeout=1.0)
    try:
        import pytest as _pytest
        with _pytest.raises(QmpTimeout):
            c.execute("query-status")
    finally:
        c.close()
    th.join(35)
    assert not state["hit_cap"], "the client waited for the server to stop"


def test_the_qmp_client_refuses_a_deep_reply_by_name(tmp_path):
    from protocol.drivers.qmpclient import QmpClient, QmpClientError

    def deep(conn, end):
        conn.sendall(b'{"return": ' + b"[" * 5000 + b"]" * 5000 + b', "id": 2}\r\n')
        conn.recv(4096)

    th, _state = _hostile_qmp_server(tmp_path / "q.sock", deep)
    c = QmpClient(f"unix:{tmp_path / 'q.sock'}", timeout=5.0)
    try:
        import pytest as _pytest
        with _pytest.raises(QmpClientError, match="not JSON"):
            c.execute("query-status")
    finally:
        c.close()
    th.join(35)
