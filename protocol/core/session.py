"""The one session interface every UI reads and drives.

A *session* is one COLO pair seen through an event stream: the simulator
(`protocol.sim.core.Simulation`), the playback of a recording or an imported
capture (`protocol.record.playback.Playback`), or a live source (a TCP pair in
this process, the live proxy, the peer of a real QEMU, two processes attached
through QMP).  The UIs (TUI, REPL) read a session only through this module's
types: the event stream, an immutable status snapshot per side
(`SideStatus`), an immutable guest view per side (`GuestView`, and the deeper
`GuestReport` on demand), the wire list, and they change it only through
`Input`s.  What a session can do is said by its `Capabilities`, not found out
by trying.

Everything a session hands out is frozen: a live source builds its snapshots
on its own thread and publishes them through its queue, so no object is read
on one thread while another changes it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from protocol.core.events import Send
from protocol.errors import ColoError

SIDES = ("primary", "secondary")


class SessionError(ColoError, ValueError):
    """The session cannot do what was asked (a live session cannot step back …)."""


# ----------------------------------------------------------------- capabilities
@dataclass(frozen=True, slots=True)
class Capabilities:
    #: an earlier step can be shown again (re-run, re-read)
    can_step_back: bool
    #: the session can be replaced by a new one with other settings
    can_restart: bool
    #: real peers run on while the view is paused; stepping moves arrived events in
    is_live: bool
    #: operator inputs (checkpoint, kill, failover …) change this session
    takes_inputs: bool
    #: faults can be armed at any time
    takes_faults: bool
    #: receptions are reported (a message is "in flight" until its recv)
    reports_receptions: bool
    #: the simulator's invariants are checked
    checks_invariants: bool
    #: the session plays a recording back: it rewinds itself (``rewound(step)``) and
    #: a re-recording keeps the recording's own header (``recording_header()``)
    plays_recording: bool = False


SIMULATED = Capabilities(can_step_back=True, can_restart=True, is_live=False,
                         takes_inputs=True, takes_faults=True, reports_receptions=True,
                         checks_invariants=True)
PLAYBACK = Capabilities(can_step_back=True, can_restart=True, is_live=False,
                        takes_inputs=False, takes_faults=False, reports_receptions=False,
                        checks_invariants=False, plays_recording=True)


def live_capabilities(*, takes_inputs: bool, takes_faults: bool = False) -> Capabilities:
    return Capabilities(can_step_back=False, can_restart=False, is_live=True,
                        takes_inputs=takes_inputs, takes_faults=takes_faults,
                        reports_receptions=False, checks_invariants=False)


# ----------------------------------------------------------------------- status
@dataclass(frozen=True, slots=True)
class SideStatus:
    """One side as of one moment: what `query-status`, `query-colo-status` and the
    machine say, and whether its process is alive."""

    role: str
    state: str = "INIT"
    run_state: str = "—"
    migration: str = "none"
    colo_mode: str = "none"
    last_mode: str = "none"
    reason: str = "none"
    #: the failover machine's state (protocol.core.failover constant) and its dialect name
    failover: str = "none"
    failover_state: str = "none"
    #: (from, to) failover moves, protocol.core.failover constants
    failover_history: tuple[tuple[str, str], ...] = ()
    checkpoint: int = 0
    in_flight: int = 0
    error: str | None = None
    checkpoint_delay_ms: int = 0
    alive: bool = True
    stalled: bool = False

    @property
    def running(self) -> bool:
        return self.run_state == "running"

    @property
    def colo_status(self) -> dict:
        return {"mode": self.colo_mode, "last-mode": self.last_mode, "reason": self.reason}

    def as_dict(self) -> dict:
        """The `status` shape the REPL's --json and the tests read."""
        return {"role": self.role, "state": self.state, "run_state": self.run_state,
                "running": self.running, "migration": self.migration,
                "colo_status": self.colo_status, "failover_state": self.failover_state,
                "checkpoint": self.checkpoint, "in_flight": self.in_flight,
                "error": self.error, "checkpoint_delay_ms": self.checkpoint_delay_ms,
                "alive": self.alive, "stalled": self.stalled}


