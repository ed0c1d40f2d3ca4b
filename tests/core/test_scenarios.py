"""PROTOCOL.md §15 scenarios that need no RAM or packets, in the simulator."""
import pytest

from protocol.record.eventjson import to_json
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation


def run(**kw):
    kw.setdefault("checkpoint_delay_ms", 1000)
    sim = Simulation(SimConfig(**kw))
    sim.run()
    assert sim.finished and not sim.hung, sim.hung
    return sim


def errors(sim, side=None):
    return [e.payload()["message"] for e in sim.events if e.kind == "error"
            and (side is None or e.side == side)]


def exits(sim):
    return [(e.side, e.payload()["reason"]) for e in sim.events if e.kind == "colo-exit"]


def wire(sim):
    return [(e.side[0].upper(), e.payload()["msg"]) for e in sim.events if e.kind == "send"]


@pytest.mark.parametrize("dialect", ["qemu", "v11", "prototype"])
@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
def test_1_2_happy_path_message_order(dialect, mode):
    sim = run(dialect=dialect, mode=mode, checkpoints=2)
    assert sim.outcome() == "ok"
    one = [("P", "checkpoint-request"), ("S", "checkpoint-reply"), ("P", "vmstate-send"),
           ("P", "vmstate-size"), ("S", "vmstate-received"), ("S", "vmstate-loaded")]
    assert wire(sim) == [("S", "checkpoint-ready")] + one + one
    sec = sim.eps["secondary"]
    assert sec.query_colo_status() == {"mode": "secondary", "last-mode": "none", "reason": "none"}
    assert sec.run_state == ("running" if mode == "hybrid" else "paused")
    assert all(sim.invariants.ok.values())


def test_2_checkpoints_are_delay_apart_start_to_start():
    sim = run(checkpoints=3, checkpoint_delay_ms=1500)
    starts = [e.t_ms for e in sim.events if e.kind == "checkpoint" and e.side == "primary"
              and e.payload()["phase"] == "begin"]
    ready = next(e.t_ms for e in sim.events if e.kind == "recv"
                 and e.payload()["msg"] == "checkpoint-ready")
    assert starts[0] == pytest.approx(ready + 1500)
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)] == [1500, 1500]


def test_qemu_releases_output_after_received_v11_after_loaded():
    for dialect, after in (("qemu", "vmstate-received"), ("v11", "vmstate-loaded")):
        sim = run(dialect=dialect, checkpoints=1)
        kinds = [(e.kind, e.payload().get("msg") or e.payload().get("name")) for e in sim.events
                 if e.side == "primary"]
        i = kinds.index(("action", "release-output"))
        assert kinds[i - 1] == ("recv", after)


def test_5_changing_the_delay_checkpoints_now_and_rearms():
    sim = Simulation(SimConfig(checkpoint_delay_ms=5000, checkpoints=3))
    sim.run_until(lambda s: s.eps["primary"].state == "IDLE")
    t0 = sim.now
    sim.apply_input({"cmd": "set-delay", "value": 700})
    sim.run()
    begins = [e for e in sim.events if e.kind == "checkpoint" and e.side == "primary"
              and e.payload()["phase"] == "begin"]
    assert begins[0].t_ms == pytest.approx(t0)
    assert begins[0].payload()["reason"] == "x-checkpoint-delay changed"
    assert begins[1].t_ms - begins[0].t_ms == pytest.approx(700)


@pytest.mark.parametrize("p,s,text", [
    ("qemu", "v11", "Unexpected COLO message 1, expected 0"),
    ("v11", "qemu", "Unexpect colo command, expect:1, but got cmd:0"),
    ("qemu", "prototype", "Invalid message 70"),
])
def test_6_dialect_mismatch_is_diagnosed(p, s, text):
    sim = run(dialect=p, secondary_dialect=s)
    err = errors(sim, "primary")[0]
    assert text in err and "is the peer speaking" in err
    assert ("primary", "error") in exits(sim)


@pytest.mark.parametrize("dialect,text", [("qemu", "Invalid message 7"),
                                          ("v11", "Invalid colo command, got cmd:9")])
def test_7_out_of_range_opcode(dialect, text):
    bad = {"qemu": 7, "v11": 9}[dialect]
    sim = run(dialect=dialect, faults=[f"opcode={bad}@checkpoint-reply#1"])
    assert text in errors(sim, "primary")[0]
    assert ("primary", "error") in exits(sim)
    assert sim.outcome() == "failover"             # the manager keeps the primary


