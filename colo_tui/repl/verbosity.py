"""How much of the event stream the REPL prints as events happen.

``quiet``: the control messages on the wire, errors, failovers, COLO_EXIT and
the end; ``normal`` (the default): every protocol event, but not the guest's
background client traffic (hundreds of lines a run); ``all``: everything.
"""
from __future__ import annotations

from colo_tui.session.words import plural
from protocol.core.events import EventKind as K

LEVELS = ("quiet", "normal", "all")
DEFAULT = "normal"
_QUIET_KINDS = frozenset({K.SEND, K.ERROR, K.FAILOVER, K.COLO_EXIT, K.END, K.FAULT,
                          K.QMP_ERROR, K.REPROTECT, K.REPROTECT_REFUSED})
_BACKGROUND_SIDES = frozenset({"client"})


def shown(ev, level: str) -> bool:
    """Whether `ev` prints at `level`."""
    if level == "all":
        return True
    if ev.side in _BACKGROUND_SIDES:
        return False
    return level != "quiet" or ev.kind in _QUIET_KINDS


#: ANSI colours by event kind, for a terminal that wants them (not NO_COLOR, not a pipe)
_COLOURS = {"send": "36", "recv": "36", "error": "1;31", "qmp-error": "31",
            "failover": "1;33", "colo-exit": "1;33", "take-over": "1;33", "fault": "35",
            "end": "1", "checkpoint": "32"}


def colour_wanted(out) -> bool:
    import os
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def coloured(ev, text: str) -> str:
    code = _COLOURS.get(ev.kind)
    return f"\x1b[{code}m{text}\x1b[0m" if code else text


class Printer:
    """Prints the events a level shows, and counts the ones it holds back."""

    def __init__(self, out, render, *, colour: bool | None = None) -> None:
        self.out, self.render = out, render
        self.level = DEFAULT
        self.hidden = 0
        self.colour = colour_wanted(out) if colour is None else colour

    def __call__(self, ev) -> None:
        if shown(ev, self.level):
            text = self.render(ev)
            print(coloured(ev, text) if self.colour else text, file=self.out, flush=False)
        else:
            self.hidden += 1

    def take_note(self) -> str:
        """A line about what was held back since the last note ("" if nothing)."""
        n, self.hidden = self.hidden, 0
        if not n:
            return ""
        return (f"({plural(n, 'event')} not shown at verbosity {self.level}; "
                "'set verbosity all' shows every event)")
