"""The one event stream everything reads (TUI, REPL, recordings, JSON output).

Each event kind is a frozen, slotted class with typed fields; ``EventKind`` (a
``StrEnum``, so JSON keeps the same strings) and ``KINDS`` (kind -> class) are
derived from the classes, not listed by hand.  Every event carries ``t_ms``,
``side`` and ``seq`` (numbered once, by the stream that orders events:
``stamp``).

Emitters build a class directly (``Checkpoint(now, "primary", n=3,
phase="commit")``) or by name: ``Event(t_ms, side, "checkpoint", {"n": 3, ...})``
and ``make(t_ms, side, "checkpoint", n=3, ...)`` look the kind up and fail
loudly (``EventError``) on an unknown kind or field.  Fields use the JSON names
of the recording format except where Python cannot: ``from_`` is ``from``,
``raw`` (the bytes of a wire message) is written as ``hex``, and ``extra``
holds the open-ended details some kinds carry (QMP event data, an operator
input's arguments), flattened into the JSON payload.

The JSON codec lives in ``protocol.record.eventjson``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from typing import Any, ClassVar

from protocol.core.eventinit import make_kind
from protocol.errors import ColoError


class EventError(ColoError, TypeError):
    """An event built with an unknown kind or a field its kind does not have."""


#: kind name -> class, filled by @_kind (derived, never listed by hand)
KINDS: dict[str, type[Event]] = {}
#: per class: JSON name -> attribute name, for the fields whose names differ
_RENAMES: dict[type, dict[str, str]] = {}
#: per class: the attribute names a payload may set (without t_ms/side/seq)
_FIELDS: dict[type, frozenset[str]] = {}


class _EventMeta(type):
    """``Event(t_ms, side, kind, data=None, seq=-1)`` builds the kind's class; the
    kinds themselves get `_KindMeta`, whose call is type's own (no Python-level hop)."""

    def __new__(mcls, name, bases, ns, **kw):
        if mcls is _EventMeta and any(isinstance(b, _EventMeta) for b in bases):
            mcls = _KindMeta
        return super().__new__(mcls, name, bases, ns, **kw)

    def __call__(cls, t_ms, side, kind, data=None, seq=-1):
        try:
            return _BUILDERS[kind](t_ms, side, seq, data or _NO_FIELDS)
        except (KeyError, TypeError, ValueError):
            return _build(kind, t_ms, side, seq, data or _NO_FIELDS)


class _KindMeta(_EventMeta):
    __call__ = type.__call__


@dataclass(frozen=True, slots=True, eq=True)
class Event(metaclass=_EventMeta):
    t_ms: float
    side: str          # "primary", "secondary", "link", "operator", "sim", ...
    seq: int = field(default=-1, kw_only=True)

    kind: ClassVar[EventKind]

    def stamp(self, seq: int) -> None:
        """Number this event in its stream (the one field set after creation;
        ``set_seq(ev, n)`` does the same without a method call, for hot loops)."""
        set_seq(self, seq)

    def payload(self) -> dict[str, Any]:
        """The kind's fields by their JSON names (None-valued optional ones left out),
        ``raw`` as ``hex``, ``extra`` flattened: what a recording's ``data`` holds."""
        out: dict[str, Any] = {}
        for f in _PAYLOAD_SPEC[type(self)]:
            name, key, optional = f
            v = getattr(self, name)
            if name == "extra":
                if v:
                    out.update(v)
                continue
            if v is None and optional:
                continue
            if name == "raw":
                v = v.hex()
            out[key] = v
        return out


#: set_seq(event, n): the stream's numbering, written through the slot itself
set_seq = Event.__dict__["seq"].__set__

#: per class: (attribute, JSON key, optional) for each payload field, in order
_PAYLOAD_SPEC: dict[type, tuple[tuple[str, str, bool], ...]] = {}
_BASE_FIELDS = ("t_ms", "side", "seq")


_MISSING = dataclasses.MISSING
_FIELD = dataclasses._FIELD            # the marker dataclasses.fields() keeps


def _frozen_setattr(self, name, value):
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _eq(self, other):
    if other.__class__ is self.__class__:
        return self._values(self) == other._values(other)
    return NotImplemented


def _hash(self):
    return hash(self._values(self))


