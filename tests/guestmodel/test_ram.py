"""RAM blocks, dirty bitmap, page records, digests (incl. offsets >= 2**32, B7)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.guest import pagediff
from protocol.guest.ram import ZERO_PAGE, Bitmap, Ram
from protocol.migration.pages import KIND_PAGE, KIND_XBZRLE, KIND_ZERO, PAGE_SIZE

GIB = 1 << 30


def small_ram() -> Ram:
    return Ram([("pc.ram", 1 << 20), ("vga", 64 * 1024)])


def test_bitmap_set_clear_iterate():
    bm = Bitmap(1000)
    assert bm.set(3) and bm.set(999) and bm.set(8)
    assert not bm.set(3)
    assert bm.count == 3 and bm.indices() == [3, 8, 999]
    assert bm.clear(8) and not bm.clear(8)
    assert list(bm) == [3, 999]
    bm.clear_all()
    assert bm.count == 0 and bm.indices() == []


def test_write_dirties_every_page_it_spans():
    ram = small_ram()
    ram.write("pc.ram", PAGE_SIZE - 2, b"abcd")          # spans pages 0 and 1
    assert ram.block("pc.ram").dirty.indices() == [0, 1]
    assert ram.read("pc.ram", PAGE_SIZE - 2, 4) == b"abcd"


def test_write_out_of_range_and_unknown_block():
    ram = small_ram()
    with pytest.raises(ValueError, match="outside"):
        ram.write("pc.ram", (1 << 20) - 1, b"xx")
    with pytest.raises(ValueError, match="unknown RAM block"):
        ram.write("nope", 0, b"x")
    with pytest.raises(ValueError, match="multiple"):
        Ram([("odd", 1000)])


def test_collect_dirty_kinds_and_clears():
    ram = small_ram()
    ram.fill_page("pc.ram", 2, 0)
    ram.fill_page("pc.ram", 5, 0xAB)
    ram.write("vga", 0, b"hi")
    recs = ram.collect_dirty()
    kinds = {(r.block, r.page_index): r.kind for r in recs}
    assert kinds == {("pc.ram", 2): KIND_ZERO, ("pc.ram", 5): KIND_PAGE, ("vga", 0): KIND_PAGE}
    page5 = next(r for r in recs if r.page_index == 5 and r.block == "pc.ram")
    assert page5.data == b"\xab" * PAGE_SIZE
    assert ram.dirty_count() == 0 and ram.collect_dirty() == []


def test_collect_resumes_after_last_block_like_qemu():
    ram = small_ram()
    ram.write("vga", 0, b"x")
    ram.write("pc.ram", 0, b"y")
    first = ram.collect_dirty()
    assert [r.block for r in first] == ["pc.ram", "vga"]   # fresh cursor: block order
    ram.write("vga", 0, b"x")
    ram.write("pc.ram", 0, b"y")
    # the last pass ended in vga, so the next one starts after it: pc.ram, then vga
    assert [r.block for r in ram.collect_dirty()] == ["pc.ram", "vga"]
    ram.write("pc.ram", PAGE_SIZE, b"z")
    ram.collect_dirty()                                      # ends in pc.ram
    ram.write("vga", 0, b"x")
    ram.write("pc.ram", 0, b"y")
    assert [r.block for r in ram.collect_dirty()] == ["vga", "pc.ram"]


def test_xbzrle_records_decode_to_the_page():
    ram = small_ram()
    ram.fill_page("pc.ram", 1, 0x11)
    (first,) = ram.collect_dirty(xbzrle=True)
    assert first.kind == KIND_PAGE                       # not in the cache yet
    ram.write("pc.ram", PAGE_SIZE + 100, b"\x22" * 10)
    (delta,) = ram.collect_dirty(xbzrle=True)
    assert delta.kind == KIND_XBZRLE and len(delta.data) < 64
    assert pagediff.xbzrle_decode(delta.data, first.data) == ram.read_page("pc.ram", 1)
    ram.write("pc.ram", PAGE_SIZE + 100, b"\x22" * 10)   # same bytes: unchanged page
    assert ram.collect_dirty(xbzrle=True) == []          # QEMU skips it
    ram.write("pc.ram", PAGE_SIZE, bytes(range(256)) * 16)  # too different: full page
    (full,) = ram.collect_dirty(xbzrle=True)
    assert full.kind == KIND_PAGE


def test_apply_record_round_trip_and_diff():
    a, b = small_ram(), small_ram()
    a.fill_page("pc.ram", 7, 9)
    a.write("vga", 5, b"text")
    for rec in a.collect_dirty():
        b.apply_record(rec)
    assert a.diff_pages(b) == {} and a.digest() == b.digest()
    b.write("pc.ram", 7 * PAGE_SIZE, b"\0")
    assert a.diff_pages(b) == {"pc.ram": [7]}
    assert a.digest() != b.digest()


@pytest.mark.parametrize("dirty", [False, True])
def test_an_xbzrle_record_applied_in_place_marks_the_page(dirty):
    """Decoded in place into the block's memory: the page must count as written
    (touched, and stale for the digest's page hashes) and, if asked, dirty."""
    src, dst = small_ram(), small_ram()
    src.fill_page("pc.ram", 3, 0x11)
    for rec in src.collect_dirty(xbzrle=True):
        dst.apply_record(rec)
    before = dst.digest()                    # page hashes now fresh: nothing stale
    blk = dst.block("pc.ram")
    blk.dirty.clear_all()
    assert not blk.stale.count
    src.write("pc.ram", 3 * PAGE_SIZE + 7, b"\x22" * 5)
    (delta,) = src.collect_dirty(xbzrle=True)
    assert delta.kind == KIND_XBZRLE
    dst.apply_record(delta, dirty=dirty)
    assert dst.read_page("pc.ram", 3) == src.read_page("pc.ram", 3)
    assert blk.stale.indices() == [3] and 3 in blk.touched.indices()
    assert blk.dirty.indices() == ([3] if dirty else [])
    assert dst.digest() != before and dst.digest() == src.digest()


def test_digest_ignores_touched_zero_pages():
    a, b = small_ram(), small_ram()
    a.fill_page("pc.ram", 3, 0)
    assert a.digest() == b.digest() and a.diff_pages(b) == {}


def test_five_gib_block_offsets_above_4gib():
    ram = Ram([("pc.ram", 5 * GIB)])
    offset = 4 * GIB + 8 * 1024
    ram.write("pc.ram", offset, b"above 4 GiB")
    ram.fill_page("pc.ram", (5 * GIB) // PAGE_SIZE - 1, 0x5A)      # the very last page
    recs = ram.collect_dirty()
    assert [r.offset for r in recs] == [offset, 5 * GIB - PAGE_SIZE]
    assert all(r.offset >= 2**32 for r in recs)
    assert recs[0].page_index == offset // PAGE_SIZE
    assert recs[0].data.startswith(b"above 4 GiB")
    twin = Ram([("pc.ram", 5 * GIB)])
    for rec in recs:
        twin.apply_record(rec)
    assert ram.diff_pages(twin) == {} and ram.digest() == twin.digest()
    ram.close()
    twin.close()


def test_zero_page_constant():
    assert ZERO_PAGE == bytes(PAGE_SIZE)


@settings(max_examples=80, deadline=None)
@given(nbits=st.integers(1, 3000), data=st.data())
def test_bitmap_bulk_ops_match_a_set(nbits, data):
    """index_array (sparse and dense paths), set_many, clear_many, test_many and
    count against a plain set, at any density."""
    every = data.draw(st.sampled_from([1, 2, 3, 10, 97, 1000]))
    start = data.draw(st.integers(0, nbits - 1))
    bm, ref = Bitmap(nbits), set()
    idx = list(range(start, nbits, every))
    bm.set_many(idx)
    ref.update(idx)
    drop = data.draw(st.lists(st.integers(0, nbits - 1), max_size=50))
    bm.clear_many(drop)
    ref.difference_update(drop)
    assert bm.index_array().tolist() == sorted(ref) and bm.count == len(ref)
    probe = data.draw(st.lists(st.integers(0, nbits - 1), max_size=30))
    assert bm.test_many(probe).tolist() == [p in ref for p in probe]
    with pytest.raises(IndexError):
        bm.clear_many([nbits])
