"""Every event kind gets an explanation; dialect differences show where they matter."""
from colo_tui.commands.parser import EVENT_KINDS, MESSAGE_NAMES
from colo_tui.present.explain import explain, explain_last
from colo_tui.session.control import Controller
from protocol.core.events import KINDS, Event
from tests._events import sample


def test_messages_and_dialects():
    for msg in MESSAGE_NAMES:
        for d in ("qemu", "v11", "prototype"):
            text = explain(Event(0, "primary", "send", {"msg": msg}), d)
            assert msg in text and len(text) > 80
    ready = explain(Event(0, "secondary", "send", {"msg": "checkpoint-ready"}), "qemu")
    assert "00000000" in ready
    assert "0000000100000000" in explain(
        Event(0, "secondary", "send", {"msg": "checkpoint-ready"}), "v11")
    assert "46" in explain(Event(0, "secondary", "send", {"msg": "checkpoint-ready"}),
                           "prototype")
    rel = Event(0, "primary", "action", {"name": "release-output"})
    assert "after vmstate-received" in explain(rel, "qemu")
    assert "after vmstate-loaded" in explain(rel, "v11")
    err = Event(0, "primary", "error", {"message": "boom"})
    assert "2000 ms" in explain(err, "v11") and "x-colo-lost-heartbeat" in explain(err, "qemu")


def test_failover_states():
    for to in ("none", "require", "active", "completed", "relaunch"):
        text = explain(Event(0, "secondary", "failover", {"from": "x", "to": to}), "qemu")
        assert len(text) > 80
    assert "handling" in explain(Event(0, "s", "failover", {"to": "handling"}), "v11")


def test_every_kind_has_text():
    assert set(EVENT_KINDS) == set(KINDS)          # `run until` offers every kind
    for kind in KINDS:
        assert explain(sample(kind, "link"), "qemu")
    assert "split brain" in explain(Event(0, "sim", "end", {"outcome": "split-brain"})).lower()
    assert "fences" in explain(Event(0, "arbiter", "fence", {"side": "secondary", "why": "x"}))


def test_explain_last():
    c = Controller()
    assert "Nothing has happened yet" in explain_last(c)
    c.step(5)
    assert "Event " in explain_last(c)
    c.run(1)
    c.lost_heartbeat("primary")
    text = explain_last(c)
    assert "Event " in text