def _repr(self):
    return f"{self.__class__.__qualname__}(" + ", ".join(
        f"{n}={v!r}" for n, v in zip(self._names, self._values(self), strict=True)) + ")"


def _getstate(self):
    return list(self._values(self))


def _setstate(self, state):
    for name, value in zip(self._names, state, strict=True):
        object.__setattr__(self, name, value)


def _kind(name: str):
    """Make the class a frozen, slotted, keyword-only dataclass of event kind ``name``.

    What ``dataclass(frozen=True, slots=True, kw_only=True, eq=True)`` makes, built
    directly: the same fields (``dataclasses.fields``, ``replace`` work), equality,
    hash, repr, pickling and frozenness, with shared methods driven by each class's
    field names instead of six ``exec`` calls per class; the ``__init__`` writes each
    slot itself (`protocol.core.eventinit`: from C in the compiled twin; ~30 events
    per checkpoint)."""
    def deco(cls):
        if name in KINDS:
            raise RuntimeError(f"event kind {name!r} defined twice")
        own = cls.__dict__.get("__annotations__", {})
        fields = dict(Event.__dataclass_fields__)
        ns = {k: v for k, v in cls.__dict__.items()
              if k not in own and k not in ("__dict__", "__weakref__")}
        for fname, ftype in own.items():
            default = cls.__dict__.get(fname, _MISSING)
            f = default if isinstance(default, dataclasses.Field) else field(default=default)
            f.name, f.type, f._field_type, f.kw_only = fname, ftype, _FIELD, True
            fields[fname] = f
        real = [f for f in fields.values() if f._field_type is _FIELD]   # not ClassVars
        names = tuple(f.name for f in real)
        ns.update(__slots__=tuple(own), __dataclass_fields__=fields,
                  __dataclass_params__=Event.__dataclass_params__,
                  __match_args__=Event.__match_args__, _names=names,
                  _values=attrgetter(*names), __eq__=_eq, __hash__=_hash,
                  __repr__=_repr, __setattr__=_frozen_setattr,
                  __delattr__=_frozen_delattr, __getstate__=_getstate,
                  __setstate__=_setstate)
        cls = type(cls)(cls.__name__, cls.__bases__, ns)
        _init_source(cls, real)
        KINDS[name] = cls
        spec = []
        for f in real:
            if f.name in _BASE_FIELDS:
                continue
            key = "hex" if f.name == "raw" else f.name.rstrip("_")
            optional = f.default is None and not f.metadata.get("always")
            spec.append((f.name, key, optional))
        _PAYLOAD_SPEC[cls] = tuple(spec)
        _RENAMES[cls] = {key: attr for attr, key, _o in spec if key != attr}
        _FIELDS[cls] = frozenset(attr for attr, _k, _o in spec)
        return cls
    return deco


def _init_source(cls, fields) -> None:
    """The kind's ``__init__`` and ``_new`` (`protocol.core.eventinit`): each slot
    written through its own descriptor (the frozen class's ``__setattr__`` refuses),
    defaults as the dataclass would apply them."""
    cls.__init__, cls._new, _POSITIONAL[cls] = make_kind(cls, kind_members(cls, fields),
                                                        _MISSING)


#: per kind: what makes its positional builder (`positional`)
_POSITIONAL: dict[type, Any] = {}


def positional(cls):
    """``build_at(t_ms, side, *values)``: the kind's event from its own fields' values
    in the order the kind declares them (after ``t_ms``, ``side`` and ``seq``; those
    left out take their defaults), for the hottest emitters: neither the class call
    nor a dict of fields.  Made (compiled, in the pure-Python twin) when asked for."""
    return _POSITIONAL[cls]()


def kind_members(cls, fields=None) -> list[tuple]:
    """(name, slot descriptor, default, default factory or None) of each of the kind's
    fields, in order (``t_ms``, ``side``, ``seq`` first): what `make_kind` takes."""
    members = []
    for f in fields if fields is not None else dataclasses.fields(cls):
        owner = cls if f.name in cls.__slots__ else Event
        factory = f.default_factory if f.default_factory is not _MISSING else None
        members.append((f.name, owner.__dict__[f.name], f.default, factory))
    return members


def _extra() -> dict:
    return field(default_factory=dict)


