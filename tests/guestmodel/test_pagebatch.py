"""PageBatch: the bulk page path gives the same records, bytes and RAM as lists."""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.guest.model import Guest
from protocol.guest.pagediff import xbzrle_encode
from protocol.guest.ram import Ram
from protocol.guest.ramcache import RamCache
from protocol.migration import stream
from protocol.migration.pages import KIND_PAGE, KIND_XBZRLE, PageBatch, PageRecord
from protocol.migration.stream import RamContext, RamPartReader, encode_ram_part

LAYOUT = [("pc.ram", 4 << 20), ("vga", 1 << 20)]
#: both bulk encoders: record by record (a batch of at most SMALL_BATCH_RECORDS,
#: as these are), and numpy's (every batch, with the limit at 0)
ENCODERS = {"small": stream.SMALL_BATCH_RECORDS, "numpy": 0}


def _dirty_twins(seed: int) -> tuple[Ram, Ram]:
    rng = random.Random(seed)
    a, b = Ram(LAYOUT), Ram(LAYOUT)
    a._cursor = b._cursor = (rng.randrange(2), rng.randrange(300))
    for name, npages in (("pc.ram", 1024), ("vga", 256)):
        for i in rng.sample(range(npages), rng.randrange(0, 60)):
            data = bytes(16) if rng.random() < 0.3 else os.urandom(40)
            off = i * 4096 + rng.randrange(4000)
            a.write(name, off, data)
            b.write(name, off, data)
    return a, b


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("seed", range(12))
def test_batch_matches_list_and_encodes_identically(seed, encoder, monkeypatch):
    monkeypatch.setattr(stream, "SMALL_BATCH_RECORDS", ENCODERS[encoder])
    a, b = _dirty_twins(seed)
    batch, recs = a.collect_dirty_batch(), b.collect_dirty()
    assert isinstance(batch, PageBatch) and batch == recs and list(batch) == recs
    assert a._cursor == b._cursor and a.dirty_count() == 0
    cur = [None, "pc.ram", "vga"][seed % 3]
    c1, c2 = RamContext.from_blocks(LAYOUT), RamContext.from_blocks(LAYOUT)
    c1.current_block = c2.current_block = cur
    wire = encode_ram_part(batch, c1)
    assert wire == encode_ram_part(recs, c2) and c1.current_block == c2.current_block
    counts = {}
    for r in recs:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    assert batch.kind_counts() == counts
    # decoding the whole part at once gives a batch again (or [] when empty)
    dec = RamContext.from_blocks(LAYOUT)
    dec.current_block = cur
    rr = RamPartReader(dec)
    assert rr.feed(wire) == len(wire) and rr.done
    assert rr.records == recs and dec.current_block == c1.current_block


def test_cache_receive_batch_then_discard_and_flush():
    svm = Ram(LAYOUT)
    svm.write("pc.ram", 5 * 4096, b"old")          # a page the cache already holds
    cache = RamCache(svm)
    pvm, twin = _dirty_twins(3)
    for ram in (pvm, twin):
        ram.write("pc.ram", 5 * 4096, b"new")
        ram.write("pc.ram", 7 * 4096, bytes(8))     # a zero page
    before = cache.cache.digest()
    cache.receive(pvm.collect_dirty_batch())
    assert cache.pending() > 0
    cache.discard()
    assert cache.cache.digest() == before and cache.pending() == 0
    cache.receive(twin.collect_dirty_batch())
    cache.flush()
    assert svm.digest() == cache.cache.digest() and not cache.diff_from_ram()


def test_guest_checkpoint_with_batches_is_consistent():
    p, s = Guest.pair(7, ram_mib=16, workload="toggle")
    for now in (50, 100, 150):
        p.advance(now)
        s.advance(now)
        p.stop()
        s.stop()
        records = p.collect_dirty_pages()
        s.cache_pages(records)
        s.flush_cache()
        s.load_devices(p.save_devices())
        assert p.consistency_diff(s).get("ram") is None
        p.start()
        s.start()


# --- lent pages: collect_dirty_batch copies nothing until the wire image -----------
def _wire(records, cur=None) -> bytes:
    ctx = RamContext.from_blocks(LAYOUT)
    ctx.current_block = cur
    return encode_ram_part(records, ctx)


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("seed", range(6))
def test_lent_batch_encodes_straight_from_ram_like_the_list(seed, encoder, monkeypatch):
    monkeypatch.setattr(stream, "SMALL_BATCH_RECORDS", ENCODERS[encoder])
    a, b = _dirty_twins(seed)
    batch, recs = a.collect_dirty_batch(), b.collect_dirty()
    assert all(run.unpinned() is not None for run in batch.runs if run.kinds.any())
    assert _wire(batch) == _wire(recs)                 # encoded before any page is copied
    assert all(run.unpinned() is not None for run in batch.runs if run.kinds.any())
    # the page hashes the encoder took from its copies are the ones a digest computes
    assert all(blk.stale.count == 0 for blk in a.blocks.values())
    assert a.digest() == b.digest()
    assert batch == recs                               # `pages` gathers on demand
    a.write("pc.ram", 5, b"later")                     # the stale bit works again after
    b.write("pc.ram", 5, b"later")
    assert a.digest() == b.digest()


