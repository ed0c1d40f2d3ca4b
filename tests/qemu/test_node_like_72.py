"""`colo node` shows the QMP surface QEMU 7.2 showed in the run1 capture: the events
around COLO's start, every checkpoint and each failover, and query-status "running"
between checkpoints (issue 14, §7).  The capture's own QMP logs are the expected
value; the node pair is real (two processes, TCP, QMP over unix sockets)."""
from __future__ import annotations

import json
import time

from protocol.drivers.qmpclient import QmpClient
from tests.tcp._nodes import NodeProc, free_port, wait_for

COLO_EVENTS = ("STOP", "RESUME", "COLO_EXIT")


def shape(names: list[str]) -> list[str]:
    """The events in order, with each run of STOP, RESUME pairs (one per checkpoint)
    folded into one "STOP/RESUME+"."""
    out: list[str] = []
    i = 0
    while i < len(names):
        if names[i:i + 2] == ["STOP", "RESUME"]:
            while names[i:i + 2] == ["STOP", "RESUME"]:
                i += 2
            out.append("STOP/RESUME+")
        else:
            out.append(names[i])
            i += 1
    return out


def captured(run1, side: str) -> tuple[list[str], list[dict]]:
    """run1's events of one side (COLO's only) and its query-status answers in COLO."""
    names, statuses, colo = [], [], False
    for line in (run1 / f"qmp_{side}.jsonl").read_text().splitlines():
        msg = json.loads(line)["msg"]
        if msg.get("event") in COLO_EVENTS:
            names.append(msg["event"])
        ret = msg.get("return")
        if isinstance(ret, dict) and ret.get("mode") in ("primary", "secondary"):
            colo = True
        elif isinstance(ret, dict) and "running" in ret and colo:
            statuses.append(ret)
            colo = False
    return names, statuses


class Events:
    """Every event one QMP client has seen, pulled in as it goes."""

    def __init__(self, node: NodeProc) -> None:
        self.q = QmpClient(f"unix:{node.qmp_path}", timeout=10)
        self.names: list[str] = []

    def pull(self) -> list[str]:
        for ev in self.q.events(0.02):
            if ev["event"] in COLO_EVENTS:
                self.names.append(ev["event"])
        return self.names

    def until(self, pred, what: str) -> None:
        deadline = time.monotonic() + 20
        while not pred(self.pull()):
            assert time.monotonic() < deadline, f"{what}: saw {self.names}"

    def execute(self, cmd: str, args=None):
        out = self.q.execute(cmd, args)
        self.pull()
        return out


def test_the_node_pair_shows_the_events_and_statuses_of_run1(tmp_path, run1):
    """run1: COLO runs, the secondary gets x-colo-lost-heartbeat, the primary notices at
    its next checkpoint (COLO_EXIT, no STOP before it) and gets x-colo-lost-heartbeat
    too.  The same script on a node pair in its default mode gives the same shapes."""
    want_p, status_p = captured(run1, "primary")
    want_s, status_s = captured(run1, "secondary")
    assert status_p and status_s and all(s["status"] == "running" for s in status_p + status_s)
    port = free_port()
    sec = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}")
    pri = None
    try:
        sec.wait_ready()
        es = Events(sec)
        pri = NodeProc("primary", tmp_path, f"127.0.0.1:{port}", "--checkpoint-delay", "150")
        pri.wait_ready()
        ep = Events(pri)
        wait_for(lambda: sec.commits() >= 3, timeout_s=30, what="three checkpoints")
        for ev in (ep, es):                 # between checkpoints: running, as in run1
            wait_for(lambda ev=ev: ev.pull()[-1:] == ["RESUME"], what="a resumed VM")
        assert es.execute("query-status")["status"] == "running"
        assert es.execute("query-colo-status")["mode"] == "secondary"
        assert ep.execute("query-status")["status"] == "running"
        es.execute("x-colo-lost-heartbeat")
        es.until(lambda n: n[-1:] == ["RESUME"] and "COLO_EXIT" in n, "the secondary's failover")
        ep.until(lambda n: "COLO_EXIT" in n, "the primary's COLO_EXIT at its next checkpoint")
        assert ep.execute("query-colo-status")["mode"] == "primary"    # an error: unchanged
        ep.execute("x-colo-lost-heartbeat")
        ep.until(lambda n: n[-2:] == ["STOP", "RESUME"] and n.index("COLO_EXIT") < len(n) - 2,
                 "the primary's failover")
        assert ep.execute("query-colo-status") == {"mode": "none", "last-mode": "primary",
                                                    "reason": "request"}
    finally:
        if pri is not None:
            pri.stop()
        sec.stop()
    assert shape(es.names) == shape(want_s) == ["RESUME", "STOP/RESUME+", "STOP",
                                                 "COLO_EXIT", "RESUME"]
    # the primary's client may connect after the initial migration's STOP (and see only
    # COLO's RESUME) or after both
    got_p = ep.names[1:] if ep.names[:1] == ["RESUME"] else ep.names
    assert shape(got_p) == shape(want_p) == ["STOP/RESUME+", "COLO_EXIT", "STOP/RESUME+"]