def _always() -> Any:
    """A field that may be None and is written even then (the format always had it)."""
    return field(default=None, metadata={"always": True})


# ------------------------------------------------------------ the endpoints
@_kind("send")
class Send(Event):
    """A control message this side wrote (``dir``/``n``/``id``/``offset``: as a proxy or
    an imported capture saw it; ``raw``: the bytes, when the sender knows them)."""
    msg: str
    value: int = 0
    raw: bytes | None = None
    dir: str | None = None
    n: int | None = None
    id: int | None = None
    offset: int | None = None
    why: str | None = None           # a live peer: how the message was seen

    @property
    def hex(self) -> str:
        return self.raw.hex() if self.raw is not None else ""


@_kind("recv")
class Recv(Event):
    msg: str
    value: int = 0
    id: int | None = _always()       # None: an id outside the dialect
    raw: bytes | None = None

    @property
    def hex(self) -> str:
        return self.raw.hex() if self.raw is not None else ""


@_kind("state")
class State(Event):
    machine: str
    to: str
    from_: str


@_kind("vm")
class Vm(Event):
    run: str
    why: str | None = None
    qmp: str | None = _always()      # QEMU's STOP/RESUME event (None: none)


@_kind("migration")
class Migration(Event):
    status: str


@_kind("checkpoint")
class Checkpoint(Event):
    n: int
    phase: str                       # "begin" | "commit"
    reason: str | None = None
    loaded_sent: bool | None = None
    ms: float | None = None          # proxy: how long the checkpoint took
    zero: int | None = None          # an imported or proxied checkpoint's page counts
    full: int | None = None
    xbzrle: int | None = None
    device_bytes: int | None = None
    sections: int | None = None


@_kind("checkpoint-requested")
class CheckpointRequested(Event):
    reason: str


@_kind("load")
class Load(Event):
    phase: str                       # "begin" | "end"
    n: int


#: the steps an Action names (the machines' own words; a sentence exists for each)
ACTION_NAMES = frozenset((
    "load-initial", "start-dirty-log", "cache-pages", "expect-blob", "flush-cache",
    "load-devices", "replication-checkpoint", "discard-cache", "take-over", "save-devices",
    "release-output", "shutdown-sockets"))


@_kind("action")
class Action(Event):
    """A step of the machine named by ``name`` (save-devices, flush-cache, ...)."""
    name: str
    bytes: int | None = None
    pages: Any = None                # a count, or an imported guest's pages by kind
    packets: int | None = None
    why: str | None = None
    blocks: Any = None               # a real guest's flushed pages by RAM block
    screen: str | None = None
    machine: str | None = None
    ram_blocks: int | None = None
    device_sections: int | None = None


@_kind("send-ram")
class SendRam(Event):
    bytes: int
    pages: int | None = None


@_kind("send-device-state")
class SendDeviceState(Event):
    bytes: int


@_kind("send-initial")
class SendInitial(Event):
    bytes: int


@_kind("recv-ram")
class RecvRam(Event):
    pages: int
    bytes: int
    zero: int | None = None          # the part's records by kind
    page: int | None = None
    xbzrle: int | None = None


@_kind("recv-device-state")
class RecvDeviceState(Event):
    bytes: int


@_kind("recv-initial")
class RecvInitial(Event):
    bytes: int | None = None
    machine: str | None = None
    enable_colo: bool | None = None
    blocks: int | None = None
    mem_size: int | None = None
    zero: int | None = None
    full: int | None = None
    device_sections: int | None = None
    vmdesc_len: int | None = None
    ms: float | None = None


@_kind("failover")
class Failover(Event):
    """The failover machine moved (``from_``/``to``), or the arbiter chose a side."""
    to: str | None = None
    from_: str | None = None
    side_: str | None = None         # the arbiter's chosen side (``side``: who acted)
    why: str | None = None


@_kind("error")
class Error(Event):
    """The machine failed (``message``, ``remote``, ``during``), a live source failed
    (``message``), or a proxy could not decode (``dir``, ``offset``, ``error``)."""
    message: str | None = None
    remote: bool | None = None
    during: str | None = None
    dir: str | None = None
    offset: int | None = None
    state: str | None = None
    error: str | None = None
    action: str | None = None


