"""What a recording's lines may hold: types and ranges, checked with msgspec.

The header's ``params`` mirror `protocol.sim.config.SimConfig`; every number a
replay multiplies, divides or loops by has a range.  Bounds that a user may
raise on purpose come from the environment:

* ``COLO_MAX_CHECKPOINTS`` (default 10,000): a session's checkpoint target
  (``params.checkpoints``, a fault's ``#N``);
* ``COLO_MAX_RECORDING_EVENTS`` (default 3,000,000): event and input lines in one file;
* ``COLO_MAX_RECORDING_MIB`` (default 256): the size of one file.

The defaults take every recording the tool's writers make with their own defaults:
the longest interactive session (`colo tui`/`repl --checkpoints 10000`, the guest
model at its default client rate: about 2.5 million events, 230 MiB) and `colo run
--record` (which refuses a longer target, and ends its file with a stop line rather
than go beyond them: `format.Writer`'s ``step``).  Raising one raises it for the
writers and the readers alike.  Memory stays bounded: a reader holds at most
``COLO_MAX_RECORDING_EVENTS`` events.
"""
from __future__ import annotations

import math
import os
from typing import Annotated, Any, Literal, get_args

import msgspec

from protocol.core import faults as fl
from protocol.core.grammar import SEED_MAX
from protocol.errors import ColoError, FaultSpecError, RecordingError

U64 = 1 << 64
DIALECT = Literal["qemu", "v11", "prototype"]
MODE = Literal["periodic", "hybrid"]
WORKLOAD = Literal["idle", "hot", "sweep", "uniform", "toggle"]
INPUT_CMDS = ("lost-heartbeat", "checkpoint", "set-delay", "kill", "stall", "shutdown",
              "fault", "reprotect")
MAX_FAULTS = 64
#: the simulator's default step bound is 2,000,000; `colo run --max-steps` raises it (and
#: records one more, so that its own bound, not the simulator's, ends the run)
MAX_STEPS = 20_000_001

_Ms = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]
_Name = Annotated[str, msgspec.Meta(max_length=64)]


def _limit(var: str, default: int) -> int:
    text = os.environ.get(var)
    if text is None or not text.strip():
        return default
    if not text.strip().isascii() or not text.strip().isdigit() or int(text) < 1:
        raise ColoError(f"{var}={text!r}: give a positive integer (default {default})")
    return int(text)


#: the defaults: at least what the writers make (colo_tui.session.options'
#: INTERACTIVE_MAX_CHECKPOINTS; tests/cli/test_qa_cli_stop31.py holds them to it)
DEFAULT_MAX_CHECKPOINTS = 10_000
DEFAULT_MAX_EVENTS = 3_000_000
DEFAULT_MAX_MIB = 256


def max_checkpoints() -> int:
    return _limit("COLO_MAX_CHECKPOINTS", DEFAULT_MAX_CHECKPOINTS)


def max_events() -> int:
    return _limit("COLO_MAX_RECORDING_EVENTS", DEFAULT_MAX_EVENTS)


def max_bytes() -> int:
    return _limit("COLO_MAX_RECORDING_MIB", DEFAULT_MAX_MIB) << 20


class Params(msgspec.Struct, kw_only=True):
    secondary_dialect: DIALECT | None = None
    checkpoints: Annotated[int, msgspec.Meta(ge=1)] = 3
    checkpoint_delay_ms: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)] | None = None
    load_ms: _Ms = 0.0
    arbiter: bool = True
    arbiter_ms: Annotated[float, msgspec.Meta(ge=1.0, le=1e9)] = 1000.0
    faithful: bool = True
    guest: Literal["null", "model"] = "null"
    ram_mib: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 16
    workload: WORKLOAD = "toggle"
    rate: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)] | None = None
    divergence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    client_every_ms: Annotated[float, msgspec.Meta(ge=0.0, le=1e12)] = 100.0   # 0: none
    save_ms: _Ms = 0.0
    jitter_ms: _Ms = 0.0
    liveness_checkpoints: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    svm_output_lost: bool = False
    xbzrle: bool = False
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0, le=1e9)] = 0.05
    bytes_per_ms: Annotated[float, msgspec.Meta(ge=1.0, le=1e15)] = 1.0e6
    stop_on_violation: bool = True
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=MAX_STEPS)] = 2_000_000
    max_time_ms: Annotated[float, msgspec.Meta(gt=0.0, le=1e15)] | None = None


class Header(msgspec.Struct, kw_only=True):
    format: str
    version: int
    tool: Annotated[str, msgspec.Meta(max_length=200)] = ""
    dialect: DIALECT = "qemu"
    mode: MODE = "periodic"
    seed: int = 1
    faults: Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]],
                      msgspec.Meta(max_length=MAX_FAULTS)] = []
    params: Params = msgspec.field(default_factory=Params)
    imported: bool = False


class EventLine(msgspec.Struct, kw_only=True):
    t: Annotated[float, msgspec.Meta(ge=0.0, le=1e15)]
    seq: Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
    side: _Name
    kind: _Name
    data: dict[str, Any] = {}


# the data fields that consumers (playback, export) read, typed per kind
class _SendData(msgspec.Struct):
    msg: _Name
    value: int = 0
    dir: _Name = ""
    hex: Annotated[str, msgspec.Meta(max_length=64)] = ""
    n: Annotated[int, msgspec.Meta(ge=0)] | None = None


class _CheckpointData(msgspec.Struct):
    n: Annotated[int, msgspec.Meta(ge=0)] | None = None
    phase: _Name = ""


class _FailoverData(msgspec.Struct):
    to: _Name = ""
    # "from" is a keyword: read as a rename
    from_: _Name = msgspec.field(default="", name="from")


