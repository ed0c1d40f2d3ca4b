"""View objects: what the widgets see (plain data, no protocol objects, no logic)."""
from __future__ import annotations

from dataclasses import dataclass, field

SIDE_NAMES = ("primary", "secondary")


@dataclass(slots=True)
class LadderRow:
    """One line of the message ladder.

    kind: "msg" (control message), "payload" (RAM part, device state, initial
    stream), "note" (something one side did), "fault", "error", "lost" (a
    loss with no arrow to mark).
    """

    seq: int
    t_ms: float
    kind: str
    side: str = ""               # who: "primary", "secondary" or "" (the link)
    direction: str = ""          # "P>S" / "S>P" for arrows
    label: str = ""
    hex: str = ""
    point: str = ""              # fault-grammar point of the piece
    checkpoint: int = 0
    lost: str = ""               # why it was lost/dropped ("" = arrived or pending)
    shaded: bool = False         # inside a fault window
    flying: bool = False         # sent, not received yet (drawn half-way, dashed)


@dataclass(slots=True)
class SideView:
    name: str
    role: str = "—"
    run_state: str = "—"
    colo_mode: str = "—"
    failover: str = "none"
    last_mode: str = "—"
    reason: str = "—"
    checkpoint: int = 0
    since_ms: float | None = None
    state: str = "—"
    alive: bool = True
    stalled: bool = False
    error: str = ""
    heat_label: str = "RAM"
    heat: tuple[float, ...] | None = None     # fraction dirty per bucket, None = no guest
    heat_count: int = 0
    packets: str = "—"
    disk: str = "—"
    screen: str = ""                          # a mirrored real guest's VGA text line
    selected: bool = False


@dataclass(slots=True)
class FailoverView:
    states: tuple[str, ...] = ("none", "require", "active", "completed", "relaunch")
    current: dict[str, str] = field(default_factory=dict)   # side -> state name


@dataclass(slots=True)
class StatusView:
    dialect: str = "qemu"
    mode: str = "periodic"
    seed: int | None = 1          # None: a live session (its peers are not seeded)
    step: int = 0
    t_ms: float = 0.0
    running: bool = False
    speed: str = "1/s"
    forked: bool = False
    forked_at: int | None = None
    recording: str = ""
    replay: str = ""
    finished: bool = False
    outcome: str = ""
    faults: tuple[str, ...] = ()
    notice: str = ""
