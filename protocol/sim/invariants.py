"""The invariants of DESIGN.md §5, checked continuously on the events of a simulation.

Each check returns None (holds) or a text saying what broke.  Checks that
need RAM, devices, disk or packets ask the guests (``protocol.guest.model``)
and hold vacuously for the null guest; those that must see a guest operation
as it happens (flush set, compare honesty, the state before the SVM resumes)
live in `guestwatch`.
"""
from __future__ import annotations

from protocol.core.events import (
    Action,
    Checkpoint,
    Load,
    Recv,
    Send,
    SendDeviceState,
    State,
    StoppedForCheckpoint,
)

NAMES = ("consistency", "output_commit", "client_history", "one_active_vm",
         "whole_checkpoint", "termination", "monotonic_checkpoints", "vmstate_size",
         "flush_set", "compare_honesty", "dirty_log", "whole_survivor", "discard_keeps_svm",
         "takeover_keeps_view", "pvm_stopped", "output_covered")


#: the event classes the invariants look at (the simulator hands on_event no other)
KINDS = frozenset((State, Checkpoint, Recv, Action, StoppedForCheckpoint, Send,
                   SendDeviceState, Load))
#: the actions and sent messages on_event looks at (the others pass by)
_ACTIONS_CHECKED = frozenset(("take-over", "expect-blob", "load-devices", "release-output",
                              "flush-cache"))
_SENDS_CHECKED = frozenset(("vmstate-size", "vmstate-received"))


