"""The invariants of DESIGN.md §5, checked after every step of a simulation.

Each check returns None (holds) or a text saying what broke.  Checks that
need RAM, devices, disk or packets ask the guests (``protocol.guest.model``)
and hold vacuously for the null guest.
"""
from __future__ import annotations

NAMES = ("consistency", "output_commit", "client_history", "one_active_vm",
         "whole_checkpoint", "termination", "monotonic_checkpoints")


#: the event kinds the invariants look at (the simulator skips the others)
KINDS = frozenset(("state", "checkpoint", "recv", "action", "stopped-for-checkpoint"))
_KINDS = KINDS


class Invariants:
    def __init__(self, sim) -> None:
        self.sim = sim
        self.ok = {name: True for name in NAMES}
        self.violations: list[dict] = []
        self._last_commit = {"primary": 0, "secondary": 0}
        self._received = {}          # checkpoint -> True once the release point passed
        self._snapshots: dict[int, object] = {}
        self._state = {"primary": "INIT", "secondary": "INIT"}   # as the events tell it
        self._in_flight = {"primary": 0, "secondary": 0}

    def fail(self, name: str, text: str) -> None:
        if self.ok[name]:
            self.ok[name] = False
            self.violations.append({"invariant": name, "text": text,
                                    "t_ms": self.sim.now, "step": self.sim.steps})

    # -- per event -------------------------------------------------------------
    def on_event(self, ev) -> None:
        kind = ev.kind
        if kind not in _KINDS:
            return
        side, d = ev.side, ev.data
        if kind == "state":
            self._state[side] = d["to"]
        elif kind == "checkpoint" and d.get("phase") == "begin":
            self._in_flight[side] = d["n"]
        elif kind == "checkpoint" and d.get("phase") == "commit":
            n = d["n"]
            if n != self._last_commit[side] + 1:
                self.fail("monotonic_checkpoints",
                          f"{side} committed checkpoint {n} after {self._last_commit[side]}")
            self._last_commit[side] = n
            if side == "secondary":
                self._check_consistency(n)
        elif kind == "recv" and side == "primary" and \
                d.get("msg") == self.sim.dialect.release_after:
            self._received[self._in_flight["primary"]] = True
        elif kind == "action" and d.get("name") == "release-output" and side == "primary":
            n = self._in_flight["primary"]
            if not self._received.get(n):
                self.fail("output_commit", f"primary released output of checkpoint {n} "
                          f"before {self.sim.dialect.release_after} arrived")
        elif kind == "action" and d.get("name") == "flush-cache" and side == "secondary":
            if self._state["secondary"] != "LOADING":
                self.fail("whole_checkpoint", "the secondary flushed its RAM cache in state "
                          f"{self._state['secondary']} (only a whole checkpoint may be flushed)")
        elif kind == "stopped-for-checkpoint" and side == "primary":
            snap = getattr(self.sim.guests["primary"], "digest", None)
            if snap is not None:
                self._snapshots[d["n"]] = snap()

    def _check_consistency(self, n: int) -> None:
        want = self._snapshots.pop(n, None)
        sec = self.sim.guests["secondary"]
        if want is None or not hasattr(sec, "digest"):
            return
        got = sec.digest()
        if got != want:
            detail = ""
            diff = getattr(sec, "consistency_diff", None)
            if diff is not None:
                detail = f": {diff(self.sim.guests['primary'])}"
            self.fail("consistency", f"after checkpoint {n} the SVM differs from the PVM "
                      f"at its stop{detail}")

    # -- at the end -------------------------------------------------------------
    def at_end(self) -> None:
        sim = self.sim
        if sim.hung:
            self.fail("termination", sim.hung)
        active = sim.active_sides()
        if len(active) > 1 and not sim.premise_broken and not sim.both_in_colo():
            self.fail("one_active_vm", f"both {', '.join(active)} run outside COLO "
                      "although no operator told a side to take over while its peer lived")
        if len(active) == 1 and not sim._null_guest:
            survivor = sim.guests[active[0]]
            for rel in survivor.client_log.released:
                if rel.packet.req_id > survivor.devices.last_rx_id:
                    self.fail("client_history",
                              f"the client received an answer to request {rel.packet.req_id} "
                              f"(from the {rel.packet.side}, at {rel.t_ms} ms) that the "
                              f"surviving {active[0]} never took in (it has up to "
                              f"{survivor.devices.last_rx_id})")
                    break
        for side, guest in sim.guests.items():
            check = getattr(guest, "check_output_invariants", None)
            if check is not None and sim.alive[side]:
                problem = check()
                if problem:
                    self.fail("client_history", f"{side}: {problem}")
