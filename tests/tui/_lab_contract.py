"""What a `colo lab` session shows and does through the session interface.

`exercise(c, bound_s)` runs on the fake lab (tests/tui/test_lab_tui.py) and on
the real one (tests/qemu/test_lab_tui.py), so the fake the TUI tests use
cannot drift from what the real pair publishes.  Every wait is bounded by
`bound_s`; it blocks on the session's queue (LiveSession.wait), never sleeps."""
from __future__ import annotations

import time

import pytest

from protocol.core.session import SessionError


def pump(c, until, bound_s: float) -> bool:
    """Take events in until `until(c)` holds, at most `bound_s` seconds."""
    deadline = time.monotonic() + bound_s
    while True:
        c.step(5000)
        if until(c):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not c.step(1, wait_s=min(left, 1.0)) and c.session.source.done.is_set():
            return bool(until(c))


def kinds(c, kind: str, **match) -> list:
    return [e for e in c.events if e.kind == kind
            and all(e.payload().get(k) == v for k, v in match.items())]


def _data_packets(c, channel: str) -> list:
    return [e for e in kinds(c, "packet", channel=channel) if e.payload().get("payload_len")]


def seen_colo(c) -> bool:
    return bool(kinds(c, "checkpoint", phase="begin") and kinds(c, "send",
                                                              msg="checkpoint-request")
                and _data_packets(c, "primary-in") and _data_packets(c, "compare-in")
                and kinds(c, "verdict"))


def exercise(c, bound_s: float) -> dict:
    """The lab contract; returns what it saw (for the caller's report)."""
    caps = c.capabilities
    assert caps.is_live and caps.takes_inputs and caps.takes_faults
    assert pump(c, seen_colo, bound_s), [str(e.kind) for e in c.events[-40:]]
    st = c.status()
    assert st["primary"]["colo_status"]["mode"] == "primary", st["primary"]
    assert st["secondary"]["colo_status"]["mode"] == "secondary", st["secondary"]
    assert st["primary"]["checkpoint"] >= 1
    for v in kinds(c, "verdict"):
        assert v.payload()["verdict"] in ("match", "mismatch", "no-secondary")
    g = c.guest("primary")
    assert g.kind == "lab" and "client" in g.packets, g

    # a fault the lab does not take is refused, and says where faults go
    with pytest.raises(SessionError, match="compare channels"):
        c.add_fault("drop@checkpoint-request#2")
    # a compare-channel fault: armed, then it fires on the next primary-in data packet
    # (the primary's guest: under TCG the secondary's Linux may have panicked by now,
    # see colo_tui/lab/run.py, and then compare-in carries nothing)
    c.add_fault("corrupt@primary-in#1")
    assert c.faults() == ["corrupt@primary-in#1"]
    hit = lambda c: [e for e in kinds(c, "packet", channel="primary-in")  # noqa: E731
                     if (e.payload().get("fault") or "").startswith("corrupt@primary-in")]
    assert pump(c, lambda c: hit(c) and c.fired() == {0}, bound_s), c.faults()
    assert kinds(c, "fault", point="primary-in")
    bad = hit(c)[0].payload()
    # colo-compare cannot match the corrupted bytes with the secondary's (or the
    # secondary sent nothing): never a match
    judged = lambda c: [v for v in kinds(c, "verdict")  # noqa: E731
                        if v.payload()["primary_n"] == bad["n"]]
    assert pump(c, judged, bound_s), bad
    assert judged(c)[0].payload()["verdict"] in ("mismatch", "no-secondary"), judged(c)

    # the primary dies; COLO-FT.txt's failover onto the secondary
    c.kill("primary")
    assert pump(c, lambda c: not c.status()["primary"]["alive"], bound_s)
    assert kinds(c, "process", what="killed")
    c.failover("secondary")
    assert pump(c, lambda c: c.status()["secondary"]["colo_status"] == {
        "mode": "none", "last-mode": "secondary", "reason": "request"}, bound_s), \
        c.status()["secondary"]
    assert any("x-colo-lost-heartbeat" in (e.payload().get("command") or "")
               for e in kinds(c, "qmp"))
    with pytest.raises(Exception, match="not running"):
        c.kill("primary")
    return {"events": len(c.events), "checkpoints": st["primary"]["checkpoint"],
            "packets": len(kinds(c, "packet")), "verdicts": len(kinds(c, "verdict"))}
