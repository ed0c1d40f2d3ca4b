"""The fault grammar shared by the CLI, the REPL, the TUI and recordings.

    KIND[=ARG]@POINT[#N]

POINT is a message name (``checkpoint-request`` …) or a stage (``ram``,
``device-state``, ``load``); N is the checkpoint it applies to (default 1;
``checkpoint-ready`` only has #1).  In ``colo lab`` POINT may also be a
colo-compare chardev channel (``primary-in``, ``compare-in``, ``compare-out``,
``mirror``); N is then the Nth TCP packet carrying data on that channel after
the lab's client traffic starts, and the kinds are drop, delay, corrupt (flip
bits in the packet's last payload byte) and duplicate.  Link faults act on the piece of output
named by POINT; process faults (kill/stall/heartbeat) happen at the moment
that piece is about to be sent (``load``: when the secondary starts loading).

One step is not a fault but an operator's plan step: ``reprotect@failover#N``
re-protects the survivor of the N-th failover of the run (QEMU's resuming of
COLO, docs/COLO-FT.txt: a new secondary, a fresh initial migration with
x-colo, COLO again); ``failover`` is a moment of the run, not a piece of output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from protocol.core import messages as m
from protocol.core.grammar import INT64_MAX, parse_decimal
from protocol.errors import FaultSpecError, UsageError

#: kind -> (argument type or None, one-line help)
KINDS: dict[str, tuple[str | None, str]] = {
    "drop": (None, "the piece never arrives (the connection stays up)"),
    "delay": ("ms", "the piece arrives MS milliseconds late"),
    "corrupt": (None, "flip bits in the piece's first bytes"),
    "truncate": (None, "send half of the piece, then the connection closes"),
    "duplicate": (None, "the piece arrives twice"),
    "close": (None, "the connection closes just before the piece"),
    "reset": (None, "the connection is reset (RST) just before the piece"),
    "kill-primary": (None, "the primary process dies (SIGKILL) at this point"),
    "kill-secondary": (None, "the secondary process dies (SIGKILL) at this point"),
    "stall-primary": (None, "the primary stops answering (SIGSTOP); the connection stays open"),
    "stall-secondary": (None, "the secondary stops answering; the connection stays open"),
    "partition": ("ms", "no byte crosses the link in either direction for MS ms"),
    "unexpected": ("msg", "another message is sent instead"),
    "value": ("int", "the message carries value N instead (0 … 2^64-1)"),
    "opcode": ("int", "the message goes out with id N instead (out-of-range ids, "
                      "0 … 2^32-1)"),
    "heartbeat-primary": (None, "the operator's x-colo-lost-heartbeat on the primary"),
    "heartbeat-secondary": (None, "the operator's x-colo-lost-heartbeat on the secondary"),
    "shutdown": (None, "the guest powers off on the primary at this point"),
    "reprotect": (None, "after the N-th failover: a new secondary, a fresh initial migration "
                        "from the survivor, COLO again (only @failover)"),
}
STAGES = ("ram", "device-state", "load")
#: moments of the run rather than pieces of output (the plan steps act there)
MOMENTS = ("failover",)
POINTS = tuple(n for n in m.ALL_MESSAGES if n != m.INVALID) + STAGES + MOMENTS
LINK_KINDS = ("drop", "delay", "corrupt", "truncate", "duplicate", "close", "reset",
              "unexpected", "value", "opcode")
#: plan steps: what an operator does at a moment of the run (not a fault of a piece)
STEP_KINDS = ("reprotect",)
PROCESS_KINDS = tuple(k for k in KINDS if k not in LINK_KINDS and k not in STEP_KINDS)
#: the colo-compare chardev channels of `colo lab` (protocol/net/netcompare.py) and
#: the faults its packet relay applies on them
CHANNEL_POINTS = ("primary-in", "compare-in", "compare-out", "mirror")
CHANNEL_KINDS = ("drop", "delay", "corrupt", "duplicate")
#: what a kind does to a channel's packet where it differs from KINDS' words for the link
CHANNEL_HELP = {"corrupt": "flip bits in the packet's last payload byte"}
#: `colo lab --pair-fault` on the real QEMU pair (colo_tui/lab/pairfaults.py): the
#: process faults at a COLO message (#N: its Nth occurrence in the primary's trace),
#: and the NBD link (close@nbd#N: the secondary's NBD server stops after the Nth
#: checkpoint-request)
PAIR_KINDS = ("kill-primary", "kill-secondary", "stall-primary", "stall-secondary",
              "heartbeat-primary", "heartbeat-secondary")
NBD_POINT = "nbd"

_SPEC = re.compile(r"(?P<kind>[a-z-]+)(?:=(?P<arg>[^@#\s]+))?@(?P<point>[a-z-]+)"
                   r"(?:#(?P<n>[^#]*))?", re.ASCII)
#: the range of each numeric argument (inclusive); a value outside is refused, never
#: wrapped to fit the field it goes into
ARG_RANGE = {"delay": (0, (1 << 31) - 1), "partition": (0, (1 << 31) - 1),
             "value": (0, (1 << 64) - 1), "opcode": (0, (1 << 32) - 1)}
MAX_SPEC_CHARS = 200


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    point: str
    checkpoint: int = 1
    arg: str | int | None = None

    def __str__(self) -> str:
        arg = "" if self.arg is None else f"={self.arg}"
        return f"{self.kind}{arg}@{self.point}#{self.checkpoint}"

    @property
    def is_link(self) -> bool:
        return self.kind in LINK_KINDS


def kind_help(kind: str, channel: bool = False) -> str:
    """What fault `kind` does, in words: on a colo-compare channel's packet
    (`channel`), or on a piece of the COLO link."""
    text = KINDS[kind][1]
    return CHANNEL_HELP.get(kind, text) if channel else text


def _valid() -> str:
    kinds = ", ".join(k + ("=" + a.upper() if a else "") for k, (a, _) in KINDS.items())
    return f"valid kinds: {kinds}; valid points: {', '.join(POINTS)}"


def parse(spec: str, *, channels: bool = False) -> Fault:
    """One fault; ``channels`` (colo lab) admits the compare channel points."""
    if not isinstance(spec, str):
        raise FaultSpecError(f"a fault spec is text (KIND[=ARG]@POINT[#N]), not {spec!r}")
    if len(spec) > MAX_SPEC_CHARS:
        raise FaultSpecError(f"fault spec too long ({len(spec)} characters; at most "
                             f"{MAX_SPEC_CHARS})")
    text = spec.strip()
    match = _SPEC.fullmatch(text)
    if not match:
        raise FaultSpecError(f"bad fault spec {spec!r}: the form is KIND[=ARG]@POINT[#N]; "
                             + _valid())
    kind, arg, point, n = match["kind"], match["arg"], match["point"], match["n"]
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r} in {spec!r}; " + _valid())
    if point in CHANNEL_POINTS:
        if not channels:
            raise FaultSpecError(f"{point!r} is a colo-compare channel: only `colo lab` "
                                 f"has one (valid points here: {', '.join(POINTS)})")
        if kind not in CHANNEL_KINDS:
            raise FaultSpecError(f"fault kind {kind!r} does not act on a packet of the "
                                 f"{point!r} channel; there: {', '.join(CHANNEL_KINDS)}")
    elif point not in POINTS:
        raise FaultSpecError(f"unknown fault point {point!r} in {spec!r}; " + _valid())
    want = KINDS[kind][0]
    value: str | int | None = None
    if want is None and arg is not None:
        raise FaultSpecError(f"fault kind {kind!r} takes no argument (got {arg!r})")
    if want is not None and arg is None:
        raise FaultSpecError(f"fault kind {kind!r} needs an argument: {kind}={want.upper()}")
    if want in ("ms", "int"):
        lo, hi = ARG_RANGE[kind]
        try:
            value = parse_decimal(arg, f"{kind}= in {spec!r}", lo, hi)
        except UsageError as exc:
            raise FaultSpecError(str(exc)) from None
    elif want == "msg":
        if arg not in m.ALL_MESSAGES:
            raise FaultSpecError(f"unexpected= needs a message name, not {arg!r}; "
                                 f"messages: {', '.join(m.ALL_MESSAGES)}")
        value = arg
    what = "packet" if point in CHANNEL_POINTS else "checkpoint"
    try:
        checkpoint = 1 if n is None else parse_decimal(n, f"{what} #N in {spec!r}",
                                                       1, INT64_MAX)
    except UsageError as exc:
        raise FaultSpecError(f"{exc} ({what}s count from 1)") from None
    if (kind in STEP_KINDS) != (point in MOMENTS):
        raise FaultSpecError(f"{spec!r}: {', '.join(STEP_KINDS)} happens at a moment of the "
                             f"run, not at a piece of output: the form is reprotect@failover#N "
                             "(N: the N-th failover of the run, default 1); the faults act at "
                             "messages and stages, not @failover")
    if point == "load" and kind in LINK_KINDS:
        raise FaultSpecError(f"{kind!r} acts on bytes on the wire; 'load' is not on the wire "
                             f"(use it with: {', '.join(PROCESS_KINDS)})")
    if kind in ("unexpected", "value", "opcode") and point in STAGES:
        raise FaultSpecError(f"{kind!r} replaces a control message; {point!r} is a stage")
    return Fault(kind, point, checkpoint, value)


def parse_all(specs, *, channels: bool = False) -> list[Fault]:
    return [parse(s, channels=channels) for s in specs]


def check_fault(f: Fault, dialect) -> None:
    """Refuse a fault ``dialect``'s wire cannot carry (FaultSpecError): the one check
    the simulator and the proxy share."""
    name = dialect.name
    if f.point in CHANNEL_POINTS:
        raise FaultSpecError(f"{f}: {f.point!r} is a colo-compare channel: only `colo lab` "
                             "has one")
    if f.kind == "unexpected" and f.arg not in dialect.ids:
        raise FaultSpecError(f"{f}: {f.arg!r} does not exist in the {name} "
                             f"dialect ({', '.join(dialect.ids)})")
    if f.point == "ram" and not dialect.ram_outside_blob:
        raise FaultSpecError(f"{f}: the {name} dialect sends RAM inside the "
                             "device-state blob; use @device-state")
    if f.point not in STAGES + MOMENTS and f.point not in dialect.ids:
        raise FaultSpecError(f"{f}: the {name} dialect has no {f.point!r}")


class FaultPlan:
    """Which faults of a plan fire at a piece, each at most once.

    A piece is named by its POINT and checkpoint N (``checkpoint-ready`` and the
    pieces before the first checkpoint count as #1).  The simulator and the proxy
    ask the same questions in the same order: process faults (and ``partition``)
    first, just before the piece leaves; then, if the piece still goes out, its
    link faults, which `link_effect` applies."""

    __slots__ = ("faults", "fired", "_index", "_indexed")

    def __init__(self, faults=(), fired: set[int] | None = None) -> None:
        self.faults = faults if isinstance(faults, list) else [
            f if isinstance(f, Fault) else parse(f) for f in faults]
        self.fired = set() if fired is None else fired
        self._index: dict[tuple[str, int], list[int]] = {}
        self._indexed = -1            # how many faults the index covers (-1: none)

    def pending(self, point: str, n: int) -> list[int]:
        """Indexes of the faults not yet fired at (point, n): one dict lookup (the
        index is built from the plan, and rebuilt when a fault is appended to it)."""
        faults = self.faults
        if self._indexed != len(faults):
            index: dict[tuple[str, int], list[int]] = {}
            for i, f in enumerate(faults):
                index.setdefault((f.point, f.checkpoint), []).append(i)
            self._index, self._indexed = index, len(faults)
        idx = self._index.get((point, n if n > 1 else 1))
        if idx is None:
            return []
        fired = self.fired
        return [i for i in idx if i not in fired]

    def take(self, point: str, n: int, *, link: bool) -> list[Fault]:
        """Fire the link (or the process) faults at (point, n)."""
        idx = [i for i in self.pending(point, n) if self.faults[i].is_link == link]
        self.fired.update(idx)
        return [self.faults[i] for i in idx]

    @property
    def all_fired(self) -> bool:
        return len(self.fired) == len(self.faults)


def sender_dies(f: Fault, sender: str) -> bool:
    """Does process fault ``f`` stop ``sender`` (so it never writes its piece)?"""
    return f.kind in (f"kill-{sender}", f"stall-{sender}")


def completions() -> list[str]:
    """``KIND@`` prefixes and points, for completers."""
    return [k + ("=" if a else "@") for k, (a, _) in KINDS.items()]


@dataclass(slots=True)
class LinkEffect:
    """What link faults do to one piece of output (the same in the simulator and proxies)."""

    data: bytes
    copies: int = 1                 # 0: dropped; 2: duplicated
    extra_delay_ms: float = 0.0
    close_before: str | None = None  # "close" or "reset": the connection ends first
    close_after: bool = False       # truncate: half the bytes, then the connection ends


def link_effect(faults_here, data: bytes, dialect, point: str, value: int, rng) -> LinkEffect:
    """Apply the link faults that fire on this piece.  ``dialect`` is the sender's; ``rng``
    (a random.Random) chooses the corrupting bits, so runs stay reproducible."""
    eff = LinkEffect(data)
    for f in faults_here:
        kind = f.kind
        if kind == "drop":
            eff.copies = 0
        elif kind == "delay":
            eff.extra_delay_ms += float(f.arg)
        elif kind == "corrupt" and eff.data:
            buf = bytearray(eff.data)
            buf[min(len(buf) - 1, dialect.opcode_bytes - 1)] ^= rng.randrange(1, 256)
            eff.data = bytes(buf)
        elif kind == "truncate":
            eff.data, eff.close_after = eff.data[: len(eff.data) // 2], True
        elif kind == "duplicate":
            eff.copies = 2
        elif kind in ("close", "reset"):
            eff.close_before, eff.copies = kind, 0
        elif kind == "unexpected":
            eff.data = dialect.encode(f.arg, 0)
        elif kind == "value":
            msg_id = dialect.ids.get(point)
            if msg_id is not None:
                eff.data = dialect.encode_raw(msg_id, int(f.arg))
        elif kind == "opcode":
            eff.data = dialect.encode_raw(int(f.arg), value if dialect.has_value(point)
                                          else None)
    return eff
