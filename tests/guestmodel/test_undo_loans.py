"""The RAM cache's undo log copies only pages where the cache differs from SVM RAM;
elsewhere SVM RAM lends them (copied out only if SVM RAM is written first)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.guest.ram import Ram, RamPages
from protocol.guest.ramcache import RamCache
from protocol.migration.pages import PageBatch
from protocol.migration.stream import RamContext, RamPartReader, encode_ram_part

LAYOUT = [("pc.ram", 1 << 20), ("vga", 256 << 10)]
NPAGES = {"pc.ram": 256, "vga": 64}


def _received(pvm: Ram) -> PageBatch:
    wire = encode_ram_part(pvm.collect_dirty_batch(), RamContext.from_blocks(LAYOUT))
    rr = RamPartReader(RamContext.from_blocks(LAYOUT))
    rr.feed(wire)
    batch = rr.records
    assert isinstance(batch, PageBatch)
    return batch


def _pair() -> tuple[Ram, Ram, RamCache]:
    svm = Ram(LAYOUT)
    for i in range(0, 256, 3):
        svm.write("pc.ram", i * 4096, bytes([i % 251 + 1]) * 40)
    cache = RamCache(svm)
    return svm.clone(), svm, cache


def _kinds(cache: RamCache) -> list[str]:
    out = []
    for _, _, old in cache._undo_runs:
        out.append("zero" if old is None else "lent" if isinstance(old, RamPages) else "copy")
    return out


def test_idle_svm_copies_nothing_and_discard_restores_from_svm_ram():
    pvm, svm, cache = _pair()
    for i in range(0, 256, 2):               # touched (held) and never-touched pages
        pvm.write("pc.ram", i * 4096 + 7, b"pvm")
    before = cache.cache.digest()
    cache.receive(_received(pvm))
    assert sorted(set(_kinds(cache))) == ["lent", "zero"] and cache._arena is None
    lent = [old for _, _, old in cache._undo_runs if isinstance(old, RamPages)]
    assert lent and not any(p.pinned for p in lent)
    cache.discard()
    assert cache.cache.digest() == before and not cache.cache.diff_pages(svm)


def test_svm_dirty_pages_are_copied_not_lent():
    pvm, svm, cache = _pair()
    svm.write("pc.ram", 3 * 4096, b"svm's own")          # SVM dirty: cache != SVM RAM
    pvm.write("pc.ram", 3 * 4096, b"pvm")
    pvm.write("pc.ram", 6 * 4096, b"pvm")
    before = cache.cache.digest()
    cache.receive(_received(pvm))
    assert sorted(_kinds(cache)) == ["copy", "lent"]
    cache.discard()
    assert cache.cache.digest() == before


def test_a_write_to_svm_ram_before_the_discard_pins_the_loan():
    pvm, svm, cache = _pair()
    pvm.write("pc.ram", 9 * 4096, b"pvm")
    before = cache.cache.digest()
    cache.receive(_received(pvm))
    (loan,) = [old for _, _, old in cache._undo_runs if isinstance(old, RamPages)]
    svm.write("pc.ram", 9 * 4096, b"the SVM ran")          # SVM RAM changes under the loan
    assert loan.pinned
    cache.discard()
    assert cache.cache.digest() == before


def test_the_flush_drops_the_loans_before_writing_svm_ram():
    pvm, svm, cache = _pair()
    for i in range(0, 256, 3):
        pvm.write("pc.ram", i * 4096, b"new")
    cache.receive(_received(pvm))
    loans = [old for _, _, old in cache._undo_runs if isinstance(old, RamPages)]
    assert loans
    svm_block = svm.blocks["pc.ram"]
    cache.flush()
    assert not cache._undo_runs and all(ref() is None for ref in svm_block._unpinned)
    assert svm.digest() == pvm.digest()


def test_a_bypassed_page_is_copied_then_equal_again_after_the_flush():
    pvm, svm, cache = _pair()
    pvm.write("pc.ram", 12 * 4096, b"bypass")
    cache.receive(pvm.collect_dirty(), bypass_cache=True)   # B11: SVM RAM, not the cache
    assert cache.diverged["pc.ram"].indices() == [12]
    pvm.write("pc.ram", 12 * 4096, b"again")
    before = cache.cache.digest()
    cache.receive(_received(pvm))
    assert _kinds(cache) == ["copy"]
    cache.discard()
    assert cache.cache.digest() == before
    pvm.write("pc.ram", 12 * 4096, b"third")
    cache.receive(_received(pvm))
    cache.flush()
    assert cache.diverged["pc.ram"].count == 0 and not cache.diff_from_ram()


_OPS = st.one_of(
    st.tuples(st.just("pvm"), st.sampled_from(sorted(NPAGES)), st.integers(0, 3)),
    st.tuples(st.just("svm"), st.sampled_from(sorted(NPAGES)), st.integers(0, 3)),
    st.tuples(st.just("bypass"), st.sampled_from(sorted(NPAGES)), st.integers(0, 3)),
    st.tuples(st.just("receive"), st.just(""), st.just(0)),
    st.tuples(st.just("receive-list"), st.just(""), st.just(0)),
    st.tuples(st.just("svm-late"), st.sampled_from(sorted(NPAGES)), st.integers(0, 3)),
    st.tuples(st.just("discard"), st.just(""), st.just(0)),
    st.tuples(st.just("flush"), st.just(""), st.just(0)),
)


@settings(max_examples=120, deadline=None)
@given(ops=st.lists(_OPS, max_size=30), v11=st.booleans())
def test_discard_always_returns_the_cache_to_its_last_complete_state(ops, v11):
    """Any interleaving of PVM and SVM writes, B11 bypasses, receives (batches and
    lists of records, mixed within a checkpoint), SVM writes
    while a checkpoint is half in, discards and flushes: a discard leaves the cache
    exactly as it was before the checkpoint's first receive (checked against a
    plain snapshot), and a flush leaves SVM RAM holding every received page."""
    svm = Ram(LAYOUT)
    for name, i in ((name, i) for name in NPAGES for i in range(0, 4, 2)):
        svm.write(name, i * 4096, bytes([i + 1]) * 30)      # half the pages held
    cache = RamCache(svm, include_svm_dirty=not v11)
    pvm = svm.clone()
    snapshot = cache.cache.digest()          # the cache at the last complete checkpoint
    open_ckpt = False
    for n, (op, name, page) in enumerate(ops):
        page %= NPAGES[name] if name else 1
        if op == "pvm":
            pvm.write(name, page * 4096 + n, bytes([0x40 + n % 60]) * 20)
        elif op == "svm" or (op == "svm-late" and open_ckpt):
            svm.write(name, page * 4096 + n, bytes([0x80 + n % 120]) * 9)
        elif op == "bypass" and not open_ckpt:
            pvm.write(name, page * 4096 + 1, b"bypassed")
            cache.receive(pvm.collect_dirty(), bypass_cache=True)
        elif op in ("receive", "receive-list"):
            if not open_ckpt:
                snapshot = cache.cache.digest()
            # a batch off the wire, or a list of records (the per-record paths)
            cache.receive(_received(pvm) if op == "receive" else pvm.collect_dirty())
            open_ckpt = True
        elif op == "discard":
            cache.discard()
            assert cache.cache.digest() == snapshot
            open_ckpt = False
        elif op == "flush":
            cache.flush()
            assert not cache.pending()
            open_ckpt = False
            snapshot = cache.cache.digest()
        if not open_ckpt:
            # what the loans rest on: outside the SVM's dirty log and the bypassed
            # pages, the cache equals SVM RAM between checkpoints
            for block, pages in cache.diff_from_ram().items():
                known = set(cache.diverged[block].indices()) | set(svm.blocks[block].dirty.indices())
                assert set(pages) <= known
    if open_ckpt:
        cache.discard()
        assert cache.cache.digest() == snapshot


def test_populate_makes_the_cache_resident_and_changes_nothing():
    pvm, svm, cache = _pair()
    before = cache.cache.digest()
    done = cache.populate()
    assert done in (0, sum(size for _, size in LAYOUT))     # 0: a kernel without it
    assert cache.cache.digest() == before and not cache.cache.diff_pages(svm)
    pvm.write("pc.ram", 5 * 4096, b"after")
    cache.receive(_received(pvm))
    cache.flush()
    assert svm.digest() == pvm.digest()


def test_a_batch_of_several_runs_of_one_block_is_the_records_one_by_one():
    """A decoded checkpoint comes in several runs per block (bookkeeping done once
    for them all): a page in two runs, zero records and pages the SVM dirtied
    (copied into the undo log) or the cache never held.  The cache then holds what
    the records received one by one leave, a discard restores it as it was, and a
    flush writes the last copy of each page."""
    import numpy as np

    from protocol.migration.pages import CODE_PAGE, CODE_ZERO, PageRun

    def run(pages, kinds, seed):
        data = np.full((len(pages), 4096), seed, dtype=np.uint8)
        return PageRun("pc.ram", np.asarray(pages) * 4096, kinds, data)

    runs = [run([5, 9], [CODE_PAGE, CODE_PAGE], 1),
            run([3, 5, 200], [CODE_PAGE, CODE_ZERO, CODE_PAGE], 2),
            run([1, 6, 9], [CODE_PAGE] * 3, 3)]
    results = []
    for as_batch in (True, False):
        pvm, svm, cache = _pair()
        svm.write("pc.ram", 6 * 4096, b"svm wrote here")       # an undo copy
        before = cache.cache.digest()
        batch = PageBatch(runs)
        assert cache.receive(batch if as_batch else list(batch)) == 8
        results.append((cache.cache.digest(), cache.pending()))
        cache.discard()
        assert cache.cache.digest() == before
        cache.receive(batch)
        assert cache.flush() == 6                      # page 6 is also the SVM's own
        assert svm.read_page("pc.ram", 9) == bytes([3]) * 4096
        assert svm.read_page("pc.ram", 5) == bytes(4096) and not cache.diff_from_ram()
    assert results[0] == results[1] and results[0][1] == 6
