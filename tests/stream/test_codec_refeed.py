"""The codec keeps the start of a page record that a read cut (`_Incremental.refeeds`):
the RAM part's bulk path takes the record whole, in its run, with the next bytes.

So however the reads fall, every full page the codec hands out is a view into
what was read (no page rebuilt record by record at a read's edge), the records
are exactly the whole part's, and a stream that ends inside a record is still
an error that says so."""
from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import dialects
from protocol.core import messages as m
from protocol.core.codec import DecodeError, Decoder
from protocol.migration import streamdecode
from protocol.migration.pages import KIND_PAGE, KIND_ZERO, PageBatch, PageRecord
from protocol.migration.stream import RamContext, RamPartReader, encode_ram_part

D = dialects.QEMU
LAYOUT = [("pc.ram", 1 << 22), ("vga", 1 << 16)]
PAGE = 4096


def _records(n: int, zero_every: int = 0, vga_at: int = -1) -> list[PageRecord]:
    out = []
    for i in range(n):
        block = "vga" if i == vga_at else "pc.ram"
        offset = (i % 16) * PAGE if block == "vga" else i * PAGE
        if zero_every and i % zero_every == zero_every - 1:
            out.append(PageRecord(block, offset, KIND_ZERO))
        else:
            out.append(PageRecord(block, offset, KIND_PAGE, bytes([i % 251 + 1]) * PAGE))
    return out


def _stream(records) -> bytes:
    ram = encode_ram_part(records, RamContext.from_blocks(LAYOUT))
    return D.encode(m.VMSTATE_SEND) + ram + D.encode(m.VMSTATE_SIZE, 1) + b"\x00"


def _decode(data: bytes, cuts, kind=memoryview):
    """Every item the primary's bytes give, fed in pieces at `cuts` (as `kind`: the
    engine hands over memoryviews of its receive buffer)."""
    dec = Decoder(D, "primary", ram_ctx=RamContext.from_blocks(LAYOUT))
    items, last = [], 0
    for c in sorted(set(cuts)) + [len(data)]:
        if c > last:
            dec.feed(kind(data[last:c]))
            last = c
            items += list(dec.items())
    dec.close()
    return items


def _pages_of(items):
    """(records in order, the page arrays the chunks and the part carried)."""
    records, arrays = [], []
    for item in items:
        if isinstance(item, (m.RamChunk, m.RamPart)):
            batch = item.records
            if isinstance(batch, PageBatch):
                arrays += [run.pages for run in batch.runs if run.pages is not None]
            records += list(batch)
    return records, arrays


def _block_starts(recs) -> int:
    return sum(1 for i, r in enumerate(recs) if i == 0 or r.block != recs[i - 1].block)


@pytest.mark.parametrize("small", [streamdecode.SMALL_PART_RECORDS, 5, 0])
@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 40), zero_every=st.sampled_from([0, 0, 3, 7]),
       cuts=st.lists(st.integers(0, 40 * 4200), max_size=10),
       kind=st.sampled_from([memoryview, bytes, bytearray]))
def test_reads_cut_anywhere_give_the_whole_parts_records_as_views(small, n, zero_every, cuts,
                                                                 kind):
    recs = _records(n, zero_every)
    data = _stream(recs)
    # a part's first `small` page headers are checked one by one, the rest with numpy
    with mock.patch.object(streamdecode, "SMALL_PART_RECORDS", small):
        items = _decode(data, [c % (len(data) + 1) for c in cuts], kind)
    got, arrays = _pages_of(items)
    assert got == recs
    # every full page came through the bulk path, a view into what was read, except
    # a block's first record (it names the block: decoded one by one, so copied);
    # never a page copied into a run of its own at a read's edge (as before)
    assert arrays and sum(a.flags.owndata for a in arrays) <= _block_starts(recs)
    assert [i.name for i in items if isinstance(i, m.Message)] == ["vmstate-send", "vmstate-size"]


def test_a_byte_at_a_time_still_decodes_every_record():
    recs = _records(3) + _records(1, vga_at=0) + _records(2, zero_every=2)
    recs = [r for i, r in enumerate(recs) if (r.block, r.offset) not in
            {(x.block, x.offset) for x in recs[:i]}]
    data = _stream(recs)
    got, _arrays = _pages_of(_decode(data, range(len(data))))
    assert got == recs


@pytest.mark.parametrize("keep", [3, 8, 8 + 100, 8 + PAGE - 1])
def test_a_stream_that_ends_inside_a_page_record_is_an_error(keep):
    recs = _records(4)
    data = _stream(recs)
    start = len(D.encode(m.VMSTATE_SEND)) + 5 + (8 + 1 + len("pc.ram") + PAGE)  # record 2
    cut = start + keep
    dec = Decoder(D, "primary", ram_ctx=RamContext.from_blocks(LAYOUT))
    dec.feed(memoryview(data[:cut]))
    got, _arrays = _pages_of(list(dec.items()))
    assert got == recs[:1]              # the first record is whole; the second is not
    with pytest.raises(DecodeError, match=rf"ended in the middle of .*RAM part.* \({keep} byte"):
        dec.close()


def test_the_reader_alone_still_takes_every_byte_it_is_given():
    """Without `refeeds` (a caller that does not keep what feed leaves) the reader
    holds the start of a split record itself, as before."""
    recs = _records(5)
    ram = encode_ram_part(recs, RamContext.from_blocks(LAYOUT))
    rd = RamPartReader(RamContext.from_blocks(LAYOUT))
    assert not rd.refeeds
    used = sum(rd.feed(ram[i:i + 1000]) for i in range(0, len(ram), 1000))
    assert used == len(ram) and rd.done
    assert list(rd.records) == recs


def test_a_refeeding_reader_leaves_the_start_of_a_split_record():
    recs = _records(5)
    ram = encode_ram_part(recs, RamContext.from_blocks(LAYOUT))
    rd = RamPartReader(RamContext.from_blocks(LAYOUT))
    rd.refeeds = True
    first = 5 + 8 + 1 + len("pc.ram") + PAGE          # section start + record 1
    used = rd.feed(ram[:first + 8 + 10])                # + record 2's header and 10 bytes
    assert used == first and not rd.done
    assert rd.feed(ram[first:]) == len(ram) - first and rd.done
    assert list(rd.records) == recs
    runs = rd.records.runs
    # record 1 names its block (decoded alone, copied); 2 to 5 came whole in the
    # second read: one view
    assert [len(r) for r in runs] == [1, 4]
    assert [r.pages.flags.owndata for r in runs] == [True, False]
