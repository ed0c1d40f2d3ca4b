"""Both twins of the event kinds' constructors (`protocol.core.eventinit`): for every
kind, the compiled ``__init__`` and ``_new`` build the same event as the pure-Python
spec from the same fields, and refuse the same wrong calls with the same words."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import twins
from protocol.core import events as ev
from tests.guest.conftest import import_twin

KINDS = sorted(ev.KINDS.items())
VALUES = st.one_of(st.none(), st.integers(-2**70, 2**70), st.text(max_size=8),
                   st.binary(max_size=8), st.floats(allow_nan=False),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@pytest.fixture(scope="module", params=twins.IMPLEMENTATIONS)
def eventinit(request):
    return import_twin(twins.twin("protocol.core.eventinit"), request.param)


def _built(mod, cls, how, t_ms, side, fields):
    """(values, None) or (None, the TypeError's text) of building through `how`."""
    init, build, _positional = mod.make_kind(cls, ev.kind_members(cls), dataclasses.MISSING)
    try:
        if how == "init":
            obj = object.__new__(cls)
            init(obj, t_ms, side, **fields)
        else:
            obj = build(t_ms, side, dict(fields))
    except TypeError as exc:
        return None, str(exc)
    return cls._values(obj), None


def _spec(cls, t_ms, side, fields):
    from protocol.core import _eventinit_py
    return _built(_eventinit_py, cls, "init", t_ms, side, fields)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), how=st.sampled_from(["init", "build"]))
def test_each_kind_is_built_as_the_spec_builds_it(eventinit, data, how):
    name, cls = data.draw(st.sampled_from(KINDS), label="kind")
    names = [f.name for f in dataclasses.fields(cls) if f.name not in ("t_ms", "side")]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True) if names
                       else st.just([]), label="fields")
    fields = {n: data.draw(VALUES, label=n) for n in chosen}
    if data.draw(st.booleans(), label="a wrong name"):
        fields[data.draw(st.sampled_from(["nope", "from", "hex", "side", "kind"]))] = 1
    t_ms, side = data.draw(st.floats(allow_nan=False)), data.draw(st.text(max_size=5))
    got = _built(eventinit, cls, how, t_ms, side, fields)
    assert got == _spec(cls, t_ms, side, fields), (name, fields)


def test_the_refusals_name_what_was_wrong(eventinit):
    for fields, text in (
            ({"mgs": "x"}, "Send.__init__() got an unexpected keyword argument 'mgs'"),
            ({}, "Send.__init__() missing 1 required keyword-only argument: 'msg'"),
            ({"msg": "x", "side": "q"},
             "Send.__init__() got multiple values for argument 'side'")):
        for how in ("init", "build"):
            assert _built(eventinit, ev.Send, how, 1.0, "primary", fields) == (None, text)


def test_a_default_factory_makes_a_new_value_per_event(eventinit):
    """A kind with an ``extra`` dict: each event its own (the dataclass rule)."""
    cls = next(c for _n, c in KINDS
               if any(f.default_factory is not dataclasses.MISSING
                      for f in dataclasses.fields(c)))
    name = next(f.name for f in dataclasses.fields(cls)
                if f.default_factory is not dataclasses.MISSING)
    required = {f.name: "x" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.name not in ("t_ms", "side")}
    init, build, _positional = eventinit.make_kind(cls, ev.kind_members(cls), dataclasses.MISSING)
    a, b = build(0.0, "p", dict(required)), build(0.0, "p", dict(required))
    assert getattr(a, name) == {} and getattr(a, name) is not getattr(b, name)


