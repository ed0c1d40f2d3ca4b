"""The sans-IO proxy machine: any chunking gives the same bytes and events, and a
fault plan does to the wire what it does in the simulator."""
from __future__ import annotations

import functools
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol.core import dialects
from protocol.core import faults as fl
from protocol.core.proxymachine import (
    MAX_HELD,
    P2S,
    S2P,
    Close,
    Forward,
    Hold,
    Partition,
    ProxyMachine,
    check_faults,
)
from protocol.errors import FaultSpecError
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation

DIALECTS = ("qemu", "v11", "prototype")


def _dir(side: str) -> str:
    return P2S if side == "primary" else S2P


def sim_trace(cfg: SimConfig):
    """Run the simulator; every piece its endpoints sent (before any fault), in order."""
    sim = Simulation(cfg)
    trace: list[tuple[str, bytes]] = []
    send, flush = sim._send, sim._flush

    def _send(side, seg):
        trace.append((_dir(side), bytes(seg.data)))
        return send(side, seg)

    def _flush(side, batch):
        trace.extend((_dir(side), bytes(g.data)) for g in batch)
        return flush(side, batch)

    sim._send, sim._flush = _send, _flush
    sim.run()
    return sim, trace


@functools.cache
def clean_trace(dialect: str, guest: str = "null", checkpoints: int = 3):
    return tuple(sim_trace(SimConfig(dialect=dialect, guest=guest, checkpoints=checkpoints,
                                     seed=3))[1])


def chunked(trace, cuts) -> list[tuple[str, bytes]]:
    """The trace's bytes, consecutive pieces of one direction joined, then cut at
    the global offsets ``cuts``: the same stream, split elsewhere."""
    runs: list[list] = []
    for direction, data in trace:
        if runs and runs[-1][0] == direction:
            runs[-1][1] += data
        else:
            runs.append([direction, bytearray(data)])
    out, at = [], 0
    cuts = sorted(cuts)
    for direction, data in runs:
        start = 0
        for c in cuts:
            if at < c < at + len(data):
                out.append((direction, bytes(data[start:c - at])))
                start = c - at
        out.append((direction, bytes(data[start:])))
        at += len(data)
    return out


class Run:
    """A machine fed a chunk list; what it forwarded and said."""

    def __init__(self, dialect, faults, chunks, *, seed=1, process=True) -> None:
        self.events: list[tuple] = []
        self.actions: list = []
        self.pm = pm = ProxyMachine(dialect, faults, rng=random.Random(seed),
                                    emit=lambda side, kind, **f: self.events.append(
                                        (side, kind, f)),
                                    process_faults=process)
        self.out = {P2S: bytearray(), S2P: bytearray()}
        for direction, data in chunks:
            self._take(pm.feed(direction, data))
        for direction in (P2S, S2P):
            self._take(pm.eof(direction))

    def _take(self, acts) -> None:
        for a in acts:
            self.actions.append(a)
            if type(a) is Forward:
                self.out[a.direction] += a.data

    def shape(self):
        """Everything but the Forward boundaries (they follow the chunking)."""
        return ({k: bytes(v) for k, v in self.out.items()}, self.events,
                [a for a in self.actions if type(a) is not Forward])


# ----------------------------------------------------------------- transparency
@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_fault_forwards_every_byte_and_decodes_every_message(dialect):
    sim, trace = sim_trace(SimConfig(dialect=dialect, checkpoints=3, seed=3))
    run = Run(dialect, [], trace)
    assert run.out[P2S] == sim.link.wire[P2S] and run.out[S2P] == sim.link.wire[S2P]
    kinds = [k for _, k, _ in run.events]
    assert "error" not in kinds
    commits = [f["n"] for _, k, f in run.events if k == "checkpoint" and f["phase"] == "commit"]
    assert commits == [1, 2, 3]
    sends = [(f["dir"], f["msg"]) for _, k, f in run.events if k == "send"]
    want = [(_dir(ev.side), ev.payload()["msg"]) for ev in sim.events if ev.kind == "send"]
    assert sends == want


def test_qemu_model_guest_stream_is_decoded_with_pages_and_sections():
    trace = clean_trace("qemu", "model")
    run = Run("qemu", [], trace)
    ini = next(f for _, k, f in run.events if k == "recv-initial")
    assert ini["bytes"] > 0 and ini["device_sections"] > 0 and ini["mem_size"] >= 16 << 20
    rams = [f for _, k, f in run.events if k == "ram"]
    assert len(rams) == 3 and sum(r["full"] for r in rams) > 100
    assert all(r["pages"] == r["zero"] + r["full"] + r["xbzrle"]
                                  for r in rams)
    assert all(sum(r["blocks"].values()) == r["pages"] for r in rams)
    dev = [f for _, k, f in run.events if k == "device-state"]
    assert all(d["sections"] for d in dev)
    assert bytes(run.out[P2S]) == b"".join(d for k, d in trace if k == P2S)


