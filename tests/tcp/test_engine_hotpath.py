"""The engine's hot path: timers already due fire in the same wake-up (bounded),
and ``colo bench engine`` measures CPU per checkpoint beside its rates."""
from __future__ import annotations

import math

import pytest

from protocol.core import dialects
from protocol.core.endpoint import make_endpoint
from protocol.drivers import tcp
from protocol.drivers.tcp import Engine, new_loop


class _DueForever:
    """An endpoint stub whose timer is always due: a runaway the engine must bound."""

    state = "COLO"
    close_requested = False

    def __init__(self, due: int) -> None:
        self.fired = 0
        self.due = due           # fires while due, then its deadline is far away

    def take_events(self):
        return []

    def segments_to_send(self):
        return []

    def next_deadline(self):
        return 0.0 if self.fired < self.due else 1e12

    def handle_timer(self, now):
        self.fired += 1


@pytest.fixture
def loop():
    lp = new_loop(uvloop=False)
    yield lp
    lp.close()


def test_due_timer_fires_in_the_same_wakeup(loop):
    ep = _DueForever(due=3)
    eng = Engine(ep, loop)
    eng.pump()
    assert ep.fired == 3                 # no loop iteration was needed
    assert eng._timer_at == 1e12         # the next one is armed on the loop


def test_due_timers_in_a_row_are_bounded(loop):
    ep = _DueForever(due=10 ** 6)
    eng = Engine(ep, loop)
    eng.pump()
    assert ep.fired == tcp.MAX_DUE_NOW   # then the loop gets its turn
    assert eng._timer is not None and eng._timer_at == 0.0
    eng.pump()
    assert ep.fired == 2 * tcp.MAX_DUE_NOW


def test_checkpoint_delay_zero_next_begin_needs_no_loop_timer(loop):
    """Primary, delay 0: the commit's pump begins the next checkpoint at once."""
    p = make_endpoint("primary", dialects.QEMU, checkpoint_delay_ms=0)
    s = make_endpoint("secondary", dialects.QEMU)
    sent = []

    class _T:                              # a transport that records writes
        def write(self, data):
            sent.append(bytes(data))

        def writelines(self, parts):
            sent.append(b"".join(parts))

        def is_closing(self):
            return False

        def get_write_buffer_size(self):
            return 0

    eng = Engine(p, loop)
    eng.transport = _T()
    p.start(0.0)
    s.start(0.0)
    eng.pump()
    for _ in range(40):                    # bounded: a few checkpoints' exchange
        out = b"".join(sent)
        sent.clear()
        if out:
            s.receive_data(out, eng.now_ms())
        back = s.data_to_send()
        if back:
            eng._view[:len(back)] = back
            eng._on_data(len(back))
        if p.checkpoint >= 3:
            break
    assert p.checkpoint >= 3
    assert p.in_flight == p.checkpoint + 1     # the next one already began
    assert eng._timer is None or eng._timer_at != 0.0


def test_core_cpu_figure_is_measured():
    from protocol.bench.engine import core_cpu_us
    us = core_cpu_us(0, 1, n=200, max_s=2.0)
    assert math.isfinite(us) and 0 < us < 100_000


def test_bench_runs_report_cpu_per_checkpoint():
    from protocol.bench import engine as be
    e = be._run_engine(be._cfg(cpu=(0, 0), seconds=0.5))
    r = be._run_raw(be._cfg(cpu=(0, 0), seconds=0.5, payload=be._vmstate_bytes(0, 1)))
    assert e["checkpoints"] > 2 and e["rate"] > 0
    assert e["cpu_us"] is not None and e["cpu_us"] > 0
    assert r["rate"] > 0 and r["cpu_us"] is not None and r["cpu_us"] > 0
    for run in (e, r):      # each side's share, which shows the side that sets the pace
        assert run["primary_cpu_us"] > 0 and run["secondary_cpu_us"] > 0
        assert run["primary_cpu_us"] + run["secondary_cpu_us"] == pytest.approx(run["cpu_us"])
    row = be._cpu_fields([e], [r], 150.0)
    assert row["primary_cpu_us"] == round(e["primary_cpu_us"], 1)
    assert row["baseline_secondary_cpu_us"] == round(r["secondary_cpu_us"], 1)


def test_detail_events_off_builds_no_detail_events(loop):
    """``detail_events=False``: the endpoint's machines skip the vm/action/migration
    detail events, the checkpoint still commits and its wire bytes are the same."""
    from protocol.core.events import Checkpoint, Send, State

    def run(detail: bool, wire: bool = True):
        p = make_endpoint("primary", dialects.QEMU, checkpoint_delay_ms=0)
        s = make_endpoint("secondary", dialects.QEMU, checkpoint_delay_ms=0)
        Engine(p, loop, detail_events=detail, wire_events=wire)
        Engine(s, loop, detail_events=detail, wire_events=wire)
        p.start(0.0)
        s.start(0.0)
        evs, wire = [], []
        for _ in range(50):
            moved = False
            for a, b in ((p, s), (s, p)):
                segs = a.segments_to_send()
                evs += a.take_events()
                if segs:
                    moved = True
                    data = b"".join(x.data for x in segs)
                    wire.append(data)
                    b.receive_data(data, 0.0)
            if p.checkpoint >= 2:
                break
            if not moved:
                p.handle_timer(p.next_deadline() or 0.0)
        return evs, wire, p.checkpoint

    full, wire_full, n_full = run(True)
    lean, wire_lean, n_lean = run(False)
    assert n_full == n_lean >= 2
    assert wire_full == wire_lean
    kinds_full = {type(e).__name__ for e in full}
    kinds_lean = {type(e).__name__ for e in lean}
    assert "Vm" in kinds_full and "Vm" not in kinds_lean
    assert len(lean) < len(full)
    commits = [e for e in lean if type(e) is Checkpoint and e.phase == "commit"]
    assert commits and any(type(e) is Send for e in lean)
    # wire_events=False: not the wire's events either (detail ones neither), the
    # same bytes, the same checkpoints and state changes
    bare, wire_bare, n_bare = run(True, wire=False)
    assert n_bare == n_full and wire_bare == wire_full
    kinds_bare = {type(e).__name__ for e in bare}
    assert not kinds_bare & {"Send", "Recv", "SendRam", "RecvRam", "RecvDeviceState", "Vm"}
    assert {"Send", "Recv", "SendRam", "RecvRam"} <= kinds_full
    assert [e for e in bare if type(e) is Checkpoint] == \
        [e for e in lean if type(e) is Checkpoint]
    assert [(e.from_, e.to) for e in bare if type(e) is State] == \
        [(e.from_, e.to) for e in full if type(e) is State]


