"""The full guest: checkpoint rounds, output commit, failover, and a property."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.core.guestport import GuestPort
from protocol.guest.model import Guest
from protocol.guest.workload import VGA_BLOCK
from protocol.migration.pages import PAGE_SIZE

GIB = 1 << 30
SMALL = [("pc.ram", 4 << 20), (VGA_BLOCK, 1 << 20)]


def checkpoint(p: Guest, s: Guest, *, check: bool = True) -> dict:
    """One 7.2 transaction, in the order of PROTOCOL.md §3.2."""
    s.stop()                                   # checkpoint-request -> SVM stops
    p.stop()                                   # after checkpoint-reply
    p.replication_checkpoint()
    records = p.collect_dirty_pages()
    blob = p.save_devices()
    s.cache_pages(records)                     # RAM -> cache only
    released = p.release_output()              # after vmstate-received
    flushed = s.flush_cache()
    s.load_devices(blob)
    s.replication_checkpoint()
    diff = p.consistency_diff(s) if check else {}
    s.start()
    p.start()
    return {"records": records, "released": released, "flushed": flushed, "diff": diff}


def run(p: Guest, s: Guest, now_ms: int) -> None:
    p.advance(now_ms)
    s.advance(now_ms)


def test_guest_is_a_guestport():
    g: GuestPort = Guest("primary", 1)
    assert not g.running


def test_same_seed_same_boot_state():
    a, b = Guest("primary", 11), Guest("secondary", 11)
    assert a.consistency_diff(b) == {} and a.digest() == b.digest()
    assert Guest("primary", 12).digest()["ram"] != a.digest()["ram"]
    p, s = Guest.pair(11)
    assert p.consistency_diff(s) == {} and s.cache.pending() == 0


@pytest.mark.parametrize("mode", ["periodic", "hybrid"])
@pytest.mark.parametrize("xbzrle", [False, True])
def test_checkpoint_rounds_keep_the_twins_consistent(mode, xbzrle):
    p, s = Guest.pair(3, mode=mode, xbzrle=xbzrle)
    p.start()
    s.start()
    req = 0
    for k in range(1, 6):
        for _ in range(3):
            req += 1
            p.client_request(req, b"GET /%d" % req)
        run(p, s, k * 1000)
        s.ram.write("pc.ram", 0x300000, b"svm-only divergence %d" % k)   # reverted by flush
        out = checkpoint(p, s)
        assert out["diff"] == {}, out["diff"]
        assert p.digest() == s.digest()
        assert 0 < out["flushed"] < p.ram.size_bytes // PAGE_SIZE          # B6
    assert p.client_log.duplicates == []
    assert sorted({r.packet.req_id for r in p.client_log.released}) == list(range(1, req + 1))
    assert all(r.packet.side == "primary" for r in p.client_log.released)


def test_devices_and_disk_follow_the_checkpoint():
    p, s = Guest.pair(4, workload="toggle")
    p.start()
    s.start()
    run(p, s, 2000)
    s.ram.fill_page("pc.ram", 3, 1)
    s.devices.on_step(12345)                      # the SVM's own divergence
    s.disk.write(100, b"\x01" * 512)
    assert set(p.consistency_diff(s)) == {"ram", "devices", "disk"}
    out = checkpoint(p, s)
    assert out["diff"] == {}
    assert p.serial_output.startswith(b"step 0000000a\n")
    assert s.devices.serial_tail == p.devices.serial_tail


def test_periodic_output_waits_for_the_checkpoint():
    p, s = Guest.pair(5, mode="periodic", workload="idle")
    p.start()
    s.start()
    p.client_request(1, b"ping")
    run(p, s, 100)
    assert len(p.client_log) == 0 and len(p.filter) == 1           # held (invariant 2)
    out = checkpoint(p, s)
    assert out["released"] == 1
    (rel,) = p.client_log.released
    assert rel.packet.req_id == 1 and rel.via == "filter-buffer" and rel.t_ms == 100


def test_hybrid_match_releases_at_once_and_mismatch_asks_for_checkpoint():
    p, s = Guest.pair(6, mode="hybrid", workload="idle")
    p.start()
    s.start()
    p.client_request(1, b"hello")
    assert [r.via for r in p.client_log.released] == ["compare-match"]
    assert not p.checkpoint_requested()
    s.divergence_rate = 1.0                        # the SVM now answers differently
    p.client_request(2, b"again")
    assert len(p.client_log) == 1 and p.checkpoint_requested()
    run(p, s, 50)
    out = checkpoint(p, s)
    assert out["released"] == 1 and out["diff"] == {}
    assert [r.packet.req_id for r in p.client_log.released] == [1, 2]
    assert p.compare.queued() == (0, 0)            # the SVM copy was dropped


def test_hybrid_stale_packet_triggers_checkpoint():
    p, s = Guest.pair(7, mode="hybrid", workload="idle")
    p.start()                                      # the SVM stays stopped: never answers
    p.client_request(1, b"anyone?")
    for now in range(0, 4000, 250):
        p.advance(now)
        assert not p.checkpoint_requested()
    assert p.next_deadline_ms() == 4000
    p.advance(4000)
    assert p.checkpoint_requested()
    assert p.release_output() == 1


def test_secondary_failover_discards_partial_checkpoint():
    p, s = Guest.pair(8, mode="periodic", dialect="v11", workload="uniform")
    p.start()                                      # v11: the SVM does not run
    for req in range(1, 4):
        p.client_request(req, b"r%d" % req)
    run(p, s, 1000)
    checkpoint(p, s)
    s.stop()
    p.client_request(4, b"r4")                     # answered by the PVM, still buffered
    run(p, s, 2000)
    before = s.digest()
    records = p.collect_dirty_pages()
    s.cache_pages(records[: len(records) // 2])    # the PVM dies mid-stream
    s.take_over()
    assert s.digest()["ram"] == before["ram"]      # nothing of the partial checkpoint
    assert s.cache.pending() == 0 and s.running and s.failed_over
    answers = [r.packet.req_id for r in p.client_log.released]
    assert sorted(answers) == [1, 2, 3, 4]         # 4 answered once, by the survivor
    assert p.client_log.answers_for(4)[0].packet.side == "secondary"
    assert p.client_log.duplicates == []


def test_primary_failover_releases_buffered_output():
    p, s = Guest.pair(9, mode="hybrid", workload="idle")
    p.start()
    p.client_request(1, b"x")                      # the SVM is dead: no answer
    p.take_over()
    assert [r.via for r in p.client_log.released] == ["compare-close"]
    p.client_request(2, b"y")
    assert [r.via for r in p.client_log.released][-1] == "primary-direct"
    assert not p.disk.replicating


def test_guest_level_offsets_above_4gib():
    blocks = [("pc.ram", 5 * GIB), (VGA_BLOCK, 1 << 20)]
    p, s = Guest.pair(10, blocks=blocks, workload="idle")
    p.start()
    s.start()
    p.ram.write("pc.ram", 4 * GIB + 8192, b"high")
    out = checkpoint(p, s)
    assert [r.offset for r in out["records"]] == [4 * GIB + 8192]
    assert out["diff"] == {} and out["flushed"] == 1
    assert s.ram.read("pc.ram", 4 * GIB + 8192, 4) == b"high"


def test_unlinked_guests_use_outboxes():
    p = Guest("primary", 12, mode="hybrid", blocks=SMALL, workload="sweep")
    s = Guest("secondary", 12, mode="hybrid", blocks=SMALL, workload="sweep")
    p.start()
    s.start()
    p.client_request(1, b"q")
    for conn, req, payload in p.drain_mirrored_requests():
        s.receive_mirrored(conn, req, payload)
    for pkt in s.drain_svm_output():
        p.svm_packet(pkt)
    assert [r.via for r in p.client_log.released] == ["compare-match"]
    run(p, s, 1000)
    s.disk.mirror_writes(p.drain_disk_writes())
    out = checkpoint(p, s)
    assert out["diff"] == {}


def test_bad_arguments():
    with pytest.raises(ValueError, match="role"):
        Guest("tertiary", 1)
    with pytest.raises(ValueError, match="mode"):
        Guest("primary", 1, mode="lockstep")
    with pytest.raises(ValueError, match="RAM cache"):
        Guest("primary", 1).flush_cache()
    with pytest.raises(ValueError, match="backwards"):
        Guest("primary", 1, start_ms=10).advance(5)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("run"), st.integers(1, 700)),
        st.tuples(st.just("request"), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("svm_write"), st.integers(0, 1023), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("pvm_write"), st.integers(0, 1023), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("svm_disk"), st.integers(0, 200)),
        st.tuples(st.just("checkpoint")),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), mode=st.sampled_from(["periodic", "hybrid"]),
       workload=st.sampled_from(["uniform", "hot", "sweep"]), xbzrle=st.booleans(),
       program=ops)
def test_property_twins_consistent_after_every_checkpoint(seed, mode, workload, xbzrle, program):
    p, s = Guest.pair(seed, mode=mode, workload=workload, xbzrle=xbzrle, blocks=SMALL,
                      divergence_rate=0.3)
    p.start()
    s.start()
    now, req = 0, 0
    for op in program + [("checkpoint",)]:
        if op[0] == "run":
            now += op[1]
            run(p, s, now)
        elif op[0] == "request":
            req += 1
            p.client_request(req, op[1])
        elif op[0] == "svm_write":
            s.ram.write("pc.ram", op[1] * PAGE_SIZE, op[2])
        elif op[0] == "pvm_write":
            p.ram.write("pc.ram", op[1] * PAGE_SIZE, op[2])
        elif op[0] == "svm_disk":
            s.disk.write(op[1], bytes([op[1] & 0xFF]) * 512)
        else:
            out = checkpoint(p, s)
            assert out["diff"] == {}
            assert p.digest() == s.digest()
            assert out["flushed"] <= p.ram.size_bytes // PAGE_SIZE
    # output commit and no double release; everything answered is released by now
    assert p.client_log.duplicates == []
    assert sorted(r.packet.req_id for r in p.client_log.released) == list(range(1, req + 1))


def test_runs_are_deterministic_and_toggle_needs_room():
    digests = []
    for _ in range(2):
        p, s = Guest.pair(13, workload="hot", mode="hybrid", divergence_rate=0.5)
        p.start()
        s.start()
        for req in range(1, 6):
            p.client_request(req, b"x")
            run(p, s, req * 300)
        digests.append((p.digest(), s.digest(),
                        [(r.packet.key, r.t_ms) for r in p.client_log.released]))
    assert digests[0] == digests[1]
    with pytest.raises(ValueError, match="ram_mib >= 13"):
        Guest("primary", 1, ram_mib=8, workload="toggle")


def test_section_ids_are_stable_and_unique_across_initial_and_checkpoints():
    """QEMU numbers a section once; a decoder written from real captures maps
    the initial migration's (id -> name) onto every checkpoint's device blob."""
    from protocol.migration.stream import decode_device_blob
    from protocol.migration.streamdecode import InitialReader
    p, s = Guest("primary", 5), Guest("secondary", 5)
    reader = InitialReader()
    reader.feed(p.initial_stream())
    summary = reader.summary
    initial = {d.section_id: d.idstr for d in summary.device_sections}
    assert summary.ram_section_id is not None
    assert summary.ram_section_id not in initial
    assert len(initial) == len(summary.device_sections) >= 4      # no id used twice
    assert initial == {3: "timer", 4: "cpu", 5: "serial", 6: "e1000"}
    by_name = {name: sid for sid, name in initial.items()}
    for now in (40, 80, 120):
        run(p, s, now)
        checkpoint(p, s)
        blob = decode_device_blob(p.save_devices())
        ids = [d.section_id for d in blob]
        assert len(set(ids)) == len(ids)
        assert summary.ram_section_id not in ids
        for d in blob:
            assert initial[d.section_id] == d.idstr
            assert by_name[d.idstr] == d.section_id


def test_the_serial_log_keeps_the_latest_lines_only(monkeypatch):
    """A long stretch of guest time between checkpoints prints a line every 10 steps:
    the COM1 log keeps the latest ones, not all of them."""
    from protocol.guest import model
    monkeypatch.setattr(model, "SERIAL_LOG_BYTES", 256)
    p, _s = Guest.pair(5, ram_mib=16)
    p.start()
    p.advance(600_000)                          # ten minutes: thousands of steps, lines
    assert p.devices.serial_printed > 8_000      # what was printed in all
    assert 256 <= len(p.serial_output) <= 512
    assert p.serial_output.endswith(p.devices.serial_tail)


def test_a_model_session_refuses_a_checkpoint_delay_it_cannot_simulate():
    from protocol.errors import UsageError
    from protocol.sim.config import MODEL_MAX_CHECKPOINT_DELAY_MS, SimConfig
    from protocol.sim.core import Simulation
    with pytest.raises(UsageError, match="at most 3600000 ms"):
        Simulation(SimConfig(guest="model", ram_mib=16,
                             checkpoint_delay_ms=MODEL_MAX_CHECKPOINT_DELAY_MS + 1))
    sim = Simulation(SimConfig(guest="model", ram_mib=16, checkpoints=2))
    with pytest.raises(UsageError, match="guest model"):
        sim.apply_input({"cmd": "set-delay", "value": 4_294_967_295})
    sim.apply_input({"cmd": "set-delay", "value": 5000})          # within: applied
    assert sim.eps["primary"].checkpoint_delay_ms == 5000