PLANS = [[], ["corrupt@ram#2"], ["truncate@device-state#1"], ["duplicate@ram#1"],
         ["delay=5@vmstate-send#2", "drop@checkpoint-reply#3"], ["truncate@ram#2"],
         ["corrupt@device-state#3", "value=9@vmstate-size#2"], ["drop@ram#1"],
         ["reset@vmstate-received#2"], ["duplicate@device-state#2", "corrupt@ram#3"]]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: "+".join(p) or "none")
def test_split_at_every_boundary_changes_nothing(plan):
    trace = clean_trace("qemu")
    whole = Run("qemu", plan, trace).shape()
    total = sum(len(d) for _, d in trace)
    for cut in range(1, total):
        assert Run("qemu", plan, chunked(trace, [cut])).shape() == whole, cut


@pytest.mark.parametrize("dialect", ["v11", "prototype"])
def test_split_at_every_boundary_other_dialects(dialect):
    plan = ["corrupt@vmstate-send#2", "truncate@device-state#3"]
    trace = clean_trace(dialect)
    whole = Run(dialect, plan, trace).shape()
    for cut in range(1, sum(len(d) for _, d in trace)):
        assert Run(dialect, plan, chunked(trace, [cut])).shape() == whole, cut


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dialect=st.sampled_from(DIALECTS), plan=st.sampled_from(PLANS), data=st.data())
def test_any_chunking_gives_the_same_bytes_events_and_actions(dialect, plan, data):
    d = dialects.get(dialect)
    plan = [p for p in plan if _carried(p, d)]
    trace = clean_trace(dialect)
    total = sum(len(x) for _, x in trace)
    cuts = data.draw(st.sets(st.integers(1, total - 1), max_size=total // 2))
    assert Run(dialect, plan, chunked(trace, cuts)).shape() == \
        Run(dialect, plan, trace).shape()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.sampled_from(PLANS), data=st.data())
def test_any_chunking_of_a_guest_sized_stream(plan, data):
    trace = clean_trace("qemu", "model")
    total = sum(len(x) for _, x in trace)
    cuts = data.draw(st.sets(st.integers(1, total - 1), min_size=1, max_size=300))
    assert Run("qemu", plan, chunked(trace, cuts)).shape() == \
        Run("qemu", plan, trace).shape()


def _carried(spec: str, dialect) -> bool:
    try:
        fl.check_fault(fl.parse(spec), dialect)
    except FaultSpecError:
        return False
    return True


# ------------------------------------------------------ the simulator's meaning
LINK_KINDS = ("drop", "delay=20", "corrupt", "truncate", "duplicate", "close", "reset",
              "unexpected=checkpoint-reply", "value=7", "opcode=99")
PROCESS_KINDS = ("partition=30", "kill-primary", "kill-secondary", "stall-primary",
                 "stall-secondary")


def _sim_link_faults(sim):
    # (the simulator numbers the pieces before the first checkpoint 0, the proxy 1:
    # both fire faults #1 there)
    return [(ev.payload()["spec"], ev.payload()["dir"], ev.payload()["point"], max(ev.payload()["n"], 1))
            for ev in sim.events if ev.side == "link" and ev.kind == "fault"]


def _check_equivalent(dialect: str, spec: str, guest: str = "null") -> None:
    d = dialects.get(dialect)
    try:
        f = fl.parse(spec)
        fl.check_fault(f, d)
    except FaultSpecError:
        assume(False)
        return
    sim, trace = sim_trace(SimConfig(dialect=dialect, checkpoints=4, seed=5, faults=[spec],
                                     guest=guest))
    run = Run(dialect, [spec], trace, seed=5)
    # the same bytes reach each side
    assert bytes(run.out[P2S]) == bytes(sim.link.wire[P2S]), spec
    assert bytes(run.out[S2P]) == bytes(sim.link.wire[S2P]), spec
    # the same fault fired at the same piece
    mine = [(e["spec"], e["dir"], e["point"], e["n"]) for _, k, e in run.events
            if k == "fault"]
    if f.is_link:
        assert mine == _sim_link_faults(sim), spec
    else:
        fired = [ev.payload()["spec"] for ev in sim.events if ev.kind == "fault"
                 and ev.side == "sim"]
        assert [s for s, *_ in mine] == fired, spec
    # the connection ends where the simulator's does (close/reset/truncate)
    closes = [a for a in run.actions if type(a) is Close]
    sim_closed = any(ev.side == "link" and ev.kind in ("closing", "closed")
                     and "fault" in ev.payload().get("why", "") for ev in sim.events)
    assert bool(closes) == sim_closed, spec
    if closes:
        assert closes[0].reset == (f.kind == "reset")
    if f.kind.startswith("delay") and mine:
        assert Hold(mine[0][1], float(f.arg)) in run.actions
    if f.kind == "partition" and mine:
        assert Partition(float(f.arg)) in run.actions


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dialect=st.sampled_from(DIALECTS), kind=st.sampled_from(LINK_KINDS + PROCESS_KINDS),
       point=st.sampled_from(fl.POINTS), n=st.integers(1, 3))