# ------------------------------------------------------------------------ guest
@dataclass(frozen=True, slots=True)
class GuestView:
    """What a side panel shows of a guest, cheap to build every repaint.

    ``kind``: ``null`` (no guest: the control protocol alone), ``model`` (the
    simulated guest), ``mirror`` (the secondary's mirror of a real guest) or ``lab``
    (a real guest of `colo lab`: ``screen`` is its serial console's last line,
    ``packets`` the client's and colo-compare's counts)."""

    kind: str = "null"
    heat: tuple[float, ...] = ()
    heat_count: int = 0
    heat_label: str = ""
    packets: str = ""
    disk: str = ""
    screen: str = ""

    def summary(self) -> dict:
        """The panel's fields ({} for the null guest)."""
        if self.kind == "null" or not self.heat_label:
            return {}
        out = {k: v for k, v in asdict(self).items() if k != "kind"}
        if self.kind not in ("mirror", "lab"):
            del out["screen"]
        return out


@dataclass(frozen=True, slots=True)
class RamCacheReport:
    pending: int
    last_flush_pages: int
    flushes: int
    discards: int


@dataclass(frozen=True, slots=True)
class RamReport:
    size_bytes: int
    layout: tuple[tuple[str, int], ...]
    dirty: int
    digest: str
    cache: RamCacheReport | None = None


@dataclass(frozen=True, slots=True)
class PacketsReport:
    client_received: int = 0
    filter_held: int | None = None          # filter-buffer (periodic), None without one
    filter_released: int = 0
    compare_queued: tuple[int, int] | None = None   # colo-compare (hybrid)
    compare_matched: int = 0
    compare_drops: int = 0
    compare_notifications: tuple[str, ...] = ()     # the reasons, oldest first
    svm_outbox: int = 0
    svm_dropped: int = 0


@dataclass(frozen=True, slots=True)
class DiskReport:
    sectors: int
    digest: str


@dataclass(frozen=True, slots=True)
class MirrorReport:
    """The secondary's mirror of a real guest (`--peer`)."""

    has_ram: bool
    machine: str
    blocks: tuple[tuple[str, int], ...]
    initial_pages: int
    checkpoints: int
    pages_flushed_total: int
    flushed_counts: tuple[tuple[str, int], ...]
    devices: int
    screen_lines: tuple[str, ...]
    took_over: bool = False


@dataclass(frozen=True, slots=True)
class GuestSideReport:
    kind: str = "null"
    ram: RamReport | None = None
    packets: PacketsReport | None = None
    disk: DiskReport | None = None
    mirror: MirrorReport | None = None


@dataclass(frozen=True, slots=True)
class GuestReport:
    """Both guests in depth (`show ram|packets|disk|screen`), and where they differ."""

    primary: GuestSideReport = GuestSideReport()
    secondary: GuestSideReport = GuestSideReport()
    ram_diff: tuple[tuple[str, tuple[int, ...]], ...] = ()
    disk_diff: tuple[int, ...] = ()

    def side(self, side: str) -> GuestSideReport:
        return self.primary if side == "primary" else self.secondary


# ------------------------------------------------------------------------- wire
@dataclass(frozen=True, slots=True)
class WireMessage:
    dir: str
    msg: str
    value: int
    hex: str
    seq: int
    t: float

    def as_dict(self) -> dict:
        return {"dir": self.dir, "msg": self.msg, "value": self.value, "hex": self.hex,
                "seq": self.seq, "t": self.t}


def wire_of(events: Sequence) -> list[WireMessage]:
    """The control messages in the order they were sent."""
    return [WireMessage(e.dir or ("P>S" if e.side == "primary" else "S>P"),
                        e.msg, e.value or 0, e.hex, e.seq, e.t_ms)
            for e in events if type(e) is Send]


# ----------------------------------------------------------------------- inputs
INPUTS = ("checkpoint", "lost-heartbeat", "kill", "stall", "shutdown", "set-delay", "fault",
          "reprotect", "failover")
