"""Named deadlines of one endpoint (sans-IO: time is a value passed in, in ms).

The driver asks for ``next_deadline()`` and calls back with the time; ``due(now)``
lists the timers that have expired, earliest first, and ``fire(name, now)`` takes one
off if it is still due (a handler may have re-armed or cancelled it meanwhile).
``changes`` counts the changes (set, cancel, fire): a driver that polls many
endpoints asks for a deadline only when it has moved (the simulator).
"""
from __future__ import annotations


class Timers:
    __slots__ = ("_at", "changes")

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self.changes = 0

    def set(self, name: str, at_ms: float) -> None:
        self._at[name] = at_ms
        self.changes += 1

    def cancel(self, name: str) -> None:
        if self._at.pop(name, None) is not None:
            self.changes += 1

    def __contains__(self, name: str) -> bool:
        return name in self._at

    def __bool__(self) -> bool:
        return bool(self._at)

    def get(self, name: str) -> float | None:
        return self._at.get(name)

    def next_deadline(self) -> float | None:
        at = self._at
        return min(at.values()) if at else None

    def due(self, now: float) -> list[str]:
        return [n for _, n in sorted((t, n) for n, t in self._at.items() if t <= now)]

    def fire(self, name: str, now: float) -> bool:
        """Take `name` off when it is (still) due at `now`; whether it fires."""
        if self._at.get(name, now + 1) <= now:
            del self._at[name]
            self.changes += 1
            return True
        return False
