"""Typed events: the registry, immutability, loud construction errors, the JSON codec
(every golden recording's lines read back to themselves), and the endpoints' control
outputs that drivers use instead of scanning the stream."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import dialects
from protocol.core.endpoint import make_endpoint
from protocol.core.events import KINDS, Checkpoint, Event, EventError, EventKind, Send, State, make
from protocol.errors import RecordingError
from protocol.record import format as rf
from protocol.record.eventjson import from_json, to_json
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation
from tests._events import payload_fields

ROOT = Path(__file__).resolve().parents[2]


def test_the_enum_is_derived_from_the_classes():
    assert [str(k) for k in EventKind] == list(KINDS)
    assert EventKind.CHECKPOINT == "checkpoint" and Checkpoint.kind is EventKind.CHECKPOINT
    for cls in KINDS.values():
        ev = cls.__new__(cls)
        with pytest.raises(AttributeError):
            ev.__dict__                                   # noqa: B018 - slotted
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


def test_events_are_frozen_and_numbered_once_by_their_stream():
    ev = State(1.0, "primary", machine="primary", to="IDLE", from_="INIT")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.to = "ERROR"
    ev.stamp(41)
    assert ev.seq == 41


def test_the_name_form_builds_the_class_and_refuses_mistakes():
    ev = Event(2.0, "secondary", "state", {"machine": "secondary", "to": "A", "from": "B"})
    assert type(ev) is State and ev.from_ == "B"
    assert make(0, "arbiter", "fence", side="secondary", why="w").side == "arbiter"
    with pytest.raises(EventError, match="unknown event kind 'checkpiont'"):
        Event(0, "primary", "checkpiont", {"n": 1, "phase": "begin"})
    with pytest.raises(EventError, match="has no field 'phse'"):
        make(0, "primary", "checkpoint", n=1, phse="begin")
    with pytest.raises(EventError, match="phase"):
        make(0, "primary", "checkpoint", n=1)
    with pytest.raises(EventError, match="not hexadecimal"):
        make(0, "primary", "send", msg="x", hex="zz")


def test_the_hex_of_a_message_is_derived_from_its_bytes():
    ev = make(0, "primary", "send", msg="checkpoint-request", value=0, hex="00000001")
    assert ev.raw == b"\x00\x00\x00\x01" and ev.hex == "00000001"
    assert "hex" not in {f.name for f in dataclasses.fields(Send)}
    assert to_json(ev)["data"]["hex"] == "00000001"
    assert Send(0, "p", msg="x").hex == "" and "hex" not in to_json(Send(0, "p", msg="x"))["data"]


def test_every_golden_recording_line_reads_back_to_itself():
    files = sorted((ROOT / "recordings").glob("*.colo.jsonl"))
    assert len(files) >= 20
    kinds = set()
    for path in files:
        for i, line in enumerate(rf.read(path).events):
            ev = from_json(line, where=f"{path.name} event {i}")
            kinds.add(ev.kind)
            assert to_json(ev) == {**line, "t": round(float(line["t"]), 6)}, (path.name, i)
    assert {EventKind.SEND, EventKind.FENCE, EventKind.WATCHDOG} <= kinds


def test_a_line_that_is_not_an_event_is_a_recording_error():
    with pytest.raises(RecordingError, match="event 3: unknown event kind 'x'"):
        from_json({"t": 0, "seq": 0, "side": "sim", "kind": "x"}, where="event 3")
    with pytest.raises(RecordingError, match="has no field 'bogus'"):
        from_json({"t": 0, "seq": 0, "side": "sim", "kind": "end",
                   "data": {"outcome": "ok", "bogus": 1}})
    with pytest.raises(RecordingError, match="version 2"):
        from_json({"t": 0, "seq": 0, "side": "sim", "kind": "end"}, version=2)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.text(max_size=8), st.lists(st.integers(0, 9), max_size=3))


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), data=st.data())
def test_the_codec_round_trips_any_event(kind, data):
    cls = KINDS[kind]
    kw = {}
    for f in payload_fields(cls):
        if f.name == "raw":
            kw["raw"] = data.draw(st.one_of(st.none(), st.binary(max_size=12)))
        elif f.name == "extra":
            kw["extra"] = data.draw(st.dictionaries(st.sampled_from(["a", "detail"]),
                                                    _VALUES, max_size=2))
        else:
            kw[f.name] = data.draw(_VALUES)
    ev = cls(data.draw(st.floats(0, 1e9)), data.draw(st.sampled_from(["primary", "link"])),
             seq=data.draw(st.integers(0, 10**6)), **kw)
    line = to_json(ev)
    back = from_json(line)
    assert to_json(back) == line
    assert type(back) is cls and back.seq == ev.seq and back.side == ev.side


def test_the_endpoints_count_commits_and_loads_for_the_drivers():
    sim = Simulation(SimConfig(checkpoints=3, load_ms=5.0), keep_events=True)
    sim.run()
    sec = sim.eps["secondary"]
    loads = [e for e in sim.events if e.kind is EventKind.LOAD and e.phase == "begin"]
    assert sec.loads_started == len(loads) == 3 and sec.load_started_n == 3
    assert sim.eps["primary"].checkpoint == sec.checkpoint == 3
    ep = make_endpoint("primary", dialects.get("qemu"))
    assert ep.loads_started == 0 and ep.checkpoint == 0


def test_a_process_fault_at_a_load_fires_from_the_load_signal():
    sim = Simulation(SimConfig(checkpoints=3, load_ms=50.0, faults=["kill-secondary@load#2"]),
                     keep_events=True)
    sim.run()
    killed = [e for e in sim.events if e.kind is EventKind.PROCESS and e.what == "killed"]
    assert killed and killed[0].side == "secondary"
    begin2 = next(e for e in sim.events if e.kind is EventKind.LOAD and e.n == 2)
    assert killed[0].seq > begin2.seq and not sim.alive["secondary"]


def test_no_kind_shadows_the_base_fields():
    """t_ms, side and seq (the event's number in its stream) are every event's own: a
    kind's field of the same name (a TCP seq, say) would take the stream number's place."""
    import dataclasses

    from protocol.core.events import KINDS
    for name, cls in KINDS.items():
        f = {x.name: x for x in dataclasses.fields(cls)}
        assert f["seq"].default == -1 and f["seq"].kw_only, name
        assert list(f)[:2] == ["t_ms", "side"], name


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_a_frozen_value_that_pickles_copies_and_replaces(kind):
    import copy
    import pickle

    from tests._events import sample
    ev = sample(kind, fill=3)
    cls = type(ev)
    assert pickle.loads(pickle.dumps(ev)) == ev and copy.deepcopy(ev) == ev
    assert copy.copy(ev) == ev and ev == sample(kind, fill=3)
    assert ev != sample(kind, fill=3, t_ms=9.5) and ev != object()
    moved = dataclasses.replace(ev, t_ms=9.5)
    assert type(moved) is cls and moved.t_ms == 9.5 and moved == sample(kind, fill=3, t_ms=9.5)
    names = [f.name for f in dataclasses.fields(cls)]
    assert repr(ev) == f"{cls.__qualname__}(" + ", ".join(
        f"{n}={getattr(ev, n)!r}" for n in names) + ")"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ev.side
    if "extra" not in names:                      # a dict field makes it unhashable
        assert hash(ev) == hash(sample(kind, fill=3))
    with pytest.raises(TypeError):
        cls(1.0, "primary", no_such_field=1)