def test_a_fault_does_what_it_does_in_the_simulator(dialect, kind, point, n):
    _check_equivalent(dialect, f"{kind}@{point}#{n}")


@pytest.mark.parametrize("spec", [
    "corrupt@checkpoint-reply#2", "truncate@ram#1", "truncate@device-state#2",
    "duplicate@ram#2", "drop@vmstate-loaded#1", "close@vmstate-send#2",
    "reset@device-state#1", "corrupt@ram#3", "kill-secondary@load#2",
    "stall-primary@vmstate-size#2", "partition=40@checkpoint-request#2",
    "value=123@vmstate-size#1", "opcode=4096@checkpoint-ready#1"])
@pytest.mark.parametrize("guest", ["null", "model"])
def test_named_faults_match_the_simulator(spec, guest):
    _check_equivalent("qemu", spec, guest)


# ---------------------------------------------------------------- the details
def test_a_dead_sender_writes_nothing_more():
    trace = clean_trace("qemu")
    run = Run("qemu", ["kill-primary@vmstate-send#2"], trace)
    assert [type(a).__name__ for a in run.actions if type(a) is not Forward] == \
        ["ProcessFault"]
    lost = [e for _, k, e in run.events if k == "lost"]
    assert lost and lost[0]["point"] == "vmstate-send" and lost[0]["n"] == 2
    assert run.pm.info(P2S)["state"] == "black" and run.pm.info(P2S)["discarded"] > 0
    sent = b"".join(d for k, d in trace if k == P2S)
    assert sent.startswith(bytes(run.out[P2S])) and len(run.out[P2S]) < len(sent)


def test_garbage_is_reported_once_then_forwarded_raw():
    pm = ProxyMachine("qemu", [], rng=random.Random(1), emit=lambda *a, **k: None)
    errors = []
    pm._emit = lambda side, kind, **f: errors.append(f) if kind == "error" else None
    out = pm.feed(S2P, b"\x00\x00\x00\x01\xde\xad\xbe\xef" + b"x" * 10)
    out += pm.feed(S2P, b"more")
    assert b"".join(a.data for a in out) == b"\x00\x00\x00\x01\xde\xad\xbe\xef" + b"x" * 10 \
        + b"more"
    assert len(errors) == 1 and "Invalid message" in errors[0]["error"]
    assert pm.info(S2P)["state"] == "raw"


def test_partial_message_at_eof_is_forwarded():
    pm = ProxyMachine("qemu", [], rng=random.Random(1))
    assert pm.feed(S2P, b"\x00\x00") == []
    assert pm.eof(S2P) == [Forward(S2P, b"\x00\x00")]


def test_a_held_piece_beyond_the_limit_goes_on_unfaulted(monkeypatch):
    import protocol.core.proxymachine as pmod
    monkeypatch.setattr(pmod, "MAX_HELD", 100)
    trace = clean_trace("qemu", "model", 2)
    run = Run("qemu", ["duplicate@ram#2"], trace)
    assert any(k == "error" and "not applied" in e["error"] for _, k, e in run.events)
    assert bytes(run.out[P2S]) == b"".join(d for k, d in trace if k == P2S)
    assert MAX_HELD == 64 << 20


def test_process_faults_need_a_harness():
    with pytest.raises(FaultSpecError, match="process fault"):
        check_faults(["stall-secondary@checkpoint-reply#1"], dialects.QEMU)
    assert check_faults(["partition=5@checkpoint-reply#1"], dialects.QEMU)
    assert check_faults(["stall-secondary@checkpoint-reply#1"], dialects.QEMU, process=True)
    with pytest.raises(FaultSpecError, match="RAM inside the device-state blob"):
        check_faults(["drop@ram#1"], dialects.PROTOTYPE)