def test_new_does_not_keep_or_change_the_dict(eventinit):
    init, build, _positional = eventinit.make_kind(ev.State, ev.kind_members(ev.State),
                                      dataclasses.MISSING)
    fields = {"machine": "primary", "to": "IDLE", "from_": "INIT"}
    a = build(1.5, "primary", fields)
    fields["to"] = "changed"
    assert a.to == "IDLE" and a == ev.State(1.5, "primary", machine="primary", to="IDLE",
                                             from_="INIT")
    assert a.seq == -1 and hash(a) == hash(ev.State(1.5, "primary", machine="primary",
                                                    to="IDLE", from_="INIT"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.to = "x"                     # frozen as a class-built one


def test_the_kinds_use_the_twin_in_use():
    from protocol.core import eventinit
    e = ev.Send._new(2.0, "secondary", {"msg": "checkpoint-ready"})
    assert e == ev.Send(2.0, "secondary", msg="checkpoint-ready")
    kind = type(ev.Send.__init__).__name__
    assert (kind == "function") == (eventinit.IMPLEMENTATION == "py"), kind


def _built_at(mod, cls, values):
    """(values, None) or (None, the TypeError's text) of a positional build."""
    _init, _build, positional = mod.make_kind(cls, ev.kind_members(cls), dataclasses.MISSING)
    try:
        obj = positional()(1.0, "primary", *values)
    except TypeError as exc:
        return None, str(exc)
    return cls._values(obj), None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_positional_build_is_the_class_call_with_those_fields(eventinit, data):
    """``positional(cls)(t_ms, side, *values)``: the kind's own fields in declaration
    order, the rest defaulted; the same event as the class call, in either twin, or
    the same refusal (a required field left out, too many values)."""
    from protocol.core import _eventinit_py
    _name, cls = data.draw(st.sampled_from(KINDS), label="kind")
    own = [f.name for f in dataclasses.fields(cls) if f.name not in ("t_ms", "side", "seq")]
    values = data.draw(st.lists(VALUES, max_size=len(own) + 1), label="values")
    got = _built_at(eventinit, cls, values)
    assert got == _built_at(_eventinit_py, cls, values)
    if len(values) <= len(own):
        assert got == _spec(cls, 1.0, "primary", dict(zip(own, values, strict=False)))
    else:
        assert got[0] is None and "positional arguments but" in got[1]


def test_the_compiled_twin_leaves_events_of_atomic_fields_to_no_collector():
    """The compiled twin untracks an event whose every field is atomic (str, int,
    float, bytes, bool, None: it can be in no reference cycle), so a session that
    keeps millions of events pays no full collection over them; an event holding a
    container stays tracked, and a cycle through one is still collected."""
    import gc
    import weakref

    from protocol.core import _eventinit_py
    mod = import_twin(twins.twin("protocol.core.eventinit"), "c")
    _init, build, positional = mod.make_kind(ev.State, ev.kind_members(ev.State),
                                             dataclasses.MISSING)
    plain = positional()(1.0, "primary", "primary", "IDLE", "INIT")
    assert not gc.is_tracked(plain) and not gc.is_tracked(build(1.0, "p", {
        "machine": "primary", "to": "IDLE", "from_": "INIT"}))
    assert gc.is_tracked(positional()(1.0, "primary", "primary", ("IDLE",), "INIT"))
    cls = next(c for _n, c in KINDS if "extra" in c.__slots__)
    required = {f.name: "x" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.name not in ("t_ms", "side")}
    _i, build_x, _p = mod.make_kind(cls, ev.kind_members(cls), dataclasses.MISSING)
    held = build_x(0.0, "p", dict(required))       # its extra: a dict (a factory's)
    assert gc.is_tracked(held)

    class Box(dict):
        pass
    box = Box()
    looped = build_x(0.0, "p", dict(required, extra=box))
    box["event"] = looped                           # event -> dict -> event
    gone = weakref.ref(box)
    del looped, box, held
    gc.collect()
    assert gone() is None
    # the spec builds the same values (untracking changes nothing else)
    _pi, _pb, spec_positional = _eventinit_py.make_kind(
        ev.State, ev.kind_members(ev.State), dataclasses.MISSING)
    assert ev.State._values(spec_positional()(1.0, "primary", "primary", "IDLE", "INIT")) \
        == ev.State._values(plain)


def test_fields_hold_one_reference_each_and_init_again_replaces_them(eventinit):
    """A new event's fields are stored straight into its empty slots (the compiled
    twin), one reference each, given to the event's end; ``__init__`` called again on
    a built event writes over them as the descriptors would, dropping the old values."""
    import sys
    import weakref

    class Box(dict):
        pass
    cls = next(c for _n, c in KINDS if "extra" in c.__slots__)
    required = {f.name: "x" for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.name not in ("t_ms", "side")}
    init, build, _positional = eventinit.make_kind(cls, ev.kind_members(cls),
                                                   dataclasses.MISSING)
    first, second = Box(), Box()
    before = sys.getrefcount(first)
    obj = build(0.0, "primary", dict(required, extra=first))
    after = sys.getrefcount(first)        # (read apart: an assert's operands are kept)
    assert after == before + 1
    assert obj.extra is first
    gone = weakref.ref(first)
    del first
    init(obj, 2.0, "secondary", **dict(required, extra=second))
    assert gone() is None                        # the old value was let go
    assert (obj.t_ms, obj.side, obj.extra) == (2.0, "secondary", second)
    held = sys.getrefcount(second)
    del obj
    left = sys.getrefcount(second)
    assert left == held - 1
