"""Fast paths of the checkpoint: numpy bitmap ops, incremental digest, bulk decode."""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.guest.ram import Bitmap, Ram
from protocol.guest.ramcache import RamCache
from protocol.migration.pages import KIND_PAGE, KIND_ZERO, PAGE_SIZE, PageBatch, PageRecord
from protocol.migration.stream import RamContext, encode_ram_part
from protocol.migration.streamdecode import RamPartReader

MIB = 1 << 20


def test_bitmap_indices_and_set_many():
    bm = Bitmap(1000)
    want = sorted(random.Random(1).sample(range(1000), 77))
    bm.set_many(want[::-1])
    assert bm.indices() == want and bm.count == 77
    missing = next(i for i in range(1000) if i not in want)
    assert bm.test_many([want[0], missing]).tolist() == [True, False]
    other = Bitmap(1000)
    other.set(999)
    bm.update(other)
    assert bm.indices() == want + ([999] if 999 not in want else []) and bm.test(999)


@settings(max_examples=60, deadline=None)
@given(nbits=st.integers(1, 3000), data=st.data())
def test_bitmap_union_array_is_the_sorted_union(nbits, data):
    a_bits = data.draw(st.lists(st.integers(0, nbits - 1), max_size=400))
    b_bits = data.draw(st.lists(st.integers(0, nbits - 1), max_size=400))
    a, b = Bitmap(nbits), Bitmap(nbits)
    a.set_many(a_bits)
    b.set_many(b_bits)
    want = sorted(set(a_bits) | set(b_bits))
    assert a.union_array(b).tolist() == want == b.union_array(a).tolist()
    assert a.indices() == sorted(set(a_bits)) and b.indices() == sorted(set(b_bits))


def test_incremental_digest_tracks_every_write_path():
    a, b = Ram([("pc.ram", 4 * MIB)]), Ram([("pc.ram", 4 * MIB)])
    assert a.digest() == b.digest()
    a.write("pc.ram", 5 * PAGE_SIZE + 3, b"x")
    d1 = a.digest()
    assert d1 != b.digest()
    b.store_page("pc.ram", 5, a.read_page("pc.ram", 5))
    assert a.digest() == b.digest()
    b.block("pc.ram").put_pages([5, 7], bytes(PAGE_SIZE) + b"\1" * PAGE_SIZE)
    assert a.digest() != b.digest()                 # page 5 zeroed, page 7 set
    a.write("pc.ram", 5 * PAGE_SIZE + 3, b"\0")     # now a's page 5 is zero too
    a.fill_page("pc.ram", 7, 1)
    assert a.digest() == b.digest() and a.diff_pages(b) == {}
    a.write("pc.ram", 7 * PAGE_SIZE + 4095, b"\x80")   # one high bit at the page end
    assert a.digest() != b.digest()


def test_bulk_decode_equals_split_decode():
    rng = random.Random(7)
    blocks = [("pc.ram", 4 * MIB), ("vga.vram", 1 * MIB)]
    recs = []
    for k in range(40):
        name = "pc.ram" if k % 7 else "vga.vram"
        off = rng.randrange(0, (1 if name == "vga.vram" else 4) * MIB // PAGE_SIZE) * PAGE_SIZE
        if k % 5 == 0:
            recs.append(PageRecord(name, off, KIND_ZERO, b"", 0))
        else:
            recs.append(PageRecord(name, off, KIND_PAGE, rng.randbytes(PAGE_SIZE)))
    data = encode_ram_part(recs, RamContext.from_blocks(blocks)) + b"\x99tail"
    whole = RamPartReader(RamContext.from_blocks(blocks))
    assert whole.feed(data) == len(data) - 5 and whole.done
    split = RamPartReader(RamContext.from_blocks(blocks))
    pos = 0
    while not split.done:
        step = rng.randrange(1, 9000)
        pos += split.feed(data[pos:pos + step])
    assert whole.records == recs == split.records
    assert pos == len(data) - 5
    assert all(r.data.readonly for r in whole.records if r.kind == KIND_PAGE)


def test_bulk_receive_undo_and_flush():
    svm = Ram([("pc.ram", 4 * MIB)])
    svm.write("pc.ram", 3 * PAGE_SIZE, b"old")
    cache = RamCache(svm)
    before = svm.digest()
    recs = [PageRecord("pc.ram", i * PAGE_SIZE, KIND_PAGE, bytes([i]) * PAGE_SIZE)
            for i in (3, 9, 3)]
    assert cache.receive(recs) == 3 and cache.pending() == 2
    cache.discard()
    assert cache.cache.digest() == before and svm.digest() == before
    cache.receive(recs)
    assert cache.flush() == 2
    assert svm.read_page("pc.ram", 3) == bytes([3]) * PAGE_SIZE and cache.diff_from_ram() == {}


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(st.sampled_from([KIND_PAGE, KIND_PAGE, KIND_ZERO]), min_size=1,
                      max_size=60),
       chunk=st.one_of(st.sampled_from([2 * (PAGE_SIZE + 16), 3 * PAGE_SIZE + 5, 64 * 1024]),
                       st.integers(7, 3 * PAGE_SIZE)))
def test_a_part_read_in_pieces_comes_as_batches_equal_to_the_records(kinds, chunk):
    """A read that ends inside a record hands that record to the incremental
    parser.  Each piece's records still come as one PageBatch (the split records
    as small runs of their own) whenever the piece held a whole record, and
    together they equal the records a whole-part decode gives."""
    def ctx():
        return RamContext(blocks={"pc.ram": 4 * MIB})
    rng = random.Random(len(kinds) * chunk)
    recs = [PageRecord("pc.ram", i * PAGE_SIZE, k,
                       bytes([rng.randrange(1, 256)]) * PAGE_SIZE if k == KIND_PAGE else b"")
            for i, k in enumerate(kinds)]
    wire = encode_ram_part(recs, ctx())
    whole = RamPartReader(ctx())
    whole.feed(wire)
    assert list(whole.records) == recs
    reader, got = RamPartReader(ctx()), []
    for at in range(0, len(wire), chunk):
        piece = wire[at:at + chunk]
        reader.feed(piece)
        batch = reader.take_records()
        if len(piece) >= 2 * (PAGE_SIZE + 16):     # it holds a whole record: a run
            assert isinstance(batch, PageBatch), type(batch)
        got += list(batch)
    assert reader.done and got == recs
