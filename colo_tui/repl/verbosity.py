"""How much of the event stream the REPL prints as events happen.

``quiet``: the control messages on the wire, errors, failovers, COLO_EXIT and
the end; ``normal`` (the default): every protocol event, but not the guest's
background client traffic (hundreds of lines a run); ``all``: everything.
"""
from __future__ import annotations

LEVELS = ("quiet", "normal", "all")
DEFAULT = "normal"
_QUIET_KINDS = frozenset({"send", "error", "failover", "colo-exit", "end", "fault",
                          "take-over", "qmp-error"})
_BACKGROUND_SIDES = frozenset({"client"})


def shown(ev, level: str) -> bool:
    """Whether `ev` prints at `level`."""
    if level == "all":
        return True
    if ev.side in _BACKGROUND_SIDES:
        return False
    return level != "quiet" or ev.kind in _QUIET_KINDS


class Printer:
    """Prints the events a level shows, and counts the ones it holds back."""

    def __init__(self, out, render) -> None:
        self.out, self.render = out, render
        self.level = DEFAULT
        self.hidden = 0

    def __call__(self, ev) -> None:
        if shown(ev, self.level):
            print(self.render(ev), file=self.out, flush=False)
        else:
            self.hidden += 1

    def take_note(self) -> str:
        """A line about what was held back since the last note ("" if nothing)."""
        n, self.hidden = self.hidden, 0
        if not n:
            return ""
        return (f"({n} event(s) not shown at verbosity {self.level}; "
                "'set verbosity all' shows every event)")
