"""`ram_part_chunks`: a RAM part encoded chunk by chunk, as a driver streams it,
is byte for byte `encode_ram_part`'s, whatever the chunk size and batch."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.guest.pagediff import xbzrle_encode
from protocol.migration import stream
from protocol.migration.pages import (
    CODE_PAGE,
    CODE_ZERO,
    KIND_XBZRLE,
    PAGE_SIZE,
    PageBatch,
    PageRecord,
    PageRun,
)
from protocol.migration.stream import RamContext, RamPartReader, encode_ram_part, ram_part_chunks
from tests.guestmodel.test_pagebatch import _WRITES, LAYOUT, _dirty_twins

STRIDE = 8 + PAGE_SIZE


@pytest.fixture(autouse=True, scope="module")
def _every_batch_streams():
    """These batches are small: with the limit at 0 the streamed encoder takes them
    (it leaves a batch of at most SMALL_BATCH_RECORDS to `encode_ram_part`)."""
    with mock.patch.object(stream, "SMALL_BATCH_RECORDS", 0):
        yield


def _ctx(cur):
    ctx = RamContext.from_blocks(LAYOUT)
    ctx.current_block = cur
    return ctx


def _streamed(batch, cur, chunk_bytes):
    ctx = _ctx(cur)
    plan = ram_part_chunks(batch, ctx, chunk_bytes)
    assert plan is not None
    size, chunks = plan
    return size, [bytes(c) for c in chunks], ctx


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cur=st.sampled_from([None, "pc.ram", "vga"]),
       chunk_bytes=st.one_of(st.integers(1, 3 * STRIDE), st.integers(3 * STRIDE, 1 << 18)))
def test_streamed_chunks_join_to_the_encoded_part(seed, cur, chunk_bytes):
    a, b = _dirty_twins(seed)
    batch, recs = a.collect_dirty_batch(), b.collect_dirty()
    if not batch or not all(len(r) for r in batch.runs):
        assert ram_part_chunks(batch, _ctx(cur), chunk_bytes) is None
        return
    want_ctx = _ctx(cur)
    want = encode_ram_part(recs, want_ctx)
    size, chunks, ctx = _streamed(batch, cur, chunk_bytes)
    assert b"".join(chunks) == want and size == len(want)
    assert ctx.current_block == want_ctx.current_block
    # whole records per chunk, of about chunk_bytes: under the limit plus one record
    assert all(len(c) < chunk_bytes + STRIDE + 265 for c in chunks[1:-1])
    # and the decoder takes them one at a time
    rd = RamPartReader(_ctx(cur))
    for c in chunks:
        assert rd.feed(c) == len(c)
    assert rd.done and rd.records == recs


def test_a_write_before_the_chunks_are_read_does_not_change_them():
    """The chunks read guest RAM lazily; a write in between pins the page first."""
    for how in sorted(_WRITES):
        a, b = _dirty_twins(5)
        batch, recs = a.collect_dirty_batch(), b.collect_dirty()
        want = encode_ram_part(recs, _ctx(None))
        plan = ram_part_chunks(batch, _ctx(None), 2 * STRIDE)
        for i in (0, 3, 7, 200):
            _WRITES[how](a, i)
        assert b"".join(bytes(c) for c in plan[1]) == want, how


def test_a_big_uniform_part_comes_in_chunks_of_the_limit():
    n = 1000
    pages = np.repeat((np.arange(n) & 0xFF).astype(np.uint8), PAGE_SIZE).reshape(n, PAGE_SIZE)
    batch = PageBatch([PageRun("pc.ram", np.arange(n) * PAGE_SIZE,
                               np.full(n, CODE_PAGE, dtype=np.uint8), pages)])
    size, chunks, _ctx_after = _streamed(batch, None, 64 * STRIDE)
    assert len(chunks) == -(-n // 64)
    assert b"".join(chunks) == encode_ram_part(batch, _ctx(None)) and size == sum(map(len, chunks))


def test_what_the_bulk_encoder_does_not_take_is_not_streamed():
    ctx = _ctx(None)
    recs = [PageRecord("pc.ram", 0, KIND_XBZRLE, xbzrle_encode(bytes(PAGE_SIZE), b"\x01"
                                                                + bytes(PAGE_SIZE - 1)))]
    assert ram_part_chunks(recs, ctx) is None                       # a list
    assert ram_part_chunks(PageBatch([]), ctx) is None              # empty
    odd = PageBatch([PageRun("nowhere", [0], [CODE_ZERO])])         # an unknown block
    assert ram_part_chunks(odd, ctx) is None and ctx.current_block is None


def test_a_small_batch_is_encoded_whole_and_a_bigger_one_streams():
    n = 12
    pages = np.arange(n * PAGE_SIZE, dtype=np.uint64).astype(np.uint8).reshape(n, PAGE_SIZE)
    batch = PageBatch([PageRun("pc.ram", np.arange(n) * PAGE_SIZE,
                               np.full(n, CODE_PAGE, dtype=np.uint8), pages)])
    with mock.patch.object(stream, "SMALL_BATCH_RECORDS", n):
        ctx = _ctx(None)
        assert ram_part_chunks(batch, ctx) is None and ctx.current_block is None
        whole = encode_ram_part(batch, _ctx(None))          # the record-by-record encoder
    with mock.patch.object(stream, "SMALL_BATCH_RECORDS", n - 1):
        size, chunks, ctx = _streamed(batch, None, 4 * STRIDE)
    assert b"".join(chunks) == whole and size == len(whole) and ctx.current_block == "pc.ram"
    assert whole == encode_ram_part(list(batch), _ctx(None))


@pytest.mark.parametrize("chunk_bytes", [1, STRIDE, 10 * STRIDE])
def test_mixed_zero_and_page_runs_over_two_blocks(chunk_bytes):
    rng = np.random.default_rng(3)
    runs = []
    for block, count in (("pc.ram", 37), ("vga", 11), ("pc.ram", 5)):
        kinds = rng.integers(0, 2, count).astype(np.uint8)       # ZERO or PAGE
        offs = np.sort(rng.choice(200, count, replace=False)) * PAGE_SIZE
        pages = rng.integers(0, 256, (count, PAGE_SIZE), dtype=np.uint8)
        fills = rng.integers(0, 256, count).astype(np.uint8)
        runs.append(PageRun(block, offs, kinds, pages, fills=fills))
    batch = PageBatch(runs)
    want_ctx = _ctx("vga")
    want = encode_ram_part(list(batch), want_ctx)
    size, chunks, ctx = _streamed(batch, "vga", chunk_bytes)
    assert b"".join(chunks) == want and size == len(want)
    assert ctx.current_block == want_ctx.current_block == "pc.ram"


@pytest.mark.parametrize("borrow", [False, True])
def test_decoded_page_runs_are_read_only_views(borrow):
    """The decoder's bulk path hands out strided views of its input: a consumer
    cannot write through them into a buffer it does not own."""
    n = 300
    pages = np.arange(n * PAGE_SIZE, dtype=np.uint32).astype(np.uint8).reshape(n, PAGE_SIZE)
    batch = PageBatch([PageRun("pc.ram", np.arange(n) * PAGE_SIZE,
                               np.full(n, CODE_PAGE, dtype=np.uint8), pages)])
    wire = bytearray(encode_ram_part(batch, _ctx(None)))
    rd = RamPartReader(_ctx(None), borrow=borrow)
    assert rd.feed(wire) == len(wire) and rd.done
    got = rd.records
    assert got == list(batch)
    for run in got.runs:
        assert not run.pages.flags.writeable
        with pytest.raises(ValueError):
            run.pages[0, 0] = 1