class _LinkData(msgspec.Struct):
    dir: _Name = "P>S"
    point: Annotated[str, msgspec.Meta(max_length=200)] = "?"


class _PieceData(msgspec.Struct):
    bytes: Annotated[int, msgspec.Meta(ge=0)] | None = None
    pages: Annotated[int, msgspec.Meta(ge=0)] | None = None


DATA_BY_KIND: dict[str, type] = {
    "send": _SendData, "recv": _SendData, "checkpoint": _CheckpointData,
    "failover": _FailoverData, "deliver": _LinkData, "dropped": _LinkData,
    "lost": _LinkData, "send-ram": _PieceData, "send-device-state": _PieceData,
    "send-initial": _PieceData, "recv-initial": _PieceData, "ram": _PieceData,
    "device-state": _PieceData,
}


class InputItem(msgspec.Struct, kw_only=True):
    cmd: Literal[INPUT_CMDS]  # type: ignore[valid-type]
    side: Literal["primary", "secondary"] = "primary"
    value: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)] | \
        Annotated[str, msgspec.Meta(max_length=200)] | None = None


class InputLine(msgspec.Struct, kw_only=True):
    input: InputItem
    step: Annotated[int, msgspec.Meta(ge=0, le=MAX_STEPS)]


class StopLine(msgspec.Struct):
    stop: dict[str, Annotated[int, msgspec.Meta(ge=0, le=MAX_STEPS)]]


class DigestLine(msgspec.Struct):
    digest: dict[str, Any]


class _Digest(msgspec.Struct):
    lines: Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


def _convert(obj, typ, where: str):
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError as exc:
        raise RecordingError(f"{where}: {_say(exc)}") from None


#: the choices a field offers, named in the message when a value is not one of them
_CHOICES = {"dialect": DIALECT, "mode": MODE, "params.secondary_dialect": DIALECT,
            "params.guest": Literal["null", "model"], "params.workload": WORKLOAD,
            "input.cmd": Literal[INPUT_CMDS], "input.side": Literal["primary", "secondary"]}


def _say(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    path = text.rsplit(" - at `", 1)
    if len(path) != 2:
        return text
    field = path[1].rstrip("`").removeprefix("$").lstrip(".") or "the line"
    if path[0].startswith("Invalid enum value") and field in _CHOICES:
        value = path[0].removeprefix("Invalid enum value").strip()
        name = field.rsplit(".", 1)[-1].replace("_", " ")
        return f"unknown {name} {value} (this tool knows " \
               f"{', '.join(get_args(_CHOICES[field]))})"
    return f"{field}: {path[0]}"


def check_header(obj: dict, where: str, version: int) -> Header:
    """Validate a header object (format and version already checked)."""
    head = _convert(obj, Header, where)
    p = head.params
    for name in ("load_ms", "arbiter_ms", "latency_ms", "bytes_per_ms", "client_every_ms",
                 "save_ms", "jitter_ms"):
        if not math.isfinite(getattr(p, name)):
            raise RecordingError(f"{where}: params.{name} must be a finite number")
    if 0 < p.client_every_ms < 1.0:
        raise RecordingError(f"{where}: params.client_every_ms: a client request every "
                             f"{p.client_every_ms} ms is too often (0 for none, or >= 1)")
    if not 0 <= head.seed <= SEED_MAX:
        raise RecordingError(f"{where}: seed: {head.seed} is not a seed (0 to {SEED_MAX}, "
                             "as `colo run --seed` takes)")
    cap = max_checkpoints()
    if p.checkpoints > cap:
        raise RecordingError(f"{where}: params.checkpoints {p.checkpoints} is above the limit "
                             f"of {cap} (set COLO_MAX_CHECKPOINTS to raise it)")
    for spec in head.faults:
        check_fault(spec, where, "a fault")
    return head


def check_fault(spec: str, where: str, what: str) -> fl.Fault:
    try:
        f = fl.parse(spec)
    except FaultSpecError as exc:
        raise RecordingError(f"{where}: {what}: {exc}") from None
    cap = max_checkpoints()
    if f.checkpoint > cap:
        raise RecordingError(f"{where}: {what} {spec!r} is at checkpoint #{f.checkpoint}, above "
                             f"the limit of {cap} (set COLO_MAX_CHECKPOINTS to raise it)")
    return f


def check_event(obj: dict, where: str) -> None:
    ev = _convert(obj, EventLine, where)
    typ = DATA_BY_KIND.get(ev.kind)
    if typ is not None and ev.side in ("primary", "secondary", "link"):
        data = _convert(ev.data, typ, f"{where}: {ev.kind} data")
        if not -U64 < getattr(data, "value", 0) < U64:
            raise RecordingError(f"{where}: {ev.kind} data: value: out of range (64 bits)")


def check_input(obj: dict, where: str) -> dict:
    line = _convert(obj, InputLine, where)
    item = line.input
    if item.cmd == "set-delay" and not isinstance(item.value, int):
        raise RecordingError(f"{where}: input.value: set-delay needs an integer (ms)")
    if item.cmd == "fault":
        if not isinstance(item.value, str):
            raise RecordingError(f"{where}: input.value: a fault input needs a fault spec")
        check_fault(item.value, where, "the fault input")
    return {**obj["input"], "step": line.step}


def check_stop(obj: dict, where: str) -> tuple[int, int | None]:
    """(step, events written before it or None)."""
    line = _convert(obj, StopLine, where)
    if "step" not in line.stop:
        raise RecordingError(f"{where}: stop needs a step")
    return line.stop["step"], line.stop.get("events")


def check_digest(obj: dict, where: str) -> tuple[int, str]:
    d = _convert(_convert(obj, DigestLine, where).digest, _Digest, f"{where}: digest")
    return d.lines, d.sha256