_WRITES = {
    "write": lambda ram, i: ram.write("pc.ram", i * 4096 + 7, b"\xee" * 9),
    "fill_page": lambda ram, i: ram.fill_page("pc.ram", i, 0x5A),
    "store_page": lambda ram, i: ram.store_page("pc.ram", i, b"\x11" * 4096),
    "put_pages": lambda ram, i: ram.block("pc.ram").put_pages([i], bytes([3]) * 4096),
    "apply_record": lambda ram, i: ram.apply_record(
        PageRecord("pc.ram", i * 4096, KIND_PAGE, b"\x22" * 4096)),
    "apply_xbzrle": lambda ram, i: ram.apply_record(
        PageRecord("pc.ram", i * 4096, KIND_XBZRLE, xbzrle_encode(
            ram.read_page("pc.ram", i), _flip_first(ram.read_page("pc.ram", i))))),
}


def _flip_first(page: bytes) -> bytes:
    """The page with its first byte changed, whatever it held (a fixed 0x33 changed
    nothing in 1 run in 256, where the random page already began with 0x33)."""
    return bytes([page[0] ^ 0xFF]) + page[1:]


@pytest.mark.parametrize("how", sorted(_WRITES))
def test_a_write_after_collection_pins_the_lent_pages_first(how):
    """However RAM is next written, the batch keeps the contents it was collected with."""
    ram, twin = Ram(LAYOUT), Ram(LAYOUT)
    for i in (1, 2, 9):
        data = os.urandom(100)
        for r in (ram, twin):
            r.write("pc.ram", i * 4096, data)
    batch, recs = ram.collect_dirty_batch(), twin.collect_dirty()
    for i in (2, 9, 3):
        _WRITES[how](ram, i)
    assert all(run.unpinned() is None for run in batch.runs)
    assert _wire(batch) == _wire(recs) and batch == recs
    assert ram.read_page("pc.ram", 2) != recs[1].data          # the RAM did change


def test_closing_the_ram_pins_lent_pages():
    ram, twin = Ram(LAYOUT), Ram(LAYOUT)
    for r in (ram, twin):
        r.write("vga", 4096, b"vga!")
    batch, recs = ram.collect_dirty_batch(), twin.collect_dirty()
    ram.close()
    assert batch == recs and _wire(batch) == _wire(recs)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), writes=st.lists(
    st.tuples(st.sampled_from(sorted(_WRITES)), st.integers(0, 1023)), max_size=8),
    early=st.booleans())
def test_lent_batch_property(seed, writes, early):
    """Random dirtying, then random writes of any kind after collection: the batch,
    and its wire image (encoded before or after the writes), equal the eager list's."""
    a, b = _dirty_twins(seed)
    batch, recs = a.collect_dirty_batch(), b.collect_dirty()
    want = _wire(recs)
    if early:
        assert _wire(batch) == want
    for how, i in writes:
        _WRITES[how](a, i)
    assert _wire(batch) == want and batch == recs


def _received_batch(pvm: Ram) -> PageBatch:
    """What the secondary decodes: the PVM's dirty pages through the wire, in runs."""
    ctx = RamContext.from_blocks(LAYOUT)
    wire = encode_ram_part(pvm.collect_dirty_batch(), ctx)
    rr = RamPartReader(RamContext.from_blocks(LAYOUT))
    rr.feed(wire)
    return rr.records


@settings(max_examples=30, deadline=None)
@given(rounds=st.lists(st.tuples(st.lists(st.integers(0, 1279), max_size=40), st.booleans()),
                       min_size=1, max_size=6))
def test_undo_arena_restores_exactly_across_checkpoints(rounds):
    """Checkpoints that commit (flush) or fail (discard), the undo copies in the
    arena reused between them: after each, cache and SVM hold what a plain copy
    of the committed pages says."""
    svm = Ram(LAYOUT)
    for i in range(0, 1280, 7):
        svm.write("pc.ram" if i < 1024 else "vga", (i % 1024) * 4096, bytes([i % 251 + 1]) * 30)
    cache = RamCache(svm)
    pvm = svm.clone()
    committed = svm.clone()
    for n, (pages, ok) in enumerate(rounds):
        for i in pages:
            name, idx = ("pc.ram", i) if i < 1024 else ("vga", i - 1024)
            pvm.write(name, idx * 4096 + n, bytes([n + 7]) * 50)
        before = cache.cache.digest()
        cache.receive(_received_batch(pvm))
        if ok:
            cache.flush()
            committed.copy_from(pvm)
            assert svm.digest() == committed.digest() == cache.cache.digest()
        else:
            cache.discard()
            assert cache.cache.digest() == before
            pvm.copy_from(committed)            # the PVM side starts again from the last commit
            pvm.clear_dirty()
    assert cache._arena is None or len(cache._arena) <= 1280


def test_undo_arena_is_reused_in_the_steady_state():
    svm = Ram(LAYOUT)
    for i in range(200):
        svm.write("pc.ram", i * 4096, b"x")
    cache = RamCache(svm)
    pvm = svm.clone()
    arenas = []
    for n in range(4):
        for i in range(200):
            pvm.write("pc.ram", i * 4096, bytes([n + 1]) * 9)
        for i in range(0, 200, 2):      # the SVM wrote half of them: those need undo copies
            svm.write("pc.ram", i * 4096, bytes([n + 100]) * 5)
        cache.receive(_received_batch(pvm))
        arenas.append(cache._arena)
        cache.flush()
        assert svm.digest() == pvm.digest()
    assert arenas[1] is not None and arenas[1] is arenas[2] is arenas[3]
