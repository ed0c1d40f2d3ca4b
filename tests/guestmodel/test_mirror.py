"""The mirror guest: the testbed's secondary keeping a real primary's RAM.

Checked three ways: against the testbed's own model primary (RAM identical
after every committed checkpoint, any workload, with and without XBZRLE);
against run1, the real QEMU 7.2 capture (the guest's own VGA text and serial
output); and against bad input (clear errors, nothing half-applied).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import dialects
from protocol.core.endpoint import make_endpoint
from protocol.guest.mirror import MirrorError, MirrorGuest
from protocol.guest.model import Guest
from protocol.migration.pages import KIND_PAGE, PageRecord
from protocol.migration.stream import RamContext

RUN1 = Path(__file__).resolve().parents[2].parent / "shared" / "qemu-colo" / "run1"
QEMU = dialects.get("qemu")


def _pair(workload: str, seed: int, xbzrle: bool = False):
    guest = Guest("primary", seed=seed, ram_mib=16, workload=workload, xbzrle=xbzrle)
    mirror = MirrorGuest()
    p = make_endpoint("primary", QEMU, guest=guest, checkpoint_delay_ms=100)
    s = make_endpoint("secondary", QEMU, guest=mirror, initial_stream=True)
    return guest, mirror, p, s


def _run(p, s, guest, until_commits: int, now: float = 0.0, check=None) -> float:
    """Move bytes both ways and fire timers until `until_commits` checkpoints commit."""
    for _ in range(100_000):
        moved = False
        for a, b in ((p, s), (s, p)):
            data = a.data_to_send()
            if data:
                b.receive_data(data, now)
                moved = True
        for ev in p.take_events():
            if ev.kind == "checkpoint" and ev.payload().get("phase") == "commit" and check:
                check(ev.payload()["n"])
        s.take_events()
        assert p.error is None and s.error is None, (p.error, s.error)
        if p.checkpoint >= until_commits:
            return now
        if not moved:
            nxt = p.next_deadline()
            assert nxt is not None, "nothing to do and no timer: the pair is stuck"
            now = max(now, nxt)
            guest.advance(int(now))
            p.handle_timer(now)
    raise AssertionError("the pair did not reach the checkpoints")


@pytest.mark.parametrize("workload", ["toggle", "hot", "sweep", "uniform"])
def test_mirror_equals_the_primary_after_every_checkpoint(workload):
    guest, mirror, p, s = _pair(workload, seed=7)
    seen = []

    def check(n):
        assert guest.ram.diff_pages(mirror.ram) == {}, f"checkpoint {n} differs"
        seen.append(n)

    p.start(0.0)
    s.start(0.0)
    _run(p, s, guest, 8, check=check)
    assert seen == list(range(1, 9))
    assert mirror.checkpoints == 8 and mirror.initial_pages > 0
    assert mirror.pages_flushed_total == s.pages_flushed_total > 0
    assert mirror.devices, "the device sections of the last checkpoint"


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), workload=st.sampled_from(["hot", "uniform", "toggle"]),
       xbzrle=st.booleans(), n=st.integers(1, 5))
def test_mirror_follows_any_workload(seed, workload, xbzrle, n):
    guest, mirror, p, s = _pair(workload, seed, xbzrle)
    p.start(0.0)
    s.start(0.0)
    _run(p, s, guest, n)
    assert guest.ram.diff_pages(mirror.ram) == {}


def test_a_partial_checkpoint_is_discarded_on_failover():
    guest, mirror, p, s = _pair("uniform", seed=3)
    p.start(0.0)
    s.start(0.0)
    now = _run(p, s, guest, 2)
    before = {b: bytes(blk.mem) for b, blk in mirror.ram.blocks.items()}
    # the next checkpoint's pages reach the cache, then the primary dies
    mirror.cache_pages([PageRecord("pc.ram", 0, KIND_PAGE, b"\xab" * 4096)])
    mirror.discard_cache()
    assert mirror.flush_cache() == 0
    assert {b: bytes(blk.mem) for b, blk in mirror.ram.blocks.items()} == before
    assert now > 0


@pytest.mark.skipif(not (RUN1 / "primary_to_secondary.bin").exists(),
                    reason="../shared/qemu-colo/run1 is not beside the repository")
def test_mirror_of_the_real_capture_shows_the_guest():
    data = (RUN1 / "primary_to_secondary.bin").read_bytes()
    mirror = MirrorGuest()
    s = make_endpoint("secondary", QEMU, guest=mirror, initial_stream=True)
    s.start(0.0)
    screens = []
    for pos in range(0, len(data), 65536):
        s.receive_data(data[pos:pos + 65536], 1.0)
        for ev in s.take_events():
            if ev.kind == "action" and ev.payload().get("name") == "flush-cache":
                screens.append(ev.payload()["screen"])
                assert ev.payload()["blocks"]["0000:00:02.0/vga.vram"] == 1
    assert s.error is None and mirror.checkpoints == 20 == len(screens)
    steps = [int(re.match(r"COLO step ([0-9A-Fa-f]{8})", t).group(1), 16) for t in screens]
    assert steps == sorted(steps) and len(set(steps)) == 20
    # 1 s between checkpoints, ~90 ms stopped, 10 ms per tick and 10 ticks a step
    assert all(8 <= b - a <= 11 for a, b in zip(steps, steps[1:], strict=False)), steps
    # the primary printed "step N" every 10 steps; the last checkpoint's step is
    # past the last such line the primary wrote before the capture ended
    serial = (RUN1 / "primary.serial").read_text(errors="replace")
    printed = [int(x, 16) for x in re.findall(r"^step ([0-9a-f]{8})$", serial, re.M)]
    assert steps[-1] // 10 * 10 in printed
    assert mirror.machine and mirror.machine.startswith("pc-i440fx")
    assert [b for b, _ in mirror.blocks()][:2] == ["pc.ram", "0000:00:02.0/vga.vram"]
    assert len(mirror.devices) == 32
    # the whole text screen: SeaBIOS's banner under the guest's line, then its boot line
    rows = mirror.screen_lines()
    assert len(rows) == 25 and rows[0] == screens[-1]
    assert rows[1] == "Booting from ROM..." and not any(rows[2:])


def test_bad_input_is_named():
    mirror = MirrorGuest()
    with pytest.raises(MirrorError, match="before RAM START"):
        mirror.initial_page(PageRecord("pc.ram", 0, KIND_PAGE, b"\0" * 4096), RamContext({}))
    ctx = RamContext({"pc.ram": 8192})
    with pytest.raises(MirrorError, match="'vga' which RAM START did not announce|'vga'"):
        mirror.initial_page(PageRecord("vga", 0, KIND_PAGE, b"\0" * 4096), ctx)
    with pytest.raises(MirrorError, match="before the initial migration"):
        mirror.cache_pages([])
    mirror.initial_page(PageRecord("pc.ram", 4096, KIND_PAGE, b"\x01" * 4096), ctx)
    with pytest.raises(MirrorError, match="size"):
        mirror.read("pc.ram", 0, 2 << 20)
    with pytest.raises(MirrorError, match="no RAM block 'x'"):
        mirror.read("x", 0, 1)
    with pytest.raises(MirrorError, match="outside"):
        mirror.read("pc.ram", 8000, 1000)
    assert mirror.read("pc.ram", 4096, 2) == b"\x01\x01"
    with pytest.raises(MirrorError, match="cannot be one"):
        mirror.collect_dirty_pages()


def test_a_garbled_device_blob_stops_the_secondary_with_a_named_error():
    guest, mirror, p, s = _pair("hot", seed=1)
    p.start(0.0)
    s.start(0.0)
    _run(p, s, guest, 1)
    with pytest.raises(ValueError, match="device state"):
        mirror.load_devices(b"\x04\x00\x00\x00\x07garbage")


def test_a_page_outside_the_guest_ends_colo_with_a_named_error_not_a_crash():
    from protocol.core import messages as msg
    from protocol.migration.stream import encode_ram_part
    guest = Guest("primary", seed=1, ram_mib=16, workload="hot")
    mirror = MirrorGuest()
    s = make_endpoint("secondary", QEMU, guest=mirror, initial_stream=True)
    s.start(0.0)
    s.receive_data(guest.initial_stream(), 0.0)
    assert s.state == "IDLE", s.error
    ctx = guest.ram_context.copy()
    ctx.blocks["pc.ram"] = 128 << 20          # the sender believes in a bigger pc.ram
    far = PageRecord("pc.ram", 64 << 20, KIND_PAGE, b"\x07" * 4096)   # past 16 MiB
    s.receive_data(QEMU.encode(msg.CHECKPOINT_REQUEST) + QEMU.encode(msg.VMSTATE_SEND)
                   + encode_ram_part([far], ctx), 1.0)
    assert s.state == "ERROR"
    assert "0x4000000" in s.error and "pc.ram" in s.error, s.error
    assert mirror.read("pc.ram", 0, 4096) == bytes(guest.ram.read("pc.ram", 0, 4096))


def _session_bytes() -> bytes:
    """What a model primary sends: initial migration + 3 checkpoints (no replies needed
    to build it: the secondary's answers are not part of this direction)."""
    guest, mirror, p, s = _pair("hot", seed=5)
    sent = bytearray()
    p.start(0.0)
    s.start(0.0)
    now = 0.0
    for _ in range(10_000):
        data = p.data_to_send()
        sent += data
        if data:
            s.receive_data(data, now)
        back = s.data_to_send()
        if back:
            p.receive_data(back, now)
        if p.checkpoint >= 3:
            return bytes(sent)
        if not data and not back:
            now = max(now, p.next_deadline())
            guest.advance(int(now))
            p.handle_timer(now)
    raise AssertionError("no session")


_SESSION: list[bytes] = []


@settings(max_examples=int(os.environ.get("COLO_FUZZ_EXAMPLES", 60)), deadline=None)
@given(cut=st.integers(0, 10**9), flips=st.lists(st.tuples(st.integers(0, 10**9),
                                                            st.integers(1, 255)), max_size=4),
       chunk=st.integers(1, 70_000))
def test_a_garbled_stream_from_the_primary_never_crashes_the_mirror(cut, flips, chunk):
    if not _SESSION:
        _SESSION.append(_session_bytes())
    data = bytearray(_SESSION[0])
    data = data[:cut % (len(data) + 1)]
    for pos, x in flips:
        if data:
            data[pos % len(data)] ^= x
    mirror = MirrorGuest()
    s = make_endpoint("secondary", QEMU, guest=mirror, initial_stream=True)
    s.start(0.0)
    for pos in range(0, len(data), chunk):
        s.receive_data(bytes(data[pos:pos + chunk]), 1.0)     # must not raise
    s.receive_eof(2.0)
    assert s.state in ("WAIT_INITIAL", "IDLE", "WAIT_SEND", "RECV_RAM", "WAIT_SIZE",
                       "RECV_BLOB", "LOADING", "ERROR"), s.state
    if s.state == "ERROR":
        assert s.error and len(s.error) < 2000


def _secondary_fed(data: bytes):
    mirror = MirrorGuest()
    s = make_endpoint("secondary", QEMU, guest=mirror, initial_stream=True)
    s.start(0.0)
    s.receive_data(data, 1.0)          # must not raise
    return s, mirror


def test_an_initial_migration_without_ram_is_a_named_error():
    import json
    desc = json.dumps({"page_size": 4096, "devices": []}).encode()
    data = (b"QEVM" + (3).to_bytes(4, "big") + b"\x00" + b"\x06"
            + len(desc).to_bytes(4, "big") + desc)
    s, mirror = _secondary_fed(data)
    assert s.state == "ERROR" and "no RAM block" in s.error, (s.state, s.error)
    assert mirror.ram is None


def test_ram_too_big_to_mirror_is_a_named_error():
    from protocol.migration.pages import KIND_ZERO
    from protocol.migration.stream import encode_initial
    huge = 1 << 46                                  # 64 TiB
    data, _ctx = encode_initial("pc-i440fx-7.2", [("pc.ram", huge)],
                                [PageRecord("pc.ram", 0, KIND_ZERO)], [],
                                {"page_size": 4096, "devices": []})
    s, mirror = _secondary_fed(data)
    assert s.state == "ERROR" and "more than a mirror takes on" in s.error, s.error


@pytest.mark.parametrize("block,offset", [("pc.ram", 1 << 20), ("pc.ram", -4096),
                                          ("pc.ram", (1 << 20) + 4096), ("pc.ram", 100),
                                          ("nope", 0)])
def test_a_mirror_refuses_an_initial_page_outside_its_blocks(block, offset):
    from protocol.migration.pages import KIND_ZERO
    g = MirrorGuest()
    ctx = RamContext.from_blocks([("pc.ram", 1 << 20)])
    with pytest.raises(MirrorError, match="outside RAM block|did not announce"):
        g.initial_page(PageRecord(block, offset, KIND_ZERO), ctx)
    with pytest.raises(MirrorError, match="outside RAM block|did not announce"):
        g.initial_page(PageRecord(block, offset, KIND_PAGE, bytes(4096)), ctx)
