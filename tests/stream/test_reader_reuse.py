"""One RamPartReader per connection, reused across checkpoints (`reset`), and its
fast path for an empty RAM part: the same records, counts, contexts and errors as
a fresh reader per part."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.migration.pages import KIND_PAGE, KIND_ZERO, PageRecord
from protocol.migration.stream import (
    RamContext,
    RamPartReader,
    StreamError,
    encode_ram_part,
)

LAYOUT = [("pc.ram", 1 << 20), ("vga", 1 << 16)]


def _records(spec) -> list[PageRecord]:
    out = []
    for block, page, zero in spec:
        if zero:
            out.append(PageRecord(block, page * 4096, KIND_ZERO, b"", 0))
        else:
            out.append(PageRecord(block, page * 4096, KIND_PAGE, bytes([page % 250 + 1]) * 4096))
    return out


def _feed(reader: RamPartReader, wire: bytes, cuts: list[int]) -> int:
    used, pos = 0, 0
    for cut in sorted({c % (len(wire) + 1) for c in cuts}) + [len(wire)]:
        if cut > pos:
            used += reader.feed(wire[pos:cut])
            pos = cut
    return used


_SPEC = st.lists(st.tuples(st.sampled_from(["pc.ram", "vga"]), st.integers(0, 15),
                           st.booleans()), max_size=6,
                 unique_by=lambda t: (t[0], t[1]))


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.tuples(_SPEC, st.lists(st.integers(0, 10**6), max_size=3)),
                      min_size=1, max_size=5))
def test_a_reused_reader_decodes_like_fresh_ones(parts):
    enc = RamContext.from_blocks(LAYOUT)
    ctx_reused, ctx_fresh = RamContext.from_blocks(LAYOUT), RamContext.from_blocks(LAYOUT)
    reused = RamPartReader(ctx_reused)
    at = 0
    for k, (spec, cuts) in enumerate(parts):
        wire = encode_ram_part(_records(spec), enc)
        if k:
            reused.reset(base_offset=at)
        fresh = RamPartReader(ctx_fresh, base_offset=at)
        assert _feed(reused, wire, cuts) == _feed(fresh, wire, cuts) == len(wire)
        assert reused.done and fresh.done
        assert list(reused.records) == list(fresh.records) == _records(spec)
        assert (reused.pages, reused.kind_counts, reused.block_counts) == \
            (fresh.pages, fresh.kind_counts, fresh.block_counts)
        assert reused.consumed == fresh.consumed == len(wire)
        assert reused.progress_bytes() == fresh.progress_bytes()
        assert ctx_reused.current_block == ctx_fresh.current_block == enc.current_block
        at += len(wire)


def test_the_empty_part_fast_path_matches_the_parser():
    ctx = RamContext.from_blocks(LAYOUT)
    empty = encode_ram_part([], RamContext.from_blocks(LAYOUT))
    assert len(empty) == 19
    fast = RamPartReader(ctx, base_offset=100)
    assert fast.feed(empty + b"tail") == 19 and fast.done
    slow = RamPartReader(RamContext.from_blocks(LAYOUT), base_offset=100)
    for i in range(len(empty)):                # byte by byte: the parser, not the fast path
        slow.feed(empty[i:i + 1])
    assert slow.done
    for rd in (fast, slow):
        assert list(rd.records) == [] and rd.pages == 0 and rd.kind_counts == {}
        assert rd.consumed == 19 and rd.progress_bytes() == 19
    assert fast.feed(b"more") == 0              # done: nothing more is taken
    # reused: the fast path again, then a non-empty part through the parser
    fast.reset()
    assert fast.feed(empty) == 19 and fast.done
    fast.reset()
    recs = _records([("vga", 3, False)])
    wire = encode_ram_part(recs, RamContext.from_blocks(LAYOUT))
    assert fast.feed(wire) == len(wire) and list(fast.records) == recs


def test_empty_part_with_another_section_id_is_refused_as_before():
    empty = bytearray(encode_ram_part([], RamContext.from_blocks(LAYOUT)))
    empty[4] = 9                                   # section id 9 where the context has 2
    for rd in (RamPartReader(RamContext.from_blocks(LAYOUT)),):
        with pytest.raises(StreamError, match="ram section id 2"):
            rd.feed(bytes(empty))
        with pytest.raises(StreamError):          # the error sticks until reset
            rd.feed(b"")
        rd.reset()
        good = encode_ram_part([], RamContext.from_blocks(LAYOUT))
        assert rd.feed(good) == 19 and rd.done


def test_a_non_canonical_eos_word_takes_the_parser():
    """An EOS word with address bits set is still EOS for QEMU: not the fast path's
    exact image, so the parser takes it, and accepts it."""
    empty = bytearray(encode_ram_part([], RamContext.from_blocks(LAYOUT)))
    empty[5:13] = (0x1000 | 0x10).to_bytes(8, "big")
    rd = RamPartReader(RamContext.from_blocks(LAYOUT))
    assert rd.feed(bytes(empty)) == 19 and rd.done and rd.pages == 0


def test_reset_keeps_limits_and_borrow():
    rd = RamPartReader(RamContext.from_blocks(LAYOUT), max_pages=1, borrow=True)
    rd.reset(base_offset=5)
    assert rd.max_pages == 1 and rd.borrow and rd.base_offset == 5 and not rd.done
    wire = encode_ram_part(_records([("vga", 1, False), ("vga", 2, False)]),
                           RamContext.from_blocks(LAYOUT))
    with pytest.raises(StreamError, match="at most 1 page records"):
        rd.feed(wire)


def test_the_empty_part_takes_no_parser_step(monkeypatch):
    from protocol.migration import streamdecode
    empty = encode_ram_part([], RamContext.from_blocks(LAYOUT))
    rd = RamPartReader(RamContext.from_blocks(LAYOUT))

    def parser_used(self, data):
        raise AssertionError("the empty part went to the parser")

    monkeypatch.setattr(streamdecode._Incremental, "feed", parser_used)
    assert rd.feed(memoryview(empty)) == 19 and rd.done


def test_the_codec_keeps_one_reader_per_context():
    """The decoder resets the reader of the last RAM part for the next one (no new
    reader per checkpoint); a new context (another initial stream) gets its own,
    and the page limit of a reset reader follows its context's RAM."""
    from protocol.core import dialects
    from protocol.core import messages as m
    from protocol.core.codec import Decoder
    d = dialects.QEMU
    ctx = RamContext.from_blocks(LAYOUT)
    dec = Decoder(d, "primary", ram_ctx=ctx)
    enc = RamContext.from_blocks(LAYOUT)
    readers, parts = [], []
    for spec in ([("pc.ram", 3, False)], [("vga", 1, True), ("pc.ram", 4, False)]):
        dec.feed(d.encode(m.VMSTATE_SEND) + encode_ram_part(_records(spec), enc))
        items = list(dec.items())
        readers.append(dec._ram_reader)
        parts += [i for i in items if isinstance(i, m.RamPart)]
        assert list(parts[-1].records) == _records(spec)
    assert readers[0] is readers[1] is not None
    assert [p.page_count() for p in parts] == [1, 2]
    # a reset reader takes the context's page limit again (a default limit)
    before = readers[0].max_pages
    readers[0].ctx = RamContext.from_blocks(LAYOUT + [("rom", 1 << 13)])
    readers[0].reset()
    assert readers[0].max_pages == before + 2
    dec._ram_ctx = RamContext.from_blocks(LAYOUT)       # as a new initial stream sets it
    dec.feed(d.encode(m.VMSTATE_SEND) + encode_ram_part([], RamContext.from_blocks(LAYOUT)))
    list(dec.items())
    assert dec._ram_reader is not readers[0] and dec._ram_reader.ctx is dec._ram_ctx


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(_SPEC, min_size=2, max_size=6), keep=st.booleans())
def test_the_decoders_empty_part_shortcut_gives_the_readers_items(parts, keep):
    """A decoder handed each checkpoint whole takes an empty RAM part without its
    reader (`Decoder._next_ram`); one fed byte by byte always goes through the reader.
    Both give the same items, in the same order, with the same sizes and counts."""
    from protocol.core import dialects
    from protocol.core import messages as m
    from protocol.core.codec import Decoder
    d = dialects.QEMU
    enc = RamContext.from_blocks(LAYOUT)
    wire = b""
    for spec in parts:
        wire += d.encode(m.VMSTATE_SEND) + encode_ram_part(_records(spec), enc)
    whole = Decoder(d, "primary", ram_ctx=RamContext.from_blocks(LAYOUT), keep_records=keep)
    slow = Decoder(d, "primary", ram_ctx=RamContext.from_blocks(LAYOUT), keep_records=keep)

    def items(dec, pieces):
        """The items, a part with every record it handed out (in chunks or whole)."""
        out, taken = [], []
        for piece in pieces:
            dec.feed(piece)
            while (item := dec.next_item()) is not None:
                if isinstance(item, m.RamChunk):
                    taken += list(item.records)
                    continue
                if isinstance(item, m.RamPart):
                    item = ("part", taken + list(item.records), item.size_bytes,
                            item.pages, item.kinds, item.blocks)
                    taken = []
                out.append(item)
        return out
    fast = items(whole, [wire])
    assert fast == items(slow, [wire[i:i + 1] for i in range(len(wire))])
    assert whole.bytes_consumed == slow.bytes_consumed == len(wire)
    if any(not spec for spec in parts[1:]):
        assert whole._reader is None          # (the shortcut was taken and left no reader)


@pytest.mark.parametrize("sid", [None, 2, 7, 0x12345678])
def test_the_empty_part_is_encoded_as_the_general_path_encodes_it(sid):
    from protocol.migration.pages import PageBatch
    from protocol.migration.stream import _part_frame, _record_parts
    ctx = RamContext.from_blocks(LAYOUT)
    ctx.ram_section_id = sid
    head, tail = _part_frame(ctx)
    general = b"".join([head, *_record_parts([], ctx), tail])
    assert encode_ram_part([], ctx) == encode_ram_part(PageBatch(()), ctx) == general
    reader = RamPartReader(ctx)
    assert reader.feed(general) == len(general) and reader.done and reader.pages == 0