#: the inputs that name a side (``failover``: the side that takes over)
SIDE_INPUTS = ("lost-heartbeat", "kill", "stall", "failover")


@dataclass(frozen=True, slots=True)
class Input:
    """One operator input: ``cmd`` is one of INPUTS; ``side`` for the side-bound ones,
    ``value`` the delay (ms) or the fault spec.  ``failover`` is docs/COLO-FT.txt's
    failover of a real pair onto ``side`` (the survivor): `colo lab` carries it out;
    a simulation refuses it (its arbiter fails over; ``lost-heartbeat`` is the
    operator's own way there)."""

    cmd: str
    side: str | None = None
    value: int | str | None = None

    def __post_init__(self) -> None:
        if self.cmd not in INPUTS:
            raise SessionError(f"unknown input {self.cmd!r} (one of: {', '.join(INPUTS)})")
        if (self.side is not None) != (self.cmd in SIDE_INPUTS):
            raise SessionError(f"input {self.cmd!r} " + ("names a side" if self.side is None
                                                         else "takes no side"))
        if self.side is not None and self.side not in SIDES:
            raise SessionError(f"side must be primary or secondary, not {self.side!r}")

    def as_item(self) -> dict:
        """The recording's shape: {"cmd": …, "side": …, "value": …}."""
        item: dict = {"cmd": self.cmd}
        if self.side is not None:
            item["side"] = self.side
        if self.value is not None:
            item["value"] = self.value
        return item

    @property
    def args(self) -> tuple:
        return tuple(x for x in (self.side, self.value) if x is not None)


@dataclass(frozen=True, slots=True)
class ArmedFault:
    spec: str
    fired: bool


# --------------------------------------------------------------------- protocols
@runtime_checkable
class EventStream(Protocol):
    #: the events in view, oldest first (``seq`` is the index); read, never changed.  A
    #: live session's is an EventWindow (protocol/core/eventwindow.py): it drops its
    #: oldest events in batches, and len() and indexes stay those of every event seen
    events: Sequence
    steps: int
    now: float
    #: called with each event as it comes into view
    on_event: object

    @property
    def finished(self) -> bool: ...

    def step(self) -> list:
        """One step: the events it brought into view (none if nothing came)."""


@runtime_checkable
class StatusSource(Protocol):
    def side(self, side: str) -> SideStatus: ...

    def outcome(self) -> str: ...

    def checks(self) -> Mapping[str, bool]:
        """The invariants and whether each holds ({} when none are checked)."""


@runtime_checkable
class GuestSource(Protocol):
    def guest(self, side: str) -> GuestView: ...

    def guest_report(self) -> GuestReport: ...


@runtime_checkable
class InputSink(Protocol):
    def send(self, inp: Input) -> None:
        """Apply an operator input (SessionError if this session takes none)."""

    def check_fault(self, fault) -> None:
        """Raise if `fault` (protocol.core.faults.Fault) cannot be armed here."""

    def armed_faults(self) -> tuple[ArmedFault, ...]: ...


@runtime_checkable
class Session(EventStream, StatusSource, GuestSource, InputSink, Protocol):
    """What the TUI, the REPL and `--attach` read and drive; nothing else."""

    capabilities: Capabilities
    #: the session's settings (protocol.sim.config.SimConfig)
    config: object
    #: what the user must do first ("" when nothing), e.g. start the primary
    hint: str

    def close(self) -> None:
        """Release what the session holds (threads, sockets); idempotent."""


class RecordingPlayback(Session, Protocol):
    """A session whose capabilities say ``plays_recording``."""

    def rewound(self, step: int) -> RecordingPlayback:
        """A fresh playback of the same recording, stepped to ``step``."""

    def recording_header(self) -> dict:
        """The header a re-recording of this playback writes."""


@dataclass(frozen=True, slots=True)
class Published:
    """What a live source's thread hands to the UI's: events and the snapshots as
    of just after them (built on the source's thread)."""

    events: tuple = ()
    sides: tuple[SideStatus, SideStatus] | None = None
    guests: tuple[GuestView, GuestView] | None = None
