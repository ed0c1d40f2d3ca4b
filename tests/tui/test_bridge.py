"""The bridge without Textual: events -> ladder rows, log filter, coalescing, speed."""
from __future__ import annotations

from colo_tui.session.control import Controller
from colo_tui.tui.bridge import SPEEDS, Bridge, LogModel
from protocol.sim.config import SimConfig


class Sink:
    def __init__(self) -> None:
        self.messages = []

    def post_message(self, message) -> bool:
        self.messages.append(message)
        return True


def test_one_arrow_per_control_message_in_order() -> None:
    c = Controller(SimConfig(seed=1))
    c.run(checkpoints=1)
    b = Bridge(c)
    msgs = [r.label.split()[0] for r in b.view().ladder if r.kind == "msg"]
    assert msgs[:7] == ["checkpoint-ready", "checkpoint-request", "checkpoint-reply",
                        "vmstate-send", "vmstate-size", "vmstate-received", "vmstate-loaded"]
    rows = b.view().ladder
    size = next(r for r in rows if r.point == "vmstate-size")
    assert size.direction == "P>S" and size.hex == "000000040000000000000001"
    assert size.label == "vmstate-size 1" and size.checkpoint == 1
    assert any(r.kind == "payload" and r.point == "ram" for r in rows)


def test_dropped_message_is_marked_and_fault_shown() -> None:
    c = Controller(SimConfig(seed=1, faults=["drop@vmstate-received#1"]))
    c.run()
    rows = Bridge(c).view().ladder
    dropped = [r for r in rows if r.lost]
    assert dropped and dropped[0].point == "vmstate-received" and dropped[0].lost == "dropped"
    assert any(r.kind == "fault" and "drop@vmstate-received#1" in r.label for r in rows)


def test_kill_shades_the_fault_window_and_errors_are_rows() -> None:
    c = Controller(SimConfig(seed=1, faults=["kill-primary@ram#1"]))
    c.run()
    rows = Bridge(c).view().ladder
    killed = next(i for i, r in enumerate(rows) if "killed" in r.label)
    assert all(r.shaded for r in rows[killed + 1:])
    assert not any(r.shaded for r in rows[:killed])
    assert any(r.kind == "error" for r in rows)


def test_log_filter_and_columns() -> None:
    c = Controller(SimConfig(seed=1))
    c.run(checkpoints=1)
    log = LogModel(c.events)
    assert log.count == len(c.events)
    log.set_filter("vmstate-size")
    assert 0 < log.count < len(c.events)
    assert all("vmstate-size" in log.line(i)[3] for i in range(log.count))
    c.step(5)                        # new events are scanned incrementally
    assert log.count >= 2


def test_updates_coalesce() -> None:
    sink = Sink()
    c = Controller(SimConfig(seed=1))
    b = Bridge(c, target=sink)
    b.step()
    b.step()
    first, second = sink.messages
    assert second.can_replace(first)
    assert isinstance(first, Bridge.Updated)


def test_full_speed_tick_runs_to_the_end_and_stops() -> None:
    c = Controller(SimConfig(seed=1))
    b = Bridge(c)
    b.speed_index = SPEEDS.index(0)
    b.toggle_run()
    for _ in range(20):
        b.tick(1 / 30)
    assert c.finished and not b.running
    assert b.view().status.outcome == "ok"


def test_burst_keeps_only_the_ladder_tail_but_tracks_commits() -> None:
    c = Controller(SimConfig(seed=1, checkpoints=200, checkpoint_delay_ms=100))
    c.run()
    v = Bridge(c).view()
    assert len(v.ladder) < len(c.events)
    assert v.sides["primary"].since_ms is not None
    assert v.ladder[-1].label == "end: ok"


def test_null_guest_has_no_layers() -> None:
    c = Controller(SimConfig(seed=1))
    assert c.guest("primary").kind == "null" and c.guest("primary").summary() == {}
    side = Bridge(c).view().sides["primary"]
    assert side.heat is None and side.packets == "—" and side.disk == "—"


def test_hint_at_start_then_gone() -> None:
    b = Bridge(Controller(SimConfig(seed=1)))
    assert "press n" in b.view().status.notice
    b.step()
    assert b.view().status.notice == ""