class _Checks:
    """The checks run on every event: the simulator's hot path.  An extension type
    in the compiled build (invariants.pxd: its state is C fields); `Invariants`
    adds what runs rarely, and tests patch (`fail`, `at_end`) there."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.ok = {name: True for name in NAMES}
        self.violations: list[dict] = []
        self._last_commit = {"primary": 0, "secondary": 0}
        self._received = {}          # checkpoint -> True once the release point passed
        self._snapshots: dict[int, object] = {}
        self._state = {"primary": "INIT", "secondary": "INIT"}   # as the events tell it
        self._in_flight = {"primary": 0, "secondary": 0}
        self._size_sent: int | None = None     # the primary's last vmstate-size value
        self._size_expected: int | None = None  # what the secondary was told to expect
        self.loading_n = 0
        self._received_whole = 0                 # the secondary sent vmstate-received
        self.watch = None
        self._committed = None                   # (n, PVM digest at its stop for n)
        if not sim._null_guest and hasattr(sim.guests["secondary"], "digest"):
            from protocol.sim.guestwatch import GuestWatch
            self.watch = GuestWatch(self, sim)
            self._committed = (0, sim.guests["secondary"].digest(raw=True))

    # -- per event -------------------------------------------------------------
    def messages_checked(self, side: str) -> frozenset[str]:
        """The control messages whose send/recv events of ``side`` a check reads (an
        endpoint nobody else listens to emits no others: ``Outbox.lean``)."""
        if side == "primary":
            return _SENDS_CHECKED | {self.sim.dialect.release_after}
        return _SENDS_CHECKED

    def on_event(self, ev) -> None:
        """Check one event (of any class: those no invariant reads pass by).  Each
        class has its own check (C calls in the compiled build, by the class's
        identity: the simulator calls this for every event it checks)."""
        kind = type(ev)
        if kind is State:
            self._on_state(ev)
        elif kind is Checkpoint:
            self._on_checkpoint(ev)
        elif kind is Action:
            self._on_action(ev)
        elif kind is Send:
            self._on_send(ev)
        elif kind is Load:
            self._on_load(ev)
        elif kind is Recv:
            self._on_recv(ev)
        elif kind is SendDeviceState:
            self._on_device_state(ev)
        elif kind is StoppedForCheckpoint:
            self._on_stopped(ev)

    def _on_state(self, ev) -> None:
        self._state[ev.side] = ev.to

    def _on_checkpoint(self, ev) -> None:
        side, n, phase = ev.side, ev.n, ev.phase
        last = self._last_commit[side]
        if phase == "begin":
            if n != last + 1:
                self.fail("monotonic_checkpoints", f"{side} began checkpoint {n} after "
                          f"committing {last}")
            elif side == "secondary" and n != self._in_flight["primary"]:
                self.fail("monotonic_checkpoints", f"the secondary began checkpoint {n} "
                          f"while the primary runs checkpoint {self._in_flight['primary']}")
            self._in_flight[side] = n
        elif phase == "commit":
            if n != last + 1:
                self.fail("monotonic_checkpoints",
                          f"{side} committed checkpoint {n} after {last}")
            self._last_commit[side] = n
            if side == "secondary":
                self.check_consistency(n)

    def _on_send(self, ev) -> None:
        msg = ev.msg
        if msg == "vmstate-size":
            if ev.side == "primary":
                self._size_sent = ev.value
        elif msg == "vmstate-received" and ev.side == "secondary":
            self._received_whole = self._in_flight["secondary"]

    def _on_device_state(self, ev) -> None:
        if ev.side != "primary":
            return
        if self.watch is not None:      # the PVM is stopped and its dirty log synced
            self.watch.check_pvm_stopped(self._in_flight["primary"])
        if self._size_sent is not None and ev.bytes != self._size_sent:
            self.fail("vmstate_size", f"checkpoint {self._in_flight['primary']}: the "
                      f"primary announced vmstate-size {self._size_sent} but sent a "
                      f"{ev.bytes}-byte device blob")
        self._size_sent = None

    def _on_load(self, ev) -> None:
        if ev.side == "secondary":
            self.loading_n = ev.n if ev.phase == "begin" else 0

    def _on_recv(self, ev) -> None:
        if ev.side == "primary" and ev.msg == self.sim.dialect.release_after:
            self._received[self._in_flight["primary"]] = True

    def _on_action(self, ev) -> None:
        name = ev.name
        if name not in _ACTIONS_CHECKED:
            return
        if ev.side == "primary":
            if name == "release-output":
                n = self._in_flight["primary"]
                if not self._received.get(n):
                    self.fail("output_commit", f"primary released output of checkpoint {n} "
                              f"before {self.sim.dialect.release_after} arrived")
            return
        if name == "take-over":
            self._check_relaunch()
        elif name == "expect-blob":
            self._size_expected = ev.bytes
        elif name == "load-devices":
            want = self._size_expected
            if want is not None and self.sim.peer_dialect.ram_outside_blob and \
                    ev.bytes != want:
                self.fail("vmstate_size", f"checkpoint {self.loading_n}: the secondary "
                          f"acknowledged a device blob of {ev.bytes} bytes with "
                          f"vmstate-received, but vmstate-size said {want}")
            self._size_expected = None
        elif name == "flush-cache":
            if self._state["secondary"] != "LOADING":
                self.fail("whole_checkpoint", "the secondary flushed its RAM cache in state "
                          f"{self._state['secondary']} (only a whole checkpoint may be flushed)")

    def _on_stopped(self, ev) -> None:
        if ev.side == "primary":
            snap = getattr(self.sim.guests["primary"], "digest", None)
            if snap is not None:
                self._snapshots[ev.n] = snap(raw=True)

    def check_consistency(self, n: int) -> None:
        """The SVM equals the PVM at its stop for checkpoint n (checked once: before the
        SVM resumes after the load in hybrid mode, at the commit otherwise).  Both RAM
        digests are read back raw (`Ram.digest`): a write around the page-hash cache --
        a raw copy into SVM RAM, a PVM write that escaped the dirty log -- shows."""
        want = self._snapshots.pop(n, None)
        sec = self.sim.guests["secondary"]
        if want is None or not hasattr(sec, "digest"):
            return
        if len(self._snapshots) > 4:          # stops of checkpoints that never committed
            for old in sorted(self._snapshots)[:-4]:
                del self._snapshots[old]
        self._committed = (n, want)
        got = sec.digest(raw=True)
        if got != want:
            detail = ""
            diff = getattr(sec, "consistency_diff", None)
            if diff is not None:
                detail = f": {diff(self.sim.guests['primary'])}"
            self.fail("consistency", f"after checkpoint {n} the SVM differs from the PVM "
                      f"at its stop{detail}")

    def _check_relaunch(self) -> None:
        """DESIGN.md §5.5: a checkpoint received whole (vmstate-received sent) but still
        loading completes before the secondary takes over (the relaunch path)."""
        n, have = self._received_whole, self._last_commit["secondary"]
        if n > have and self.sim.eps["secondary"].error is None:
            # what is known is the acknowledgement: either the checkpoint was whole and
            # its load was cut short, or it was acknowledged before it was whole
            self.fail("whole_survivor", f"the secondary took over from checkpoint {have} "
                      f"although it had acknowledged checkpoint {n} (vmstate-received): an "
                      "acknowledged checkpoint must be held whole when it is acknowledged "
                      "and loaded before a take-over (relaunch)")


class Invariants(_Checks):
    """The invariants of one simulation: `_Checks` on every event, and here what
    runs at a re-protect, at the start and at the end, and `fail` (which tests patch:
    a Python class's methods can be)."""

    def reprotected(self, base: int) -> None:
        """A re-protect made a new pair (protocol/sim/reprotect.py): both sides start
        from the survivor's last committed checkpoint `base`; numbering goes on from
        there, and the guest watch follows the new pair."""
        self._last_commit = {"primary": base, "secondary": base}
        self._in_flight = {"primary": 0, "secondary": 0}
        self._state = {"primary": "INIT", "secondary": "INIT"}
        self._received.clear()
        self._snapshots.clear()
        self._size_sent = self._size_expected = None
        self.loading_n = 0
        self._received_whole = base
        if self.watch is not None:
            from protocol.sim.guestwatch import GuestWatch
            self.watch.unwrap()
            self.watch = GuestWatch(self, self.sim)
            self._committed = (base, self.sim.guests["primary"].digest(raw=True))

    def check_initial(self) -> None:
        """The initial migration leaves the SVM equal to the PVM (stopped since it sent
        it): at the start and after every re-protect (GuestWatch calls it as the SVM
        loads the stream, before it may run)."""
        pri, sec = self.sim.guests["primary"], self.sim.guests["secondary"]
        if sec.digest(raw=True) == pri.digest(raw=True):
            return
        self.fail("consistency", "after the initial migration the SVM differs from the "
                  f"PVM: {sec.consistency_diff(pri)}")

    def fail(self, name: str, text: str) -> None:
        if self.ok[name]:
            self.ok[name] = False
            self.violations.append({"invariant": name, "text": text,
                                    "t_ms": self.sim.now, "step": self.sim.steps})

    def check_survivor(self, n: int) -> None:
        """A secondary taking over (periodic: it has not run since its last load) holds
        checkpoint n whole: RAM, devices and disk as the PVM's at its stop for n."""
        if self._committed is None or self._committed[0] != n:
            return
        got = self.sim.guests["secondary"].digest(raw=True)
        bad = [k for k, v in self._committed[1].items() if got.get(k) != v]
        if bad:
            self.fail("whole_survivor", f"the secondary took over from checkpoint {n}, but "
                      f"its {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not "
                      f"checkpoint {n}'s")

    # -- at the end -------------------------------------------------------------
    def at_end(self) -> None:
        sim = self.sim
        if sim.hung:
            self.fail("termination", sim.hung)
        active = sim.active_sides()
        # COLO's premise: an external arbiter picks the one survivor; without one, a
        # side left running after an error (B14) is QEMU's behaviour, not a checker's find
        if len(active) > 1 and not sim.premise_broken and sim.cfg.arbiter and \
                not sim.both_in_colo():
            self.fail("one_active_vm", f"both {', '.join(active)} run outside COLO "
                      "although no operator told a side to take over while its peer lived")
        if len(active) == 1 and not sim._null_guest:
            # (weak: by now the survivor has answered the mirrored requests queued for it
            # again; a checkpoint it lacked shows at the take-over, GuestWatch's check)
            survivor = sim.guests[active[0]]
            rel = survivor.first_unheld_answer()
            if rel is not None:
                self.fail("client_history",
                          f"the client received an answer to request {rel.packet.req_id} "
                          f"(from the {rel.packet.side}, at {rel.t_ms} ms) that the "
                          f"surviving {active[0]} never took in (it has up to "
                          f"{survivor.devices.last_rx_id})")
        if self.watch is not None:
            self.watch.check_primary_output()
        for side, guest in sim.guests.items():
            check = getattr(guest, "check_output_invariants", None)
            if check is not None and sim.alive[side]:
                problem = check()
                if problem:
                    self.fail("client_history", f"{side}: {problem}")