def test_8_out_of_order_message():
    sim = run(faults=["unexpected=vmstate-size@vmstate-send#1"])
    err = errors(sim, "secondary")[0]
    assert "Unexpected COLO message 4, expected 3" in err
    assert "vmstate-size(4)" in err and "vmstate-send(3)" in err


def test_9_v11_idle_wait_refuses_a_nonzero_value():
    sim = run(dialect="v11", faults=["value=5@checkpoint-request#1"])
    assert "Got unexpected value 5 for 'checkpoint-request' command" in errors(sim, "secondary")[0]


def test_10_truncated_device_blob():
    sim = run(faults=["truncate@device-state#1"])
    err = errors(sim, "secondary")[0]
    assert "less than expected" in err
    sec = sim.eps["secondary"]
    assert sec.checkpoint == 0          # cache not flushed; nothing committed
    assert sim.outcome() == "failover"


def test_11_primary_dies_while_ram_streams():
    sim = run(faults=["kill-primary@ram#2"])
    sec = sim.eps["secondary"]
    assert ("secondary", "error") in exits(sim)
    assert sec.query_colo_status() == {"mode": "none", "last-mode": "secondary",
                                       "reason": "request"}
    assert sec.checkpoint == 1 and sim.outcome() == "failover"
    discarded = [e for e in sim.events if e.kind == "action"
                 and e.payload().get("name") == "discard-cache"]
    assert discarded


def test_11_v11_secondary_exits_by_default_without_an_operator():
    sim = run(dialect="v11", faults=["kill-primary@ram#2"], arbiter=False)
    assert any(e.kind == "default-failover" and e.side == "secondary" for e in sim.events)
    assert sim.eps["secondary"].run_state == "shutdown"
    assert sim.outcome() == "error"          # nobody runs: the v11 default assumes a live PVM


def test_12_failover_during_load_relaunches():
    sim = run(load_ms=3000, faults=["kill-primary@vmstate-received#1"], arbiter_ms=500)
    fo = [(e.payload()["from"], e.payload()["to"]) for e in sim.events
          if e.kind == "failover" and e.side == "secondary"]
    assert fo == [("none", "require"), ("require", "active"), ("active", "relaunch"),
                  ("relaunch", "none"), ("none", "require"), ("require", "active"),
                  ("active", "completed")]
    sec = sim.eps["secondary"]
    assert sec.checkpoint == 1                       # the full new checkpoint was applied
    assert not any(e.kind == "send" and e.side == "secondary"
                   and e.payload()["msg"] == "vmstate-loaded" for e in sim.events)


def test_13_secondary_dies_primary_carries_on():
    sim = run(faults=["kill-secondary@checkpoint-reply#2"])
    prim = sim.eps["primary"]
    assert prim.query_colo_status() == {"mode": "none", "last-mode": "primary",
                                        "reason": "request"}
    assert prim.run_state == "running" and sim.outcome() == "failover"


def test_13_faithful_primary_colo_exit_says_error_strict_says_request():
    faithful = run(faults=["heartbeat-primary@checkpoint-request#2"])
    strict = run(faults=["heartbeat-primary@checkpoint-request#2"], faithful=False)
    assert ("primary", "error") in exits(faithful)
    assert ("primary", "request") in exits(strict)


def test_14_half_open_peer_hangs_without_a_manager():
    sim = Simulation(SimConfig(checkpoint_delay_ms=1000, faults=["stall-secondary@checkpoint-request#1"],
                               arbiter=False))
    sim.run()
    assert sim.hung and "B13" in sim.hung
    assert not sim.invariants.ok["termination"]


def test_14_with_the_manager_the_silent_side_is_fenced():
    sim = run(faults=["stall-secondary@checkpoint-request#1"])
    assert any(e.kind == "fence" for e in sim.events)
    assert sim.outcome() == "failover"


def test_14_split_brain_when_both_sides_are_told():
    sim = run(mode="hybrid", faults=["heartbeat-secondary@checkpoint-request#2"])
    assert sim.outcome() == "split-brain" and sim.premise_broken
    assert all(sim.invariants.ok.values())


