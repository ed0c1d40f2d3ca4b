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