@_kind("reprotect")
class Reprotect(Event):
    """The survivor of a failover became the primary of a new pair (QEMU's resume
    replication): ``generation`` counts re-protects, ``checkpoint`` is where it resumed."""
    survivor: str
    generation: int
    checkpoint: int
    why: str = ""


@_kind("reprotect-refused")
class ReprotectRefused(Event):
    """A plan's re-protect step could not run (``why``)."""
    spec: str
    why: str


@_kind("colo-exit")
class ColoExit(Event):
    mode: str | None = None
    reason: str | None = None


@_kind("default-failover")
class DefaultFailover(Event):
    action: str


@_kind("eof")
class Eof(Event):
    dir: str | None = None


@_kind("ignored")
class Ignored(Event):
    why: str
    bytes: int | None = None


@_kind("absorbed")
class Absorbed(Event):
    why: str


@_kind("abort")
class Abort(Event):
    why: str


@_kind("unnoticed")
class Unnoticed(Event):
    why: str


@_kind("error-report")
class ErrorReport(Event):
    """A line QEMU logs (error_report) while its COLO thread carries on."""
    message: str


@_kind("deferred")
class Deferred(Event):
    why: str


@_kind("qmp")
class Qmp(Event):
    """A QMP command (``command``, ``args``), or what the QMP server did to a client
    (``what``: client-dropped, with its unread backlog)."""
    command: str | None = None
    args: Any = None
    what: str | None = None
    unread_bytes: int | None = None
    limit_bytes: int | None = None
    at: str | None = None


@_kind("qmp-error")
class QmpError(Event):
    error: str
    side_: str | None = None         # the side the command went to (``side``: the operator)
    command: str | None = None


@_kind("qmp-event")
class QmpEvent(Event):
    event: str
    extra: dict = _extra()


@_kind("parameter")
class Parameter(Event):
    name: str
    value: int


@_kind("guest-shutdown-requested")
class GuestShutdownRequested(Event):
    pass


@_kind("progress-timeout")
class ProgressTimeout(Event):
    stage: str
    timeout_ms: float


# --------------------------------------------------------------- the link
@_kind("deliver")
class Deliver(Event):
    dir: str
    point: str
    n: int
    bytes: int
    note: str | None = None


@_kind("lost")
class Lost(Event):
    dir: str
    point: str
    n: int | None = None
    bytes: int | None = None
    why: str | None = None


@_kind("held")
class Held(Event):
    dir: str
    point: str
    n: int | None = None
    bytes: int | None = None
    why: str | None = None


@_kind("dropped")
class Dropped(Event):
    dir: str
    point: str
    n: int | None = None
    bytes: int | None = None


@_kind("fault")
class Fault(Event):
    spec: str
    dir: str | None = None
    point: str | None = None
    n: int | None = None


@_kind("closing")
class Closing(Event):
    why: str


@_kind("closed")
class Closed(Event):
    """The connection ended: the simulator's (``why``), a proxy's direction (``dir``,
    ``by``, ``how``, ...) or an imported capture's end (``how``, ``note``)."""
    why: str | None = None
    how: str | None = None
    note: str | None = None
    last_checkpoint: int | None = None
    dir: str | None = None
    by: str | None = None
    bytes: int | None = None
    discarded: int | None = None
    state: str | None = None


@_kind("partition")
class Partition(Event):
    until: float


# ------------------------------------------------ the simulator and its world
@_kind("process")
class Process(Event):
    what: str                        # "killed" | "stalled" | "exit"
    why: str | None = None


@_kind("stopped-for-checkpoint")
class StoppedForCheckpoint(Event):
    n: int


@_kind("watchdog")
class Watchdog(Event):
    why: str


@_kind("fence")
class Fence(Event):
    side_: str                       # the fenced side (``side``: who acted, the arbiter)
    why: str | None = None


@_kind("input")
class Input(Event):
    """An operator input (``cmd``, its ``side`` and ``value``)."""
    cmd: str
    extra: dict = _extra()


@_kind("request")
class Request(Event):
    id: int
    to: str | None = None


@_kind("end")
class End(Event):
    outcome: str
    steps: int | None = None


