"""What became of a finished run's fault plan, in words: the faults that never fired
(their point never came) and the plan steps that fired but could not run.

One path for every kind, so a link fault past the run's end, a process fault after
the side died, and ``reprotect@failover`` in a run without a failover are all said
alike (`colo run` prints them as notes on stderr)."""
from __future__ import annotations

from protocol.core import faults as fl


def _times(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fault_notes(faults, fired, *, failovers: int, committed: int,
                refused: dict[str, str] | None = None) -> list[str]:
    """One line per fault that did nothing: ``faults`` the plan's Fault objects,
    ``fired`` the indexes that fired, ``failovers`` how many failovers finished,
    ``committed`` the checkpoints both sides committed, ``refused`` {spec: why} for
    the plan steps that fired and were refused."""
    refused = refused or {}
    out = []
    for i, f in enumerate(faults):
        spec = str(f)
        if i in fired:
            if spec in refused:
                out.append(f"fault {spec} fired but could not run: {refused[spec]}")
            continue
        if f.point in fl.MOMENTS:
            had = ("no failover happened in this run" if not failovers else
                   f"the run had {_times(failovers, 'failover')}, not {f.checkpoint}")
            out.append(f"fault {spec} never fired: {had}")
        else:
            out.append(f"fault {spec} never fired: the run did not reach {f.point} of "
                       f"checkpoint {f.checkpoint} (it ended with "
                       f"{_times(committed, 'checkpoint')} committed)")
    return out
