"""The simulator as a `protocol.core.session.Session` (mixed into Simulation).

Read through the snapshot builders (protocol.core.snapshot); inputs go to
`apply_input` in the recording's shape.  Everything runs on the caller's
thread, which owns the simulation.
"""
from __future__ import annotations

from types import MappingProxyType

from protocol.core.session import (
    SIDES,
    SIMULATED,
    ArmedFault,
    GuestReport,
    GuestView,
    Input,
    SessionError,
    SideStatus,
)
from protocol.core.snapshot import guest_report, guest_view, side_status


class SimulationSession:
    capabilities = SIMULATED
    hint = ""

    @property
    def config(self):
        return self.cfg

    def side(self, side: str) -> SideStatus:
        return side_status(self.eps[side], alive=self.alive[side], stalled=self.stalled[side])

    def guest(self, side: str) -> GuestView:
        return guest_view(self.guests.get(side), side)

    def guest_report(self) -> GuestReport:
        return guest_report(self.guests)

    def checks(self):
        return MappingProxyType(dict(self.invariants.ok))

    def send(self, inp: Input) -> None:
        if inp.cmd == "failover":
            raise SessionError("the simulator's arbiter fails a side over by itself; the "
                               "operator's way here is x-colo-lost-heartbeat (heartbeat "
                               f"{inp.side}); `failover` is for a real pair (colo lab)")
        self.apply_input(inp.as_item())

    def armed_faults(self) -> tuple[ArmedFault, ...]:
        return tuple(ArmedFault(str(f), i in self.fired) for i, f in enumerate(self.faults))

    def close(self) -> None:
        """Nothing to release: the simulation holds no thread or socket."""


__all__ = ["SimulationSession", "SIDES"]
