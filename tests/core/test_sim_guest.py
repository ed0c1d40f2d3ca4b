"""The simulator with the guest model: real RAM, devices, disk and packets."""
import pytest

from protocol.guest.ramcache import RamCache
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation


def run(**kw):
    kw.setdefault("checkpoint_delay_ms", 1000)
    kw.setdefault("guest", "model")
    sim = Simulation(SimConfig(**kw))
    sim.run()
    assert sim.finished and not sim.hung
    return sim


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
def test_consistency_holds_at_every_commit(dialect, mode):
    sim = run(dialect=dialect, mode=mode, checkpoints=4, divergence=0.05)
    assert sim.outcome() == "ok"
    assert all(sim.invariants.ok.values()), sim.invariants.violations
    # the secondary really is the primary as it stopped: compare the twins now
    p, s = sim.guests["primary"], sim.guests["secondary"]
    if mode == "periodic":
        assert s.consistency_diff(p) == {} or p.running


def test_run1_shape_of_a_checkpoint():
    # the toggle workload is run1's guest: 1 vga + 2 + 8 + 2k + 8 pages for k steps
    sim = run(checkpoints=3)
    pages = [e.payload()["pages"] for e in sim.events if e.kind == "recv-ram"]
    assert pages and all(p == 39 for p in pages), pages   # k = 10 steps per second


def test_cache_bypass_bug_breaks_consistency(monkeypatch):
    """§15.23 (B11): pages written to SVM RAM but not to the cache -> SVM != PVM."""
    original = RamCache.receive

    def bypass(self, records, bypass_cache=False):
        return original(self, records, bypass_cache=True)

    monkeypatch.setattr(RamCache, "receive", bypass)
    sim = run(mode="hybrid", checkpoints=3)
    assert not sim.invariants.ok["consistency"]
    assert "differs from the PVM" in sim.invariants.violations[0]["text"]


def test_flush_counts_the_bitmap_never_the_ram_size():
    """§15.24 (B6): pages flushed = PVM-sent ∪ SVM-dirtied, never all of RAM."""
    sim = run(mode="hybrid", checkpoints=3, ram_mib=64)
    flushed = [e.payload()["pages"] for e in sim.events if e.kind == "action"
               and e.payload().get("name") == "flush-cache"]
    received = [e.payload()["pages"] for e in sim.events if e.kind == "recv-ram"]
    ram_pages = (64 + 16) * 256
    assert flushed and all(f < ram_pages // 10 for f in flushed)
    assert all(f >= r for f, r in zip(flushed, received, strict=False))


def test_large_guest_offsets_above_4gib(monkeypatch):
    """§15.20 (B7): a 5 GiB guest whose dirty pages sit above 4 GiB."""
    seen = []
    original = RamCache.receive

    def spy(self, records, bypass_cache=False):
        seen.extend(r.offset for r in records)
        return original(self, records, bypass_cache)

    monkeypatch.setattr(RamCache, "receive", spy)
    sim = Simulation(SimConfig(guest="model", ram_mib=5 * 1024, workload="uniform",
                               checkpoint_delay_ms=1000, checkpoints=2))
    sim.run()
    assert sim.outcome() == "ok" and all(sim.invariants.ok.values()), sim.invariants.violations
    assert any(off >= 1 << 32 for off in seen), max(seen)
    assert sim.guests["secondary"].consistency_diff(sim.guests["primary"]) == {}


def test_failover_keeps_the_client_history():
    sim = run(mode="periodic", checkpoints=3, faults=["kill-primary@ram#3"])
    assert sim.outcome() == "failover"
    assert all(sim.invariants.ok.values()), sim.invariants.violations
    log = sim.guests["secondary"].client_log
    assert len(log) > 0 and not log.duplicates


def test_releasing_output_early_is_caught_after_a_failover(monkeypatch):
    """Output commit broken on purpose: the PVM releases at checkpoint-reply."""
    from protocol.core import primary as prim
    orig = prim.PrimaryMachine._on_reply

    def early(self, msg):
        self._release()
        return orig(self, msg)

    monkeypatch.setattr(prim.PrimaryMachine, "_on_reply", early)
    sim = run(mode="periodic", checkpoints=3, faults=["kill-primary@ram#3"])
    assert not sim.invariants.ok["output_commit"]


def test_slow_load_delays_the_primary_not_the_output():
    """§15.27: the PVM waits for vmstate-loaded; output left at vmstate-received."""
    sim = run(checkpoints=2, load_ms=300)
    ev = [(e.t_ms, e.side, e.kind, e.payload().get("msg") or e.payload().get("name") or e.payload().get("run"))
          for e in sim.events if e.side == "primary"]
    released = [t for t, _, k, n in ev if k == "action" and n == "release-output"]
    resumed = [t for t, _, k, n in ev if k == "vm" and n == "running"][1:]
    assert resumed[0] - released[0] == pytest.approx(300, abs=1)


def test_compare_mismatch_triggers_a_checkpoint():
    """§15.3: the SVM answers differently -> colo-compare asks for a checkpoint now."""
    sim = run(mode="hybrid", checkpoints=3, divergence=1.0, checkpoint_delay_ms=20000)
    reasons = [e.payload()["reason"] for e in sim.events if e.kind == "checkpoint"
               and e.side == "primary" and e.payload()["phase"] == "begin"]
    assert reasons and all(r == "colo-compare" for r in reasons)
    assert sim.now < 20000           # long before the periodic timer


def test_stale_packet_triggers_a_checkpoint():
    """§15.4: the SVM never answers -> after 3 s (scanned every 1 s) a checkpoint."""
    sim = Simulation(SimConfig(guest="model", mode="hybrid", checkpoints=1,
                               checkpoint_delay_ms=20000, svm_output_lost=True))
    sim.run()
    assert all(sim.invariants.ok.values()), sim.invariants.violations
    begin = [e for e in sim.events if e.kind == "checkpoint" and e.side == "primary"
             and e.payload()["phase"] == "begin"][0]
    assert begin.payload()["reason"] == "colo-compare"
    assert 3000 <= begin.t_ms <= 5200


@pytest.mark.parametrize("guest", ["model", "null"])
@pytest.mark.parametrize("faults", [[], ["kill-secondary@load#2"], ["drop@vmstate-loaded#2"]])
def test_on_event_sees_the_events_in_their_order(guest, faults):
    """Recordings are written from on_event: it must see each event once, in seq
    order, exactly as `events` holds them (the simulator's own reactions, such as
    stopped-for-checkpoint or a fault at load, come after the endpoint's batch)."""
    seen = []
    sim = Simulation(SimConfig(guest=guest, checkpoints=3, checkpoint_delay_ms=1000,
                               faults=faults), on_event=seen.append)
    sim.run()
    assert [e.seq for e in seen] == list(range(len(sim.events)))
    assert [id(e) for e in seen] == [id(e) for e in sim.events]
    if guest == "model":
        assert any(e.kind == "stopped-for-checkpoint" for e in seen)
