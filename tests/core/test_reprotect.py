"""Re-protect after a failover (protocol/sim/reprotect.py): a new secondary, a fresh
initial migration from the lone survivor, COLO again; invariants across it."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocol.core import faults as fl
from protocol.errors import FaultSpecError
from protocol.record.eventjson import to_json
from protocol.record.replay import rerun
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation
from protocol.sim.reprotect import ReprotectError

FAST = dict(checkpoint_delay_ms=200, arbiter_ms=50.0, client_every_ms=30.0)


def _sim(**kw) -> Simulation:
    return Simulation(SimConfig(**{**FAST, **kw}))


def _commits(sim, side="primary") -> list[int]:
    return [e.payload()["n"] for e in sim.events
            if e.kind == "checkpoint" and e.side == side and e.payload().get("phase") == "commit"]


def _violations(sim) -> list:
    return [v for v in sim.invariants.violations]


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
@pytest.mark.parametrize("guest", ["model", "null"])
@pytest.mark.parametrize("dead", ["primary", "secondary"])
def test_plan_step_reprotects_the_survivor_and_colo_resumes(dialect, mode, guest, dead):
    sim = _sim(dialect=dialect, mode=mode, guest=guest, checkpoints=6,
               divergence=0.05 if mode == "hybrid" and guest == "model" else 0.0,
               faults=[f"kill-{dead}@checkpoint-request#3", "reprotect@failover#1"])
    sim.run()
    assert _violations(sim) == []
    assert sim.outcome() == "ok" and sim.both_in_colo()
    rp = [e for e in sim.events if e.kind == "reprotect"]
    assert len(rp) == 1 and rp[0].payload()["survivor"] == ("secondary" if dead == "primary"
                                                       else "primary")
    base = rp[0].payload()["checkpoint"]
    assert base == 2                       # checkpoint 3 never committed
    # numbering goes on: the new pair's first checkpoint is base + 1, no gap, no repeat
    assert _commits(sim) == list(range(1, sim.eps["primary"].checkpoint + 1))
    assert _commits(sim, "secondary") == list(range(1, sim.eps["secondary"].checkpoint + 1))
    assert sim.eps["primary"].checkpoint >= 6
    after = sim.events[rp[0].seq - sim.events[0].seq:]
    if dialect == "qemu":                 # a whole initial migration on the new link
        assert any(e.kind == "send-initial" and e.side == "primary" for e in after)
        assert any(e.kind == "action" and e.payload().get("name") == "load-initial"
                   for e in after)
    assert any(e.kind == "send" and e.payload()["msg"] == "checkpoint-ready" for e in after)


def test_the_survivor_keeps_its_state_and_the_new_secondary_starts_from_it():
    sim = _sim(guest="model", checkpoints=3, faults=["kill-primary@checkpoint-request#2"])
    sim.run()
    survivor = sim.guests["secondary"]
    before = survivor.digest()
    released = len(survivor.client_log)
    sim.apply_input({"cmd": "reprotect"})
    assert sim.guests["primary"] is survivor and survivor.role == "primary"
    assert sim.guests["secondary"].digest() == before == survivor.digest()
    assert len(sim.guests["primary"].client_log) == released    # the client's history
    assert sim.eps["primary"].last_mode == "secondary"     # QEMU's last-mode stays
    sim.run()
    assert _violations(sim) == [] and sim.outcome() == "ok"


def test_several_reprotects_in_one_run():
    plan = ["kill-primary@checkpoint-request#2", "reprotect@failover#1",
            "kill-secondary@vmstate-send#4", "reprotect@failover#2",
            "kill-primary@load#6", "reprotect@failover#3"]
    sim = _sim(guest="model", checkpoints=8, load_ms=20.0, faults=plan)
    sim.run()
    assert _violations(sim) == []
    assert [e.payload()["generation"] for e in sim.events if e.kind == "reprotect"] == [1, 2, 3]
    assert sim.reprotects == 3 and sim.failovers == 3
    # the primary role moved between hosts: checkpoint 6 was committed by the secondary
    # that finished loading it (relaunch) and then became the primary
    both = sorted(set(_commits(sim)) | set(_commits(sim, "secondary")))
    assert both == list(range(1, sim.eps["primary"].checkpoint + 1))
    for side in ("primary", "secondary"):
        got = _commits(sim, side)
        assert got == sorted(set(got))          # increasing, never repeated
    assert sim.outcome() == "ok" and sim.eps["primary"].checkpoint >= 8


def test_reprotect_then_the_new_secondary_dies_leaves_one_active_vm():
    sim = _sim(guest="model", checkpoints=4,
               faults=["kill-primary@checkpoint-request#2", "reprotect@failover#1",
                       "kill-secondary@checkpoint-reply#3"])
    sim.run()
    assert _violations(sim) == []
    assert sim.outcome() == "failover" and sim.active_sides() == ["primary"]
    assert sim.failovers == 2


def test_refused_without_a_failover_and_nothing_is_recorded():
    sim = _sim(checkpoints=3)
    sim.run(20)
    n = len(sim.events)
    with pytest.raises(ReprotectError, match="no failover has finished yet"):
        sim.apply_input({"cmd": "reprotect"})
    assert sim.inputs == [] and len(sim.events) == n


def test_refused_in_split_brain_and_a_plan_step_says_why():
    sim = _sim(checkpoints=3, faults=["heartbeat-secondary@checkpoint-request#2",
                                      "reprotect@failover#1"])
    sim.run()
    refused = [e for e in sim.events if e.kind == "reprotect-refused"]
    assert refused and "both sides are alive" in refused[0].payload()["why"]
    assert sim.outcome() == "split-brain"
    with pytest.raises(ReprotectError, match="split brain"):
        sim.apply_input({"cmd": "reprotect"})
    # once one side is gone the survivor can be re-protected
    sim.apply_input({"cmd": "kill", "side": "primary"})
    sim.apply_input({"cmd": "reprotect"})
    sim.run()
    assert sim.outcome() == "ok" and _violations(sim) == []


def test_fault_grammar_takes_the_step_only_at_failover():
    f = fl.parse("reprotect@failover#2")
    assert (f.kind, f.point, f.checkpoint) == ("reprotect", "failover", 2)
    assert "reprotect" in fl.KINDS and "reprotect" not in fl.PROCESS_KINDS
    for bad in ("reprotect@checkpoint-request", "drop@failover", "kill-primary@failover#1"):
        with pytest.raises(FaultSpecError, match="reprotect@failover#N"):
            fl.parse(bad)


def test_a_reprotect_step_does_not_stretch_the_session_target():
    assert _sim(checkpoints=3, faults=["reprotect@failover#9"]).target == 3


def test_the_consistency_invariant_watches_the_new_secondary(monkeypatch):
    """A new secondary that is not the survivor's state is caught: at the initial
    migration (qemu) and, in every dialect, after the next checkpoint."""
    from protocol.guest import model

    orig = model.Guest.new_secondary

    def wrong(self, output_lost=False):
        twin = orig(self, output_lost)
        page = bytes([0xA5]) * 4096
        twin.ram.write(twin.main_block, 0x7000, page)        # a page the PVM never had
        twin.ram.clear_dirty()
        return twin
    monkeypatch.setattr(model.Guest, "new_secondary", wrong)
    for dialect, when in (("qemu", "initial migration"), ("v11", "after checkpoint")):
        sim = _sim(dialect=dialect, guest="model", checkpoints=4, workload="idle",
                   faults=["kill-primary@checkpoint-request#2", "reprotect@failover#1"])
        sim.run()
        v = sim.invariants.violations
        assert v and v[0]["invariant"] == "consistency", (dialect, v)
        assert when in v[0]["text"], v[0]["text"]


def test_the_numbering_invariant_holds_across_reprotect(monkeypatch):
    """New endpoints that restarted their count (or skipped one) would be caught."""
    # new endpoints whose machines take the carried-over count 2 as 3
    from protocol.core.endpoint import Endpoint
    from protocol.sim import reprotect as rp
    skipping = type("Skip", (Endpoint,), {
        "checkpoint": property(lambda s: s.machine.checkpoint,
                               lambda s, v: setattr(s.machine, "checkpoint", v + (v == 2)))})
    monkeypatch.setattr(rp, "make_endpoint", skipping)
    sim = _sim(checkpoints=5, faults=["kill-primary@checkpoint-request#3",
                                      "reprotect@failover#1"])
    sim.run()
    assert [v["invariant"] for v in sim.invariants.violations] == ["monotonic_checkpoints"]


def test_a_recording_with_a_reprotect_input_replays_identically(tmp_path):
    sim = _sim(guest="model", checkpoints=3, faults=["kill-secondary@checkpoint-request#2"])
    sim.run()
    sim.apply_input({"cmd": "reprotect"})
    sim.run()
    again = rerun(config=sim.cfg, inputs=sim.inputs)
    assert [to_json(e) for e in again.events] == [to_json(e) for e in sim.events]
    from protocol.record import format as rf
    path = tmp_path / "rp.colo.jsonl"
    rf.write(path, rf.make_header(sim.cfg), sim.events, sim.inputs, [])
    assert rf.read(str(path)).inputs[0]["cmd"] == "reprotect"


# -- the property: random failover + re-protect sequences keep every invariant ------------
# The operator's sides die or stop and the arbiter fails over (COLO's premise holds);
# an x-colo-lost-heartbeat given to a side whose peer lives breaks the premise (split
# brain, DESIGN.md §5.4), whose consequences are not re-protect's to check.
ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("run"), st.integers(1, 40)),
    st.tuples(st.sampled_from(["kill", "stall"]),
              st.sampled_from(["primary", "secondary"])),
    st.tuples(st.just("failover"), st.sampled_from(["primary", "secondary"])),
    st.tuples(st.just("reprotect"), st.none()),
), min_size=1, max_size=14)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, dialect=st.sampled_from(["qemu", "v11", "prototype"]),
       mode=st.sampled_from(["periodic", "hybrid"]), seed=st.integers(1, 1000),
       xbzrle=st.booleans())
def test_random_failover_and_reprotect_sequences_keep_the_invariants(actions, dialect, mode,
                                                                    seed, xbzrle):
    from protocol.sim.reprotect import why_not
    sim = _sim(dialect=dialect, mode=mode, seed=seed, guest="model", checkpoints=3,
               xbzrle=xbzrle, divergence=0.05 if mode == "hybrid" else 0.0,
               stop_on_violation=True)
    for cmd, arg in actions:
        if cmd == "run":
            for _ in range(arg):
                if sim.finished:
                    break
                sim.step()
        elif cmd == "reprotect":
            problem = why_not(sim)
            if problem is None:
                base = max(sim.eps[s].checkpoint for s in ("primary", "secondary")
                           if sim.alive[s])
                event("re-protected")
                sim.apply_input({"cmd": "reprotect"})
                assert sim.both_in_colo() is False           # starting: not yet in COLO
                assert sim.run_until(lambda s, b=base: s.eps["primary"].checkpoint > b
                                     or s.finished, max_steps=5000)
                if not sim.invariants.violations and sim.both_in_colo():
                    assert sim.eps["primary"].checkpoint in (base, base + 1)
            else:
                event("re-protect refused")
                with pytest.raises(ReprotectError):
                    sim.apply_input({"cmd": "reprotect"})
        elif cmd == "failover":             # kill a side, let the arbiter fail over
            sim.apply_input({"cmd": "kill", "side": arg})
            n = sim.failovers
            sim.run_until(lambda s, k=n: s.failovers > k, max_steps=5000)
        else:
            sim.apply_input({"cmd": cmd, "side": arg})
        assert sim.invariants.violations == [], sim.invariants.violations
    sim.run(20_000)
    assert sim.invariants.violations == [], sim.invariants.violations
    # one active VM: a run that ended outside COLO without a broken premise has one
    if sim.finished and not sim.both_in_colo() and not sim.premise_broken:
        assert len(sim.active_sides()) <= 1


def test_a_proxy_between_running_peers_refuses_the_step():
    from protocol.core.dialects import QEMU
    from protocol.core.proxymachine import check_faults
    with pytest.raises(FaultSpecError, match="a proxy between two running peers cannot"):
        check_faults(["reprotect@failover#1"], QEMU, process=True)


def test_the_swarm_counts_the_new_pairs_machines_and_runs_its_steps():
    from protocol.sim import swarm
    cfg = SimConfig(**FAST, checkpoints=4, faults=["kill-primary@checkpoint-request#2",
                                                   "reprotect@failover#1"])
    result = swarm.run_config(cfg)
    assert result["outcome"] == "ok" and not result["violations"] and not result["hang"]
    assert result["pairs"]["secondary:INIT:start"] == 2         # the first and the new one
    assert result["faults_hit"]["failover:reprotect"] == 1
    drawn = [swarm.draw(s) for s in range(1, 300)]
    with_steps = [c for c in drawn if any(f.startswith("reprotect@") for f in c.faults)]
    assert with_steps and all(
        any(f.startswith(("kill-", "stall-", "heartbeat-")) for f in c.faults)
        for c in with_steps)
