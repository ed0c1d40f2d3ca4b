"""Detail events (vm, migration, the actions no invariant checks) are emitted only when
someone reads them; skipping them changes nothing else a run does or says."""
from __future__ import annotations

from protocol.core.events import Action, Migration, Vm
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

DETAIL_ACTIONS = {"save-devices", "replication-checkpoint", "cache-pages", "start-dirty-log"}


def _is_detail(ev) -> bool:
    return type(ev) in (Vm, Migration) or (type(ev) is Action and ev.name in DETAIL_ACTIONS)


def _key(ev):
    return (type(ev), ev.t_ms, ev.side, ev.payload())


def test_detail_follows_who_listens():
    sim = Simulation(SimConfig(checkpoints=3, guest="null"), keep_events=False)
    assert not any(ep.out.detail for ep in sim.eps.values())
    seen = []
    sim.on_event = seen.append                      # a subscriber turns them on
    assert all(ep.out.detail for ep in sim.eps.values())
    sim.run()
    assert any(type(e) is Vm for e in seen) and any(type(e) is Migration for e in seen)
    sim.on_event = None
    assert not any(ep.out.detail for ep in sim.eps.values())
    assert Simulation(SimConfig(checkpoints=1, guest="null")).eps["primary"].out.detail
    # a guest model: the simulator follows the PVM's stop by its vm event
    model = Simulation(SimConfig(checkpoints=1, guest="model"), keep_events=False)
    assert model.eps["primary"].out.detail


def test_skipping_detail_changes_nothing_else():
    for dialect in ("qemu", "v11", "prototype"):
        cfg = dict(checkpoints=4, guest="null", dialect=dialect,
                   faults=["kill-secondary@vmstate-send#3"])
        full = Simulation(SimConfig(**cfg))
        full.run()
        lean = Simulation(SimConfig(**cfg))
        for ep in lean.eps.values():
            ep.out.detail = False
        lean.run()
        assert any(_is_detail(e) for e in full.events)
        assert not any(_is_detail(e) for e in lean.events)
        assert [_key(e) for e in full.events if not _is_detail(e)] == \
            [_key(e) for e in lean.events], dialect
        assert lean.outcome() == full.outcome()
        assert lean.invariants.violations == full.invariants.violations
        for s in ("primary", "secondary"):
            assert lean.eps[s].run_state == full.eps[s].run_state
            assert lean.eps[s].migration_status == full.eps[s].migration_status


def test_unwatched_run_still_catches_a_broken_invariant(monkeypatch):
    """The invariants keep the actions they check (release-output here) with detail off."""
    from protocol.core import primary as prim
    orig = prim.PrimaryMachine._on_reply

    def early_release(self, msg):
        self._release()                   # output released before vmstate-received
        return orig(self, msg)
    monkeypatch.setattr(prim.PrimaryMachine, "_on_reply", early_release)
    sim = Simulation(SimConfig(checkpoints=2, guest="null"), keep_events=False)
    assert not sim.eps["primary"].out.detail
    sim.run()
    assert not sim.invariants.ok["output_commit"]


def test_a_lean_run_skips_the_wire_events_and_changes_nothing_else():
    """Nobody listens: the endpoints also skip the send/recv events no check reads
    (``Outbox.lean``); the run, its outcome and its invariants are the same."""
    from protocol.core.events import Recv, RecvDeviceState, RecvRam, Send, SendRam
    wire = (Send, Recv, SendRam, RecvRam, RecvDeviceState)
    for dialect in ("qemu", "v11", "prototype"):
        cfg = dict(checkpoints=4, guest="null", dialect=dialect,
                   faults=["kill-secondary@vmstate-send#3"])
        full = Simulation(SimConfig(**cfg))
        full.run()
        lean = Simulation(SimConfig(**cfg), keep_events=False)
        assert all(ep.out.lean for ep in lean.eps.values())
        seen = []
        collect = lean._collect

        def watched_collect(lean=lean, seen=seen, collect=collect):
            for ep in lean.eps.values():      # what the endpoints emit, before the sim
                seen.extend(ep.out.events)
            collect()
        lean._collect = watched_collect
        lean.run()
        kept = {(type(e), e.side, e.msg) for e in seen if type(e) in (Send, Recv)}
        checked = {"primary": lean.invariants.messages_checked("primary"),
                   "secondary": lean.invariants.messages_checked("secondary")}
        assert kept and all(msg in checked[side] for _c, side, msg in kept), dialect
        assert not any(type(e) in (SendRam, RecvRam, RecvDeviceState) for e in seen)
        assert any(type(e) in wire for e in full.events)
        assert lean.outcome() == full.outcome() and lean.steps == full.steps
        assert lean.invariants.violations == full.invariants.violations
        assert lean.invariants.ok == full.invariants.ok
        for s in ("primary", "secondary"):
            assert lean.eps[s].checkpoint == full.eps[s].checkpoint
            assert lean.eps[s].state == full.eps[s].state


def test_a_listener_turns_lean_off():
    sim = Simulation(SimConfig(checkpoints=2, guest="null"), keep_events=False)
    assert all(ep.out.lean for ep in sim.eps.values())
    seen = []
    sim.on_event = seen.append
    assert not any(ep.out.lean for ep in sim.eps.values())
    sim.run()
    assert any(e.kind == "recv" and e.msg == "checkpoint-request" for e in seen)