def test_floor_endpoint_moves_the_same_bytes_as_the_raw_peers():
    """The engine's floor: the bench's minimal endpoint pair commits checkpoints over
    the real engine, with as many vmstate bytes as it was given."""
    from protocol.bench import engine as be
    from protocol.bench.enginefloor import FloorEndpoint
    p, s = FloorEndpoint("primary", 100), FloorEndpoint("secondary", 100)
    p.start(0.0)
    s.start(0.0)
    sizes = []
    for _ in range(20):
        for a, b in ((p, s), (s, p)):
            data = b"".join(x.data for x in a.segments_to_send())
            a.take_events()
            if data:
                if a is p:
                    sizes.append(len(data))
                b.receive_data(data, 0.0)
    assert p.checkpoint >= 5 and s.checkpoint >= 4
    assert 4 + 100 + 12 in sizes           # vmstate-send, the payload, vmstate-size
    # with a checkpoint delay the primary waits for its timer: a byte then is refused
    from protocol.bench.enginefloor import LOADED, RECEIVED, REPLY
    d = FloorEndpoint("primary", 0, delay_ms=50.0)
    d.start(0.0)
    d.receive_data(REPLY, 1.0)
    d.receive_data(RECEIVED + LOADED, 2.0)
    assert d.checkpoint == 1 and d.next_deadline() == 52.0
    d.handle_timer(10.0)
    assert d.checkpoint == 1                  # not due yet
    d.handle_timer(52.0)
    assert d.checkpoint == 2 and d.next_deadline() is None
    d.receive_data(REPLY, 53.0)
    d.receive_data(RECEIVED + LOADED, 54.0)
    d.receive_data(b"\x00", 55.0)             # more than the transaction has room for
    assert d.state == "ERROR"
    with pytest.raises(ValueError):
        FloorEndpoint("proxy", 0)
    r = be._run_engine(be._cfg(cpu=(0, 0), seconds=0.5, payload=be._vmstate_bytes(0, 1),
                               floor=True))
    assert r["checkpoints"] > 2 and r["rate"] > 0 and r["cpu_us"] > 0


def test_hot_capture_row_measures_back_to_back_checkpoints():
    """The capture workload with no pause between checkpoints: the engine, the raw
    peers and the floor each commit checkpoints, and the row compares them."""
    from protocol.bench import engine as be
    row = be._hot_capture_row(1, be._vmstate_bytes(40, 14 << 10), 150.0, checkpoints=20)
    assert "back to back" in row["name"] and row["unit"] == "ms/checkpoint"
    assert row["value"] > 0 and row["baseline"] > 0
    assert row["ratio"] == pytest.approx(row["value"] / row["baseline"], rel=0.05)
    assert row["floor"] > 0 and row["floor_cpu_us"] > 0
    assert row["cpu_us"] > 0 and row["core_cpu_us"] == 150.0


def test_soak_samples_rss_through_the_run():
    from protocol.bench import engine as be
    res = be.soak(1.0, "capture")
    assert res["workload"] == "capture" and res["checkpoints"] > 2
    for role in ("primary", "secondary"):
        r = res[role]
        assert r["rss_start_kib"] > 0 and r["rss_peak_kib"] >= r["rss_start_kib"]
        assert r["rss_peak_kib"] >= r["rss_end_kib"] > 0
        assert r["peak_growth_pct"] >= r["growth_pct"]
    with pytest.raises(ValueError, match="unknown soak workload"):
        be.soak(1.0, "nope")


def test_raw_baseline_reads_a_big_payload_in_chunks():
    """The bulk baseline's secondary reads into a buffer smaller than the payload,
    over and over; every checkpoint still waits for the whole payload."""
    from protocol.bench import engine as be
    r = be._run_raw(be._cfg(payload=300_000, raw_chunk=65536, seconds=5, max_cp=3))
    assert r["rate"] > 0 and r["latency_ms"] > 0 and r["cpu_us"] > 0


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--soak", "-1"], ["--seconds", "x"]])
def test_bench_engine_usage_errors_exit_2(argv, capsys):
    from protocol.bench import engine as be
    with pytest.raises(SystemExit) as exc:
        be.main(argv)
    assert exc.value.code == 2
    assert "colo bench engine: error" in capsys.readouterr().err
