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
