"""A checkpoint's RAM part is consumed as it arrives and capped by the guest's RAM."""
import pytest

from protocol.core import dialects
from protocol.core import messages as m
from protocol.core.codec import Decoder
from protocol.errors import LimitError
from protocol.migration.pages import KIND_PAGE, PageRecord
from protocol.migration.stream import RamContext, RamPartReader, StreamLimitError, encode_ram_part

PAGES = 64


def _ctx():
    return RamContext.from_blocks([("pc.ram", PAGES * 4096)])


def _part(n: int) -> bytes:
    recs = [PageRecord("pc.ram", 0, KIND_PAGE, bytes([i % 251]) * 4096) for i in range(n)]
    return encode_ram_part(recs, _ctx())


def test_a_part_of_as_many_records_as_the_guest_has_pages_is_accepted():
    rd = RamPartReader(_ctx())
    rd.feed(_part(PAGES))
    assert rd.done and rd.pages == PAGES and rd.kind_counts == {"page": PAGES}


@pytest.mark.parametrize("chunk", [1, 4100, 1 << 20])
def test_a_part_larger_than_the_guest_ram_is_refused_naming_the_limit(chunk):
    data = _part(PAGES + 1)
    rd = RamPartReader(_ctx())
    with pytest.raises(StreamLimitError) as info:
        for i in range(0, len(data), chunk):
            rd.feed(data[i:i + chunk])
    assert info.value.limit == "ram-part-pages"
    assert f"at most {PAGES} page records" in str(info.value)
    assert f"{PAGES * 4096} bytes" in str(info.value)


def test_the_decoder_hands_records_out_as_they_arrive_and_keeps_none():
    d = dialects.get("qemu")
    dec = Decoder(d, "primary", ram_ctx=_ctx())
    dec.feed(d.encode(m.VMSTATE_SEND))
    assert [i.name for i in dec.items()] == [m.VMSTATE_SEND]
    data = _part(PAGES)
    chunks = 0
    for i in range(0, len(data), 3 * 4104):
        dec.feed(data[i:i + 3 * 4104])
        for item in dec.items():
            if isinstance(item, m.RamChunk):
                chunks += len(item.records)
            else:
                assert isinstance(item, m.RamPart)
                assert chunks + len(item.records) == item.page_count() == PAGES
        # the reader holds no record it has handed out
        if dec._reader is not None:
            assert not dec._reader._items
    assert chunks > PAGES // 2


def test_the_decoder_refuses_an_endless_part_with_a_limit_error():
    d = dialects.get("qemu")
    dec = Decoder(d, "primary", ram_ctx=_ctx())
    dec.feed(d.encode(m.VMSTATE_SEND) + _part(PAGES + 1))
    with pytest.raises(LimitError) as info:
        list(dec.items())
    assert info.value.limit == "ram-part-pages"
    assert "RAM part refused" in str(info.value)
