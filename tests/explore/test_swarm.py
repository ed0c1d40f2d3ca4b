"""The swarm: what a seed draws, determinism across workers, liveness, the CLI."""
import json
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import faults as fl
from protocol.sim import runner, swarm
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

EXAMPLES = int(os.environ.get("COLO_FUZZ_EXAMPLES", 60))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(st.integers(0, 2**40))
def test_a_seed_draws_a_valid_world_and_always_the_same(seed):
    cfg = swarm.draw(seed)
    assert cfg == swarm.draw(seed)
    sim = Simulation(cfg, keep_events=False)        # every fault valid for its dialect
    step = swarm._step_ms(cfg.workload, cfg.rate)
    assert cfg.checkpoint_delay_ms % step != 0
    faults = [f for f in sim.faults if f.kind not in fl.STEP_KINDS]
    assert len(faults) <= swarm.MAX_FAULTS
    steps = [f for f in sim.faults if f.kind in fl.STEP_KINDS]
    # re-protect steps only follow a side fault, one per failover that may come
    assert len(steps) <= min(2, sum(f.kind in fl.PROCESS_KINDS for f in faults))
    for f in sim.faults:
        if f.kind in ("delay", "partition"):
            assert int(f.arg) >= step               # at least one workload step long
    if not cfg.arbiter:
        assert not any(f.kind.startswith("stall-") for f in sim.faults)


def test_the_draws_cover_the_worlds_the_issue_names():
    cfgs = [swarm.draw(s) for s in range(1, 2001)]
    assert {c.dialect for c in cfgs} == set(swarm.DIALECTS)
    assert {c.mode for c in cfgs} == {"periodic", "hybrid"}
    assert any(c.ram_mib * 2**20 > 4 * 2**30 and c.guest == "model" for c in cfgs)
    assert any(c.xbzrle for c in cfgs) and any(not c.xbzrle for c in cfgs)
    assert any(c.jitter_ms > 0 for c in cfgs)
    assert any(c.checkpoint_delay_ms and c.load_ms > c.checkpoint_delay_ms for c in cfgs)
    assert any(c.arbiter and c.arbiter_ms > 2000 for c in cfgs)
    assert any(not c.arbiter for c in cfgs)
    assert any(c.checkpoints > 300 for c in cfgs)
    assert any(c.client_every_ms == 0 for c in cfgs) and any(c.divergence > 0 for c in cfgs)
    counts = {len([f for f in c.faults if not f.startswith("reprotect@")]) for c in cfgs}
    assert counts == set(range(0, swarm.MAX_FAULTS + 1))
    points = {fl.parse(s).point for c in cfgs for s in c.faults}
    assert "load" in points and "device-state" in points
    assert "failover" in points            # plan steps: re-protect after a failover
    # the migration link: mostly the default LAN, else slow or distant ones
    default = SimConfig()
    lats = {c.latency_ms for c in cfgs}
    assert lats == {default.latency_ms, *swarm.LINK_LATENCY_MS}
    rates = {c.bytes_per_ms for c in cfgs}
    assert rates == {default.bytes_per_ms, *swarm.LINK_BYTES_PER_MS}
    share = sum(c.latency_ms != default.latency_ms for c in cfgs) / len(cfgs)
    assert 0.25 < share < 0.45
    # a slow link only for small guests (a sparse 4.6 GiB one would take minutes)
    assert all(c.ram_mib <= max(swarm.SMALL_RAM_MIB) for c in cfgs
               if c.bytes_per_ms != default.bytes_per_ms)


