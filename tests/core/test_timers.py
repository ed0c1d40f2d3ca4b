"""Timers: named deadlines, and the change count the simulator polls instead of
recomputing every endpoint's next deadline after each happening."""
from protocol.core.timers import Timers


def test_deadlines_and_the_change_count():
    t = Timers()
    assert t.changes == 0 and t.next_deadline() is None and not t
    t.set("checkpoint", 10.0)
    t.set("heartbeat", 5.0)
    assert t.changes == 2 and t.next_deadline() == 5.0
    t.cancel("absent")                  # nothing moved: not a change
    assert t.changes == 2
    t.cancel("heartbeat")
    assert t.changes == 3 and t.next_deadline() == 10.0
    assert not t.fire("checkpoint", 9.0) and t.changes == 3     # not due: stays
    assert t.due(10.0) == ["checkpoint"]
    assert t.fire("checkpoint", 10.0) and t.changes == 4 and t.next_deadline() is None
    assert not t.fire("checkpoint", 11.0) and t.changes == 4    # already gone
    t.set("checkpoint", 10.0)           # the same deadline again is still a change
    assert t.changes == 5 and "checkpoint" in t


def test_due_lists_the_expired_earliest_first():
    t = Timers()
    for name, at in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("late", 9.0)):
        t.set(name, at)
    assert t.due(3.0) == ["a", "b", "c"]
    assert t.get("late") == 9.0 and t.get("nope") is None
