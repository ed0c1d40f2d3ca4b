"""The progress timeout (beyond QEMU): it measures completed work, not silence.
Virtual time, the sans-IO endpoint alone."""
import pytest

from protocol.core import dialects
from protocol.core.endpoint import ERROR, make_endpoint
from tests.tcp._hostile import RAM_HEAD, RAM_TAIL, initial_stream, msg, ram_records

QEMU = dialects.get("qemu")


def _secondary(timeout_ms=1000):
    ep = make_endpoint("secondary", QEMU, progress_timeout_ms=timeout_ms)
    ep.start(0.0)
    return ep


def _run_until(ep, t_end, step=100.0, feed=None):
    """Advance virtual time in `step`s, feeding `feed(t)` bytes each step."""
    t = 0.0
    while t < t_end and ep.state != ERROR:
        t += step
        if feed is not None:
            data = feed(t)
            if data:
                ep.receive_data(data, t)
        dl = ep.next_deadline()
        if dl is not None and dl <= t:
            ep.handle_timer(t)
    return t


def _error(ep):
    return [e.payload()["message"] for e in ep.take_events() if e.kind == "error"]


def test_a_peer_silent_before_or_during_the_initial_migration_is_timed_out():
    ep = _secondary()
    t = _run_until(ep, 10_000)
    assert ep.state == ERROR and t == pytest.approx(1000, abs=100)
    err = _error(ep)
    assert "initial migration" in err[0] and "1000 ms" in err[0], err
    ep = _secondary()
    ep.receive_data(initial_stream(1 << 20)[:40], 0.0)
    _run_until(ep, 10_000)
    assert ep.state == ERROR and "initial migration" in _error(ep)[0]


def _in_ram_part():
    ep = _secondary()
    ep.receive_data(initial_stream(8 << 20), 0.0)
    ep.receive_data(msg("checkpoint-request") + msg("vmstate-send") + RAM_HEAD, 0.0)
    assert ep.state == "RECV_RAM"
    return ep


def test_one_byte_every_half_second_inside_a_ram_part_is_timed_out():
    ep = _in_ram_part()
    trickle = iter(ram_records(2))
    t = _run_until(ep, 60_000, step=500.0, feed=lambda t: bytes([next(trickle)]))
    assert ep.state == ERROR and t < 5000
    err = _error(ep)
    assert "RAM part" in err[0] and "checkpoint 1" in err[0] and "1000 ms" in err[0], err


def test_a_slow_peer_that_completes_records_is_not_timed_out():
    ep = _in_ram_part()
    rec = iter([ram_records(1)] + [ram_records(1, first=False)] * 200 + [RAM_TAIL])
    t = _run_until(ep, 200_000, step=500.0, feed=lambda t: next(rec, b""))
    assert ep.state == "WAIT_SIZE", _error(ep)      # the whole part, at 8 KiB/s
    # between checkpoints silence is normal (x-checkpoint-delay may be hours)
    ep.receive_data(msg("vmstate-size", 1) + b"\x00", t)
    assert ep.state == "IDLE" and ep.next_deadline() is None


def test_without_the_option_the_endpoint_waits_forever_as_qemu():
    ep = make_endpoint("secondary", QEMU)
    ep.start(0.0)
    assert ep.next_deadline() is None
