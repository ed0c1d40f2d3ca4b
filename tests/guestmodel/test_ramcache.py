"""The secondary's RAM cache: flush set (scenario 22), B6 count, discard, B7, B11."""
from __future__ import annotations

import pytest

from protocol.guest.ram import Ram
from protocol.guest.ramcache import RamCache
from protocol.migration.pages import KIND_PAGE, PAGE_SIZE, PageRecord

GIB = 1 << 30
NPAGES = 256


def twins() -> tuple[Ram, Ram, RamCache]:
    pvm = Ram([("pc.ram", NPAGES * PAGE_SIZE)])
    for index in range(0, NPAGES, 3):
        pvm.fill_page("pc.ram", index, index % 251 + 1)
    svm = Ram(pvm.layout())
    for rec in pvm.migration_pass():          # initial migration writes RAM (and cache)
        svm.apply_record(rec)
    cache = RamCache(svm)
    assert cache.cache.diff_pages(svm) == {} and cache.pending() == 0
    return pvm, svm, cache


def test_flush_set_scenario_22_and_b6_count():
    pvm, svm, cache = twins()
    a, b, c, elsewhere = 10, 20, 30, 40
    before_elsewhere = svm.read_page("pc.ram", elsewhere)
    svm.fill_page("pc.ram", a, 0xAA)          # the SVM runs and dirties A and B
    svm.fill_page("pc.ram", b, 0xBB)
    pvm.fill_page("pc.ram", b, 0x0B)          # the PVM dirties B and C
    pvm.fill_page("pc.ram", c, 0x0C)
    records = pvm.collect_dirty()
    assert sorted(r.page_index for r in records) == [b, c]
    cache.receive(records)
    assert svm.read_page("pc.ram", c) != pvm.read_page("pc.ram", c)   # cache only
    assert cache.flush_set() == {"pc.ram": [a, b, c]}
    copied = cache.flush()
    assert copied == 3 == cache.last_flush_pages == cache.pages_copied_total
    assert copied != NPAGES
    for page in (a, b, c):
        assert svm.read_page("pc.ram", page) == pvm.read_page("pc.ram", page)
    assert svm.read_page("pc.ram", elsewhere) == before_elsewhere
    assert pvm.diff_pages(svm) == {}
    assert cache.pending() == 0 and svm.dirty_count() == 0
    assert cache.flush() == 0                 # nothing new: nothing copied (B6)


def test_v11_flush_copies_pvm_sent_pages_only():
    pvm, svm, _ = twins()
    cache = RamCache(svm, include_svm_dirty=False)
    svm.fill_page("pc.ram", 1, 0xAA)
    pvm.fill_page("pc.ram", 2, 0x22)
    cache.receive(pvm.collect_dirty())
    assert cache.flush() == 1
    assert svm.read_page("pc.ram", 1) == b"\xaa" * PAGE_SIZE   # not reverted in v11


def test_partial_checkpoint_discarded():
    pvm, svm, cache = twins()
    digest = svm.digest()
    pvm.fill_page("pc.ram", 5, 0x55)
    pvm.fill_page("pc.ram", 6, 0x66)
    records = pvm.collect_dirty()
    cache.receive(records[:1])                # the PVM died mid-stream
    assert cache.pending() == 1
    assert cache.discard() == 1
    assert svm.digest() == digest and cache.pending() == 0
    assert cache.cache.diff_pages(svm) == {}  # the cache is back at the last checkpoint
    assert cache.flush() == 0 and svm.digest() == digest


def test_offsets_above_4gib_through_the_cache():
    pvm = Ram([("pc.ram", 5 * GIB)])
    svm = Ram(pvm.layout())
    cache = RamCache(svm)
    offset = 4 * GIB + 8 * 1024
    pvm.write("pc.ram", offset, b"B7 regression")
    records = pvm.collect_dirty()
    assert [r.offset for r in records] == [offset] and records[0].offset >= 2**32
    cache.receive(records)
    assert cache.bitmaps["pc.ram"].indices() == [offset // PAGE_SIZE]
    assert cache.flush() == 1
    assert svm.read("pc.ram", offset, 13) == b"B7 regression"
    assert pvm.diff_pages(svm) == {}
    for ram in (pvm, svm, cache.cache):
        ram.close()


def test_cache_bypass_b11_leaves_cache_stale():
    pvm, svm, cache = twins()
    pvm.fill_page("pc.ram", 9, 0x99)
    cache.receive(pvm.collect_dirty(), bypass_cache=True)
    assert cache.diff_from_ram() == {"pc.ram": [9]}
    svm.fill_page("pc.ram", 9, 0x01)          # the SVM touches the page ...
    cache.flush()                             # ... and the flush restores the stale copy
    assert pvm.diff_pages(svm) == {"pc.ram": [9]}


def test_bad_records_raise_value_error():
    _, _, cache = twins()
    with pytest.raises(ValueError, match="unknown RAM block"):
        cache.receive([PageRecord("nope", 0, KIND_PAGE, bytes(PAGE_SIZE))])
    with pytest.raises(ValueError, match="outside"):
        cache.receive([PageRecord("pc.ram", NPAGES * PAGE_SIZE, KIND_PAGE, bytes(PAGE_SIZE))])