def test_run1_hb_secondary_primary_notices_at_its_next_checkpoint():
    sim = Simulation(SimConfig(mode="hybrid", checkpoints=5, checkpoint_delay_ms=1000))
    sim.run_until(lambda s: s.eps["primary"].checkpoint == 2 and s.eps["primary"].state == "IDLE")
    sim.apply_input({"cmd": "lost-heartbeat", "side": "secondary"})
    sim.run()
    prim_err = [e for e in sim.events if e.kind == "error" and e.side == "primary"][0]
    sec_exit = [e for e in sim.events if e.kind == "colo-exit" and e.side == "secondary"][0]
    assert sec_exit.payload()["reason"] == "request"
    assert prim_err.t_ms - sec_exit.t_ms == pytest.approx(1000, abs=1)   # next timer tick
    assert sim.eps["primary"].query_colo_status()["mode"] == "primary"   # stays colo


def test_15_duplicate_failover_request():
    sim = Simulation(SimConfig(checkpoint_delay_ms=1000))
    sim.run_until(lambda s: s.eps["secondary"].state == "IDLE")
    sim.apply_input({"cmd": "lost-heartbeat", "side": "secondary"})
    sim.apply_input({"cmd": "lost-heartbeat", "side": "secondary"})
    errs = [e.payload()["error"] for e in sim.events if e.kind == "qmp-error"]
    assert errs == ["The feature 'colo' is not enabled"]


def test_16_failover_racing_the_checkpoint_start():
    sim = run(faults=["heartbeat-primary@checkpoint-reply#1"])
    sent = wire(sim)
    assert ("P", "vmstate-send") not in sent


@pytest.mark.parametrize("dialect", ["v11", "qemu"])
def test_17_guest_shutdown(dialect):
    sim = run(dialect=dialect, faults=["shutdown@vmstate-loaded#1"], checkpoints=3)
    if dialect == "v11":
        assert ("P", "guest-shutdown") in wire(sim)
        assert sim.eps["secondary"].run_state == "shutdown"
        assert sim.eps["primary"].run_state == "shutdown"
    else:
        assert ("P", "guest-shutdown") not in wire(sim)
        assert ("secondary", "error") in exits(sim)     # it sees EOF


def test_every_run_is_deterministic():
    cfg = dict(mode="hybrid", seed=42, faults=["corrupt@vmstate-size#2", "delay=3@ram#1"])
    a, b = run(**cfg), run(**cfg)
    assert [to_json(e) for e in a.events] == [to_json(e) for e in b.events]


def reports(sim, side="primary"):
    return [e.payload()["message"] for e in sim.events if e.kind == "error-report"
            and e.side == side]


@pytest.mark.parametrize("fault", ["truncate@device-state#1", "close@device-state#1"])
def test_faithful_failed_receive_sends_one_lone_checkpoint_request(fault):
    """QEMU 7.2 (colo_do_checkpoint_transaction returns 0 after a failed receive):
    "Can't receive COLO message" twice, and a lone checkpoint-request ~47 ms later."""
    sim = run(faults=[fault])
    sends = [(e.t_ms, e.payload()["msg"]) for e in sim.events
             if e.kind == "send" and e.side == "primary"]
    assert [msg for _t, msg in sends][-3:] == ["vmstate-send", "vmstate-size",
                                               "checkpoint-request"]
    report = [e.t_ms for e in sim.events if e.kind == "error-report"]
    assert len(report) == 1 and sends[-1][0] - report[0] == pytest.approx(47.0)
    logged = reports(sim) + errors(sim, "primary")
    assert len(logged) == 2 and all("Can't receive COLO message" in m for m in logged)
    assert exits(sim).count(("primary", "error")) == 1
    assert sim.outcome() == "failover"


@pytest.mark.parametrize("fault", ["truncate@device-state#1", "close@device-state#1"])
def test_strict_failed_receive_stops_at_vmstate_size(fault):
    sim = run(faults=[fault], faithful=False)
    assert wire(sim)[-2:] == [("P", "vmstate-send"), ("P", "vmstate-size")]
    assert reports(sim) == [] and len(errors(sim, "primary")) == 1
    assert sim.outcome() == "failover"


def test_cli_run_strict_turns_the_lone_request_off():
    import json
    import subprocess
    import sys
    tails = {}
    for flag in ([], ["--strict"]):
        r = subprocess.run([sys.executable, "-m", "colo_tui", "run", "--fault",
                            "close@device-state#1", "--json", *flag],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        tails[bool(flag)] = [w["msg"] for w in json.loads(r.stdout)["wire"][-2:]]
    assert tails[False] == ["vmstate-size", "checkpoint-request"]
    assert tails[True] == ["vmstate-send", "vmstate-size"]