def test_a_slow_distant_link_is_not_a_hang(monkeypatch):
    """On a 100 Mbit/s link 30 ms away, a checkpoint of a busy guest takes longer
    than its checkpoint delay and the arbiter's timeout: the simulated manager's
    watchdog allows for the link (`link_slack_ms`), so no failover, no hang.
    Without that allowance this world is a false hang."""
    import protocol.sim.core as simcore

    def world():
        cfg = SimConfig(guest="model", ram_mib=16, workload="uniform", checkpoint_delay_ms=31,
                        checkpoints=8, latency_ms=30.0, bytes_per_ms=1.25e4, arbiter=True,
                        arbiter_ms=20.0, seed=3)
        sim = Simulation(cfg, keep_events=False)
        sim.run()
        return sim
    sim = world()
    assert swarm.liveness(sim) is None and not sim._watchdog_fired
    assert sim.outcome() == "ok" and sim.eps["primary"].checkpoint == 8
    monkeypatch.setattr(simcore, "link_slack_ms", lambda cfg: 0.0)
    blind = world()
    assert blind._watchdog_fired and swarm.liveness(blind) is not None


def test_a_big_sparse_guest_writes_above_4_gib():
    seed = next(s for s in range(1, 5000) if swarm.draw(s).ram_mib > 4096
                and swarm.draw(s).guest == "model" and swarm.draw(s).workload == "uniform")
    cfg = swarm.draw(seed)
    sim = Simulation(cfg, keep_events=False)
    sim.run_until(lambda s: s.eps["primary"].checkpoint >= 1, max_steps=100_000)
    ram = sim.guests["primary"].ram.blocks["pc.ram"]
    above = ram.touched.index_array()
    assert (above * 4096 >= 4 << 30).any()


def test_same_seeds_same_results_on_one_or_two_workers():
    one = runner.run(range(40, 64), workers=1)
    two = runner.run(range(40, 64), workers=2)
    assert one["results"] == two["results"]
    for key in ("seeds", "checkpoints", "violations", "hangs", "outcomes", "coverage"):
        assert one[key] == two[key]


def test_a_checkpointing_that_stops_is_reported_as_a_hang(monkeypatch):
    """Liveness: the primary stops arming its checkpoint timer after checkpoint 2, no
    fault is involved: the manager's watchdog fences, and the swarm calls it a hang."""
    from protocol.core import primary as prim
    orig = prim.PrimaryMachine.set_timer

    def set_timer(self, name, at):
        if name == "checkpoint" and self.checkpoint >= 2:
            return
        orig(self, name, at)
    monkeypatch.setattr(prim.PrimaryMachine, "set_timer", set_timer)
    seed = next(s for s in range(1, 200) if not swarm.draw(s).faults
                and swarm.draw(s).arbiter and swarm.draw(s).checkpoints > 3)
    result = swarm.run_seed(seed)
    assert swarm.failure_of(result) == "hang", result
    assert "watchdog" in result["hang"]


def test_coverage_counts_state_input_pairs_and_faults():
    report = runner.run(range(1, 30), workers=1)
    pairs = report["coverage"]["state_input"]
    assert "primary:WAIT_REPLY:checkpoint-reply" in pairs
    assert "secondary:IDLE:checkpoint-request" in pairs
    assert report["coverage"]["faults"]
    assert all(":" in k for k in report["coverage"]["faults"])
    assert report["checkpoints"] == sum(r["checkpoints"] for r in report["results"])


def test_a_time_budget_stops_early():
    report = runner.run(range(1, 10_000), workers=1, time_budget_s=0.5)
    assert report["budget_stopped"] and 0 < report["seeds"] < 9_999


def test_explore_swarm_200_smoke(tmp_path):
    """`colo explore --swarm 200`: 0 violations, 0 hangs on the code as it is."""
    r = subprocess.run([sys.executable, "-m", "colo_tui", "explore", "--swarm", "200",
                        "--workers", "2", "--json", "--repro-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["seeds"] == 200 and out["violations"] == 0 and out["hangs"] == 0
    assert out["crashes"] == 0 and out["checkpoints"] > 200
    assert sum(out["outcomes"].values()) == 200 and out["shrunk"] == []


def test_explore_swarm_usage_errors_exit_2():
    for args in (["--swarm", "0"], ["--swarm", "5", "--matrix"],
                 ["--swarm", "5", "--workers", "0"], ["--swarm", "x"],
                 ["--swarm", "5", "--time-budget", "0"]):
        r = subprocess.run([sys.executable, "-m", "colo_tui", "explore", *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.strip()
