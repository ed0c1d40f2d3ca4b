"""What the views say is right: wire bytes, a dead side, the order of a lesson, the end.

Ladder, explanation and `colo run` are checked on real simulated sessions and on an
imported capture (a synthetic pcap, and QEMU's own capture when it is here).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from colo_tui.cli.qemu import session_events
from colo_tui.present.explain import explain, explain_last
from colo_tui.present.tui_views import Ladder
from colo_tui.session.control import Controller
from protocol.core.events import Event
from protocol.record.qemu_import import import_capture
from protocol.sim.config import SimConfig
from tests.tui.conftest import make_app

ROOT = Path(__file__).resolve().parents[2]


def _run(**cfg) -> Controller:
    c = Controller(SimConfig(**cfg))
    c.run()
    return c


# ---------------------------------------------------------------- wire bytes
@pytest.mark.parametrize("dialect", ["qemu", "v11"])
def test_vmstate_size_shows_its_real_bytes(dialect):
    c = _run(dialect=dialect, guest="model", checkpoints=1)
    ev = next(e for e in c.events if e.kind == "send" and e.payload()["msg"] == "vmstate-size")
    size = ev.payload()["value"]
    assert size > 0
    text = explain(ev, dialect)
    assert ev.payload()["hex"] in text and ev.payload()["hex"].endswith(f"{size:016x}")
    assert f"{0:016x}." not in text                   # not the zeroed encoding
    # an event without its bytes (a JSON dict) is encoded from its value
    assert f"{size:016x}" in explain({"side": "primary", "kind": "send",
                                      "data": {"msg": "vmstate-size", "value": size}}, dialect)


# ------------------------------------------------------------- a dead side
def test_colo_run_says_who_died_and_how_it_ended():
    r = subprocess.run([sys.executable, "-m", "colo_tui", "run", "--fault",
                        "kill-primary@ram#2"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "primary   DEAD: killed (fault kill-primary@ram#2)" in out
    assert "The scenario ended: a failover left exactly one VM running" in out
    assert "It started with" in out and "kill-primary@ram#2" in out
    primary = next(line for line in out.splitlines() if line.startswith("  primary"))
    assert "run=running" not in primary and "mode=" not in primary


def test_a_dead_side_looks_dead_in_the_panel():
    async def go():
        app = make_app(faults=["kill-primary@ram#1"])
        async with app.run_test(size=(160, 48)) as pilot:
            app.bridge.c.run()
            app.bridge.changed()
            await pilot.pause()
            panel = app.query_one("#primary")
            text = str(panel.render())
            assert "process is dead" in text and "PRIMARY  ☠" in text
            assert "running" not in text and "mode" not in text and "failover" not in text
            alive = str(app.query_one("#secondary").render())
            assert "running" in alive and "mode" in alive
    import asyncio
    asyncio.run(go())


# ---------------------------------------------------------------- lesson order
def _labels(rows) -> list[str]:
    return [r.label for r in rows]


def _index(labels, prefix, start=0):
    return next(i for i in range(start, len(labels)) if labels[i].startswith(prefix))


@pytest.mark.parametrize("load_ms", [0.0, 30.0])
def test_qemu_releases_output_between_received_and_loaded(load_ms):
    c = _run(dialect="qemu", checkpoints=2, load_ms=load_ms)
    ladder = Ladder()
    ladder.feed(c.events)
    labels = _labels(ladder.rows)
    start = 0
    for _ in range(2):
        rec = _index(labels, "vmstate-received", start)
        rel = _index(labels, "release packets", start)
        loaded = _index(labels, "vmstate-loaded", start)
        assert rec < rel < loaded, labels[rec - 1:loaded + 2]
        start = loaded + 1
    # the events themselves: the primary releases on vmstate-received, before it reads
    # vmstate-loaded, whatever the load time
    prim = [e for e in c.events if e.side == "primary" and (
        e.kind == "recv" or e.payload().get("name") == "release-output")]
    kinds = [e.payload().get("msg") or e.payload().get("name") for e in prim]
    i = kinds.index("vmstate-received")
    assert kinds[i + 1] == "release-output" and kinds[i + 2] == "vmstate-loaded"


def test_v11_releases_output_after_loaded():
    ladder = Ladder()
    ladder.feed(_run(dialect="v11", checkpoints=1).events)
    labels = _labels(ladder.rows)
    assert _index(labels, "vmstate-loaded") < _index(labels, "release packets")


def test_a_simulated_session_draws_its_initial_migration_once():
    ladder = Ladder()
    ladder.feed(_run(checkpoints=1).events)
    assert sum(r.point == "initial" for r in ladder.rows) == 1


def test_a_feed_in_pieces_draws_the_same_ladder():
    c = _run(checkpoints=2)
    whole, pieces = Ladder(), Ladder()
    whole.feed(c.events)
    for i in range(0, len(c.events), 7):
        pieces.feed(c.events[i:i + 7])
    assert _labels(whole.rows) == _labels(pieces.rows)


@pytest.mark.parametrize("faults,cause", [
    (["corrupt@checkpoint-request#1"], "corrupt@checkpoint-request#1"),
    (["heartbeat-secondary@checkpoint-request#1"], "heartbeat-secondary"),
    (["kill-primary@ram#1"], "kill-primary@ram#1"),
])
def test_the_narration_at_the_end_keeps_the_reason(faults, cause):
    c = _run(faults=faults)
    text = explain_last(c)
    assert "The scenario ended" in text and "It started with" in text and cause in text


def test_a_clean_end_says_nothing_went_wrong():
    text = explain_last(_run(checkpoints=1))
    assert "Nothing went wrong" in text


def _imported(pcap: Path) -> list[Event]:
    return [Event(e["t"], e["side"], e["kind"], e["data"], e["seq"])
            for e in session_events(import_capture(pcap))]


def test_an_imported_capture_has_ram_and_device_rows_and_the_close_reason(tmp_path):
    from tests.stream._synth import colo_session, make_pcap, page
    fwd, rev, _ = colo_session([[page("pc.ram", 0x2000), page("pc.ram", 0x3000, "zero")],
                                [page("pc.ram", 0x4000)]], lone_request=True)
    pcap = tmp_path / "s.pcap"
    pcap.write_bytes(make_pcap(fwd, rev))
    ladder = Ladder()
    ladder.feed(_imported(pcap))
    rows = ladder.rows
    ram = [r for r in rows if r.kind == "payload" and r.point == "ram"]
    dev = [r for r in rows if r.kind == "payload" and r.point == "device-state"]
    assert len(ram) == 2 and len(dev) == 2
    assert ram[0].label.startswith("RAM 2 pages") and ram[0].direction == "P>S"
    closed = rows[-1]
    assert closed.kind == "fault" and "nobody answered" in closed.label
    assert rows[0].point == "initial" and rows[0].direction == "P>S"    # one row, first
    assert sum(r.point == "initial" for r in rows) == 1
    # RAM sits between vmstate-send and vmstate-size, device state right after the size
    labels = _labels(rows)
    assert labels.index(ram[0].label) == _index(labels, "vmstate-send") + 1
    assert labels.index(dev[0].label) == _index(labels, "vmstate-size") + 1


RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1" / "capture.pcap"


@pytest.mark.skipif(not RUN1.exists(), reason="shared/qemu-colo/run1 is not here")
def test_the_real_capture_ladder():
    ladder = Ladder()
    ladder.feed(_imported(RUN1))
    points = [r.point for r in ladder.rows if r.kind == "payload"]
    assert points.count("ram") >= 20 and points.count("device-state") >= 20
    assert "checkpoint-request that nobody answered" in ladder.rows[-1].label


# ---------------------------------------------------------------- dialect hint
def _errors(c) -> list[str]:
    return [e.payload()["message"] for e in c.events if e.kind == "error"]


def test_the_dialect_hint_only_when_plausible():
    # the very first message is foreign: another dialect is a fair guess
    first = _run(dialect="qemu", secondary_dialect="v11")
    assert any("is the peer speaking v11?" in m for m in _errors(first))
    # the peer spoke qemu for a whole checkpoint, then sent a message out of order
    mid = _run(faults=["unexpected=vmstate-size@vmstate-send#2"])
    errs = _errors(mid)
    assert errs and any("Unexpected COLO message 4, expected 3" in m for m in errs)
    assert not any("speaking" in m for m in errs)


def test_an_invalid_id_guesses_a_dialect_only_before_the_peer_made_sense():
    first = _run(faults=["opcode=70@checkpoint-ready#1"])       # 0x46: a prototype word?
    assert any("Invalid message 70" in m and "speaking prototype" in m
               for m in _errors(first))
    mid = _run(faults=["opcode=70@checkpoint-request#2"])
    errs = _errors(mid)
    assert any("Invalid message 70" in m for m in errs)
    assert not any("speaking" in m for m in errs)


def test_a_message_is_drawn_in_flight_until_it_is_received() -> None:
    from colo_tui.present.tui_views import Ladder
    from colo_tui.tui.widgets.ladder import row_text
    from protocol.core.events import Recv, Send
    ladder = Ladder(flight=True)
    send = Send(1.0, "primary", msg="checkpoint-request", value=0, seq=0)
    ladder.feed([send])
    row = ladder.rows[-1]
    flying = row_text(row, 60)
    assert row.flying and "▷" in flying and "┄" in flying and "checkpoint-request" in flying
    assert flying.rstrip().endswith("▷") and len(flying.rstrip()) < 60    # half-way
    before = ladder.version
    recv = Recv(1.05, "secondary", msg="checkpoint-request", value=0, seq=1)
    ladder.feed([recv])
    assert not row.flying and ladder.version > before
    landed = row_text(row, 60)
    assert landed.rstrip().endswith("▶") and "┄" not in landed
    # a playback of a capture reports no receptions: nothing is left in flight
    still = Ladder(flight=False)
    still.feed([send])
    assert not still.rows[-1].flying


async def test_the_app_shows_the_first_message_in_flight() -> None:
    from colo_tui.session.control import Controller
    from colo_tui.tui.app import ColoApp
    app = ColoApp(Controller())
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(12):
            await pilot.press("n")
            await pilot.pause()
            if any(r.flying for r in app.bridge.ladder.rows):
                break
        assert any(r.flying for r in app.bridge.ladder.rows)
        await pilot.press("n", "n", "n")
        await pilot.pause()
        flying = [r for r in app.bridge.ladder.rows if r.flying]
        assert len(flying) <= 2          # messages land as the peer receives them