# ---------------------------------------------------- proxy, node, live sources
@_kind("ram")
class Ram(Event):
    """A RAM part a proxy or an imported capture decoded."""
    n: int
    pages: int | None = None
    zero: int | None = None
    full: int | None = None
    xbzrle: int | None = None
    bytes: int | None = None
    blocks: dict | None = None


@_kind("device-state")
class DeviceState(Event):
    n: int
    bytes: int | None = None
    sections: int | None = None


@_kind("listening")
class Listening(Event):
    listen: str | None = None
    connect: str | None = None
    faults: list | None = None
    address: str | None = None
    forwarding_to: str | None = None
    hint: str | None = None


@_kind("stopped")
class Stopped(Event):
    why: str | None = None
    sessions: int | None = None
    busy: bool | None = None


@_kind("upstream-failed")
class UpstreamFailed(Event):
    error: str


@_kind("connection")
class Connection(Event):
    peer: str | None = None
    colo: bool | None = None


@_kind("status")
class Status(Event):
    """A live process's QMP status changed (``extra``: its COLO status fields)."""
    run: str | None = None
    migration: str | None = None
    extra: dict = _extra()


@_kind("node")
class Node(Event):
    what: str                        # "started" | "exit" | "crash"
    loop: str | None = None
    address: str | None = None
    code: int | None = None
    error: str | None = None


@_kind("heartbeat")
class Heartbeat(Event):
    what: str


@_kind("heartbeat-lost")
class HeartbeatLost(Event):
    why: str
    timeout_ms: float | None = None


@_kind("heartbeat-failover-refused")
class HeartbeatFailoverRefused(Event):
    error: str


# ------------------------------------------- colo-compare's channels (colo lab)
@_kind("packet")
class Packet(Event):
    """A frame on one of colo-compare's chardev channels (``channel``: mirror,
    primary-in, compare-in, compare-out; ``n`` its number there), decoded as far
    as colo-compare reads it; ``fault`` when a channel fault hit it (``copies``
    sent on: 0 dropped, 2 duplicated)."""
    channel: str
    n: int
    proto: str
    length: int                      # the Ethernet frame's bytes
    flow: str | None = None
    tcp_seq: int | None = None
    tcp_ack: int | None = None
    flags: str | None = None
    payload_len: int | None = None
    note: str | None = None
    fault: str | None = None
    copies: int | None = None


@_kind("verdict")
class Verdict(Event):
    """colo-compare's verdict on one primary TCP data packet (protocol/net/netcompare.py):
    ``match``, ``mismatch`` or ``no-secondary``; ``forced_checkpoint`` when the
    disagreement forced that checkpoint; ``held_ms`` primary-in -> compare-out."""
    flow: str
    tcp_seq: int
    length: int                      # the TCP payload's bytes
    verdict: str
    primary_n: int | None = None
    secondary_n: int | None = None
    out_n: int | None = None
    held_ms: float | None = None
    forced_checkpoint: int | None = None
    first_difference: int | None = None


#: every kind, derived from the classes above (JSON: the same strings)
EventKind = StrEnum("EventKind", {name.upper().replace("-", "_"): name for name in KINDS})
EventKind.__module__ = __name__
for _name, _cls in KINDS.items():
    _cls.kind = EventKind(_name)
del _name, _cls


_NO_FIELDS: dict[str, Any] = {}


def make(t_ms: float, side: str, kind: str, /, *, seq: int = -1, **fields) -> Event:
    """The event of ``kind`` with its fields by their JSON names (``from``, ``hex``;
    unknown names go to ``extra`` where the kind has one).  EventError otherwise."""
    try:
        return _BUILDERS[kind](t_ms, side, seq, fields)
    except (KeyError, TypeError, ValueError):
        return _build(kind, t_ms, side, seq, fields)


def _builder(cls):
    """The fast path of `make` for one kind: rename the JSON names, decode ``hex``, call
    the class (any problem: TypeError/ValueError, and `_build` says what it was)."""
    renames = _RENAMES[cls]
    if not renames:
        def build(t_ms, side, seq, fields):
            return cls(t_ms, side, seq=seq, **fields)
        return build
    keys = tuple(renames.items())
    json_names = frozenset(renames)

    def build_renamed(t_ms, side, seq, fields):
        if not json_names.isdisjoint(fields):
            fields = dict(fields)
            for key, attr in keys:
                if key in fields:
                    v = fields.pop(key)
                    fields[attr] = bytes.fromhex(v) if attr == "raw" and type(v) is str else v
        return cls(t_ms, side, seq=seq, **fields)
    return build_renamed


