"""Plain words: every event kind gets a sentence, and no Python repr reaches a user.

The kinds are not listed by hand: they come from the event classes' registry
(`protocol.core.events.KINDS`), and the text is checked on real sessions: every dialect and
mode, the guest model and none, faults and failovers, the golden recordings, an imported
capture and a live TCP pair.  Each text goes through every place a user reads it: the
TUI's log and explanation pane, the ladder, the REPL's event lines and `colo run --events`.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from colo_tui.cli.core import _event_line
from colo_tui.present import sentences
from colo_tui.present.explain import explain, explain_last
from colo_tui.present.tui_views import Ladder, LogModel
from colo_tui.repl.render import event_line
from colo_tui.session.control import Controller
from protocol.core.events import ACTION_NAMES, KINDS, Event, EventKind
from protocol.record import format as rf
from protocol.record.eventjson import from_json
from protocol.sim.config import SimConfig
from tests._events import sample

ROOT = Path(__file__).resolve().parents[2]
RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1" / "capture.pcap"
#: a repr or a key=value dump: braces and brackets, None/True/False, a quoted item of a
#: list or dict ('x', / 'x':), two key=value pairs in a row
REPR = re.compile(r"[{}\[\]]|\bNone\b|\bTrue\b|\bFalse\b|'[^'\s]*'(?=[,:)\]])"
                  r"|\w+=\S+ \w+=\S+")


def _leaks(text: str) -> list[str]:
    return [m.group(0) for m in REPR.finditer(text)]


# ------------------------------------------------------------ kinds from the classes
def test_the_registry_is_the_list_of_kinds():
    assert set(KINDS) == {str(k) for k in EventKind}
    for name, cls in KINDS.items():
        assert cls.kind is EventKind(name) and cls.kind == name
    assert {"send-ram", "checkpoint", "watchdog", "fence", "qmp-event", "status",
            "listening", "upstream-failed", "ram", "device-state", "closed",
            "stopped-for-checkpoint", "recv-initial"} <= set(KINDS)


def test_every_kind_has_its_own_sentence():
    missing = sorted(set(KINDS) - set(sentences.KINDS))
    assert not missing, f"event kinds without a sentence: {missing}"
    assert ACTION_NAMES <= set(sentences._ACTIONS), ACTION_NAMES - set(sentences._ACTIONS)


def test_the_sessions_name_only_known_actions():
    c = Controller(SimConfig(guest="model", checkpoints=2, load_ms=5.0,
                             faults=["kill-primary@vmstate-send#2"]))
    c.run()
    names = {e.name for e in c.events if e.kind is EventKind.ACTION}
    assert {"save-devices", "flush-cache", "take-over"} <= names <= ACTION_NAMES


#: awkward values an event field can hold: None, booleans, lists, dicts, bytes
ODD = (None, True, False, [3, 4, 5, 9], {"pc.ram": 3, "vga": None}, b"\x00\x01", 2.5, "",
       ("a", 1))


@pytest.mark.parametrize("odd", ODD, ids=repr)
def test_every_kind_renders_without_repr(odd):
    """Each kind's own fields, all filled with each awkward value (``raw``, the bytes of
    a message, only with bytes)."""
    for kind in KINDS:
        for side in ("primary", "link", "arbiter"):
            raw = {"raw": odd} if isinstance(odd, bytes) else {"raw": None}
            has_raw = kind in ("send", "recv")
            ev = sample(kind, side, fill=odd, **(raw if has_raw else {}))
            for text in _all_texts(ev, "qemu"):
                assert not _leaks(text), (kind, ev, text)


# ------------------------------------------------------------------ real sessions
def _all_texts(ev, dialect: str) -> list[str]:
    texts = [sentences.sentence(ev), sentences.line(ev), LogModel.text(ev), event_line(ev),
             _event_line(ev), explain(ev, dialect)]
    ladder = Ladder()
    ladder.feed([ev])
    texts += [r.label for r in ladder.rows]
    return texts


def _check(events, dialect: str) -> set[str]:
    kinds = set()
    for ev in events:
        if isinstance(ev, dict):
            ev = from_json(ev)
        kinds.add(ev.kind)
        for text in _all_texts(ev, dialect):
            assert not _leaks(text), (ev.kind, ev.payload(), text, _leaks(text))
    return kinds


FAULTS = ([], ["kill-primary@ram#2"], ["kill-secondary@vmstate-send#1"],
          ["stall-secondary@checkpoint-reply#1"], ["drop@vmstate-loaded#1"],
          ["partition=300@vmstate-send#1"], ["close@device-state#1"],
          ["corrupt@checkpoint-request#1"], ["heartbeat-secondary@checkpoint-request#1"],
          ["truncate@device-state#1"])


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
def test_simulated_sessions_read_plainly(dialect, mode):
    seen = set()
    for guest in ("null", "model"):
        for faults in (FAULTS if guest == "null" else FAULTS[:3]):
            if dialect == "prototype":       # RAM travels inside the device-state blob
                faults = [f.replace("@ram#", "@device-state#") for f in faults]
            c = Controller(SimConfig(dialect=dialect, mode=mode, guest=guest, faults=faults,
                                     checkpoints=2, load_ms=5.0, client_every_ms=400.0))
            c.step(3)
            c.set_checkpoint_delay(700)
            c.run()
            seen |= _check(c.events, dialect)
            assert not _leaks(explain_last(c))
    assert {"send", "recv", "checkpoint", "action", "end"} <= seen


def test_the_operator_and_the_arbiter_read_plainly():
    c = Controller(SimConfig(load_ms=500.0, faults=["heartbeat-secondary@load#2"]))
    c.run()
    c2 = Controller(SimConfig(faults=["heartbeat-secondary@checkpoint-request#1"]))
    c2.step(6)                                # (it ends at step 10: an input after is refused)
    c2.lost_heartbeat("secondary")            # a second request: a QMP error
    c2.run()
    c3 = Controller(SimConfig(faults=["kill-primary@ram#1"]))
    c3.run()
    c4 = Controller(SimConfig(faults=["stall-secondary@checkpoint-reply#1"]))
    c4.run()
    kinds = set().union(*(_check(x.events, "qemu") for x in (c, c2, c3, c4)))
    assert {"deferred", "failover", "qmp-error", "input", "fence"} <= kinds
    arbiter = [e for x in (c3, c4) for e in x.events if e.side == "arbiter"]
    assert arbiter and all("None" not in event_line(e) for e in arbiter)


def test_the_golden_recordings_read_plainly():
    files = sorted((ROOT / "recordings").glob("*.colo.jsonl"))
    assert len(files) >= 20
    kinds = set()
    for path in files:
        rec = rf.read(path)
        kinds |= _check(rec.events, rec.header.get("dialect", "qemu"))
    assert {"fence", "watchdog", "default-failover", "checkpoint-requested"} <= kinds


def _imported_events(pcap: Path) -> list[dict]:
    from colo_tui.cli.qemu import session_events
    from protocol.record.qemu_import import import_capture
    return session_events(import_capture(pcap))


def test_an_imported_capture_reads_plainly(tmp_path):
    from tests.stream._synth import colo_session, make_pcap, page
    fwd, rev, _ctx = colo_session([[page("pc.ram", 0x2000), page("pc.ram", 0x3000, "zero")],
                                   [page("vga.vram", 0x1000, "xbzrle")]], lone_request=True)
    pcap = tmp_path / "synthetic.pcap"
    pcap.write_bytes(make_pcap(fwd, rev, fin_from="primary"))
    events = _imported_events(pcap)
    assert {"ram", "device-state", "closed"} <= _check(events, "qemu")
    closed = LogModel.text(Event(0, "link", "closed", events[-1]["data"]))
    assert "nobody answered" in closed


@pytest.mark.skipif(not RUN1.exists(), reason="shared/qemu-colo/run1 is not here")
def test_the_real_qemu_capture_reads_plainly():
    events = _imported_events(RUN1)
    assert {"ram", "device-state", "closed", "recv-initial"} <= _check(events, "qemu")


def test_a_live_tcp_pair_reads_plainly():
    from colo_tui.session.live import live_controller
    from colo_tui.session.live_sources import TcpPair
    c = live_controller(TcpPair(SimConfig(checkpoint_delay_ms=50)))
    try:
        for _ in range(100):                       # bounded: 100 waits of at most 0.2 s
            c.step(500, wait_s=0.2)
            if c.status()["primary"]["checkpoint"] >= 1:
                break
        c.lost_heartbeat("secondary")
        for _ in range(100):
            c.step(500, wait_s=0.2)
            if any(e.kind == "colo-exit" for e in c.events):
                break
        kinds = _check(list(c.events), "qemu")
    finally:
        c.close()
    assert {"listening", "send", "checkpoint"} <= kinds


# ----------------------------------------------------------------- the old texts
def test_the_texts_the_issue_quoted_are_gone():
    req = Event(0, "primary", "checkpoint-requested", {"reason": "x-checkpoint-delay changed"})
    assert "{" not in explain(req) and "x-checkpoint-delay changed" in explain(req)
    dog = Event(0, "arbiter", "watchdog", {"why": "no checkpoint completed for 2000 ms"})
    assert "{" not in explain(dog) and "2000 ms" in explain(dog)
    arb = Event(0, "arbiter", "failover", {"side": "secondary", "why": "the peer is gone"})
    assert "None" not in event_line(arb) and "secondary" in event_line(arb)
    vm = Event(0, "secondary", "vm", {"run": "paused", "why": "periodic", "qmp": None})
    assert "None" not in LogModel.text(vm) and "note=" not in LogModel.text(vm)
    assert sentences.plain([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert sentences.plain(True) == "yes" and sentences.plain(None) == "none"


def test_the_log_filter_still_matches_kinds():
    c = Controller(SimConfig(checkpoints=1))
    c.run()
    log = LogModel(c.events)
    log.set_filter("send-ram")                      # a kind: the text says "sends the RAM"
    assert log.count >= 1 and all(log.event(i).kind == "send-ram" for i in range(log.count))


def test_the_repl_commands_print_no_repr():
    """What the REPL's views print, on a session with the guest model, a fault and a
    failover (`show failover` marks the current state as [state]: a marker, allowed)."""
    from colo_tui.commands import execute
    c = Controller(SimConfig(guest="model", faults=["kill-primary@ram#2"], divergence=0.05))
    outputs = []
    for line in ("status", "step 40", "show ram", "show packets", "show disk", "faults",
                 "run", "status", "show ram", "show disk", "show ladder", "explain",
                 "show failover", "legend", "help"):
        r = execute(c, line)
        assert r.ok, (line, r.text)
        outputs.append((line, r.text))
    for line, text in outputs:
        if line == "show failover":
            text = re.sub(r"\[(none|require|active|completed|relaunch)\]", r"\1", text)
        if line == "show ladder":
            text = re.sub(r"\[(ram|device-state|initial) \d+ B\]", "", text)
        # what still works at the end, in the commands' syntax (SessionEnded.COMMANDS)
        text = text.replace("back [N] = step back", "back N = step back")
        if line == "help":
            while re.search(r"\[[^\[\]]*\]", text):      # [N] = an optional argument
                text = re.sub(r"\[[^\[\]]*\]", "", text)      # (nested: [FILE [force]])
        assert not _leaks(text), (line, _leaks(text), text[:400])


def test_a_channel_fault_names_its_packet_not_a_checkpoint():
    """colo lab's compare channels number packets: the fault's line said 'fires at
    primary-in of checkpoint 222' and the packet's '(1 copies sent on)'."""
    from protocol.core.events import make
    fired = sentences.sentence(make(1.0, "link", "fault", spec="corrupt@primary-in#1",
                                    point="primary-in", n=222))
    assert fired == "fault corrupt@primary-in#1 fires at packet 222 on primary-in", fired
    link = sentences.sentence(make(1.0, "link", "fault", spec="drop@vmstate-send#2",
                                   point="vmstate-send", n=2))
    assert "vmstate-send of checkpoint 2" in link, link          # the link's unchanged
    hit = sentences.sentence(make(1.0, "primary", "packet", channel="primary-in", n=222,
                                  proto="tcp", length=60, fault="corrupt@primary-in#1", copies=1))
    assert hit.endswith("hits it (sent on once)"), hit
    twice = sentences.sentence(make(1.0, "primary", "packet", channel="mirror", n=3,
                                    proto="tcp", length=60, fault="duplicate@mirror#1", copies=2))
    assert twice.endswith("(2 copies sent on)"), twice
