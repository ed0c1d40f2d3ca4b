"""A message that is lost never lands: it must not stay in the ladder's list of
messages in flight, where the next reception of that message would land it instead
of its own arrow (every later one of the kind was then drawn in flight, one behind)."""
from __future__ import annotations

from collections import Counter

import pytest

from colo_tui.present.tui_views import Ladder
from colo_tui.session.control import Controller
from colo_tui.tui.bridge import Bridge
from protocol.sim.config import SimConfig


def test_a_lost_message_does_not_take_the_next_ones_landing() -> None:
    from protocol.core.events import Lost, Recv, Send
    ladder = Ladder(flight=True)
    ladder.feed([Send(1.0, "primary", msg="checkpoint-request", value=0, seq=0),
                 Lost(1.0, "sim", dir="P>S", point="checkpoint-request", n=1,
                      why="dropped by a fault", seq=1)])
    lost = ladder.rows[-1]
    assert lost.lost and not lost.flying
    ladder.feed([Send(2.0, "primary", msg="checkpoint-request", value=0, seq=2)])
    second = ladder.rows[-1]
    assert second.flying
    ladder.feed([Recv(2.05, "secondary", msg="checkpoint-request", value=0, seq=3)])
    assert not second.flying                     # it landed, not the lost one


@pytest.mark.parametrize("faults", [
    ["kill-primary@checkpoint-request#2", "reprotect@failover#1"],   # preset #
    ["drop@checkpoint-request#2"],
])
def test_after_a_lost_message_each_later_one_lands_when_received(faults) -> None:
    c = Controller(SimConfig(seed=1, faults=faults, checkpoints=5))
    b = Bridge(c)
    for _ in range(10_000):
        if c.finished:
            break
        c.step(1)
        b.view()
        rows = b.ladder.rows
        for i, row in enumerate(rows):
            # a request in flight while its reply is already on the ladder
            if row.flying and row.point == "checkpoint-request":
                assert not any(r.point == "checkpoint-reply" for r in rows[i + 1:]), \
                    f"step {c.steps}: request #{row.seq} still in flight after its reply"
    assert c.finished
    assert not [r.seq for r in b.ladder.rows if r.flying]


def _really_in_flight(events) -> dict:
    """Per message and direction: sent, minus received, minus lost."""
    n: Counter = Counter()
    for ev in events:
        d = ev.payload()
        if ev.kind == "send":
            n[(d["msg"], "P>S" if ev.side == "primary" else "S>P")] += 1
        elif ev.kind == "recv":
            n[(d["msg"], "P>S" if ev.side == "secondary" else "S>P")] -= 1
        elif ev.kind in ("lost", "dropped"):
            n[(d["point"], d["dir"])] -= 1
    return n


def test_after_a_full_speed_burst_messages_land_when_received() -> None:
    # a burst (full speed) keeps only its tail's rows; a message drawn in flight before
    # it, and received inside it, was left in the list: it then took the landing of the
    # next such message, drawn in flight one checkpoint behind from then on
    c = Controller(SimConfig(seed=1, checkpoints=100))
    b = Bridge(c)
    c.step(7)                       # checkpoint 1's vmstate-send and -size in flight
    b.view()
    assert any(r.flying for r in b.ladder.rows)
    c.step(300)                     # more events than the ladder draws at once
    b.view()
    for _ in range(40):
        c.step(1)
        b.view()
        really = _really_in_flight(c.events)
        drawn = Counter((r.point, r.direction) for r in b.ladder.rows if r.flying)
        for key, count in drawn.items():
            assert count <= really[key], f"step {c.steps}: {key} drawn in flight, received"