def _build(kind: str, t_ms: float, side: str, seq: int, fields: dict) -> Event:
    """`make` on a dict of fields that it does not change."""
    cls = KINDS.get(kind)
    if cls is None:
        raise EventError(f"unknown event kind {kind!r}")
    renames = _RENAMES[cls]
    if renames and not renames.keys().isdisjoint(fields):    # JSON names -> attributes
        kw = dict(fields)
        for key, attr in renames.items():
            if key in kw:
                v = kw.pop(key)
                if attr == "raw" and type(v) is str:
                    try:
                        v = bytes.fromhex(v)
                    except ValueError:
                        raise EventError(f"event {kind!r}: hex {v!r} is not "
                                         "hexadecimal") from None
                kw[attr] = v
        try:
            return cls(t_ms, side, seq=seq, **kw)
        except TypeError:
            pass                                 # say which field, or collect extras
    else:
        try:
            return cls(t_ms, side, seq=seq, **fields)
        except TypeError:
            pass
    return _slow(cls, kind, t_ms, side, seq, fields, renames)


def _slow(cls, kind, t_ms, side, seq, fields, renames) -> Event:
    allowed = _FIELDS[cls]
    kw: dict[str, Any] = {}
    extra: dict[str, Any] | None = None
    for key, v in fields.items():
        attr = renames.get(key, key)
        if attr == "raw" and type(v) is str:
            try:
                v = bytes.fromhex(v)
            except ValueError:
                raise EventError(f"event {kind!r}: hex {v!r} is not hexadecimal") from None
        if attr in allowed and attr != "extra":
            kw[attr] = v
        elif "extra" in allowed:
            if extra is None:
                extra = {}
            extra[key] = v
        else:
            raise EventError(f"event {kind!r} has no field {key!r} (it has: "
                             f"{', '.join(k for _a, k, _o in _PAYLOAD_SPEC[cls]) or 'none'})")
    if extra is not None:
        kw["extra"] = extra
    try:
        return cls(t_ms, side, seq=seq, **kw)
    except TypeError as exc:
        raise EventError(f"event {kind!r}: {exc}") from None


_BUILDERS = {name: _builder(cls) for name, cls in KINDS.items()}


class Segment:
    """One piece of output: a control message, a RAM part, a blob, the initial stream.

    ``kind`` is "msg", "ram", "blob" or "initial"; ``point`` the fault-grammar
    name of this piece (a message name or a stage: ``ram``, ``device-state``),
    ``checkpoint`` the transaction it belongs to, ``value`` a message's value.

    ``chunks``, only for a driver that asked for streamed RAM parts
    (`Outbox.stream_ram`): the piece's bytes are not in ``data`` (empty) but
    encoded as the driver reads this iterator (`stream.ram_part_chunks`),
    ``size`` bytes in all.  The driver reads it before its endpoint's next input.

    An extension type in the compiled build (events.pxd): the machines build one per
    piece of output, and a dataclass's generated ``__init__`` runs as interpreted
    Python even there.  Compared by value; mutable, so not hashable.
    """

    __slots__ = ("kind", "point", "data", "checkpoint", "value", "chunks", "size")

    def __init__(self, kind: str, point: str, data: bytes, checkpoint: int, value: int = 0,
                 chunks: Any = None, size: int = 0) -> None:
        self.kind = kind
        self.point = point
        self.data = data
        self.checkpoint = checkpoint
        self.value = value
        self.chunks = chunks
        self.size = size

    def _key(self) -> tuple:
        return (self.kind, self.point, self.data, self.checkpoint, self.value, self.chunks,
                self.size)

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None     # mutable, compared by value

    def __repr__(self) -> str:
        return ("Segment(kind={!r}, point={!r}, data={!r}, checkpoint={!r}, value={!r}, "
                "chunks={!r}, size={!r})".format(*self._key()))

    def wire(self) -> bytes:
        """The piece's bytes: ``data``, or a streamed piece's chunks joined (which
        reads them: once only)."""
        if self.chunks is None:
            return self.data
        return b"".join([bytes(c) for c in self.chunks])
