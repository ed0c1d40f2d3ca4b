"""The incremental decoder: splits, bounds, errors (never a crash)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.core import dialects
from protocol.core import messages as m
from protocol.core.codec import Decoder
from protocol.errors import DecodeError
from protocol.migration.pages import KIND_PAGE, KIND_ZERO, PageRecord
from protocol.migration.stream import RamContext, encode_ram_part

D = dialects.DIALECTS


def primary_stream(d, pages=2):
    ctx = RamContext.from_blocks([("pc.ram", 1 << 20)])
    recs = [PageRecord("pc.ram", i * 4096, KIND_PAGE, bytes([i]) * 4096) for i in range(pages)]
    recs.append(PageRecord("pc.ram", 40960, KIND_ZERO))
    ram = encode_ram_part(recs, ctx)
    blob = b"\x04device-blob\x00"
    out = d.encode(m.CHECKPOINT_REQUEST) + d.encode(m.VMSTATE_SEND)
    if d.ram_outside_blob:
        out += ram + d.encode(m.VMSTATE_SIZE, len(blob)) + blob
    else:
        out += d.encode(m.VMSTATE_SIZE, len(ram + blob)) + ram + blob
    return out, RamContext.from_blocks([("pc.ram", 1 << 20)])


def decode_all(d, data, cuts, ctx):
    dec = Decoder(d, "primary", ram_ctx=ctx)
    items, last = [], 0
    for c in sorted(set(cuts)) + [len(data)]:
        dec.feed(data[last:c])
        last = c
        items += list(dec.items())
    dec.close()
    # a RAM part comes in chunks as its bytes arrive: the chunks and the part's own
    # records together are every record once, and the part counts them all
    chunked = 0
    out = []
    for i in items:
        if isinstance(i, m.RamChunk):
            chunked += len(i.records)
            continue
        if isinstance(i, m.RamPart):
            assert chunked + len(i.records) == i.page_count()
            chunked = 0
            out.append(("RamPart", None, None, i.page_count()))
            continue
        out.append((type(i).__name__, getattr(i, "name", None), getattr(i, "value", None),
                    len(getattr(i, "records", ())) or len(getattr(i, "data", b""))))
    return out


@pytest.mark.parametrize("name", list(D))
@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 9000), max_size=12))
def test_any_split_gives_the_same_items(name, cuts):
    d = D[name]
    data, ctx = primary_stream(d)
    whole = decode_all(d, data, [], RamContext.from_blocks([("pc.ram", 1 << 20)]))
    split = decode_all(d, data, [c % (len(data) + 1) for c in cuts], ctx)
    assert split == whole
    assert [w[1] for w in whole if w[0] == "Message"] == ["checkpoint-request", "vmstate-send",
                                                          "vmstate-size"]


@pytest.mark.parametrize("name", list(D))
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200), sender=st.sampled_from(["primary", "secondary"]))
def test_random_bytes_only_raise_decode_errors(name, data, sender):
    dec = Decoder(D[name], sender)
    try:
        dec.feed(data)
        list(dec.items())
        dec.close()
    except DecodeError as exc:
        assert str(exc)


def test_out_of_range_is_named_unsigned():
    dec = Decoder(D["qemu"], "secondary")
    dec.feed(b"\xff\xff\xff\xff")
    with pytest.raises(DecodeError, match="Invalid message 4294967295"):
        dec.next_item()


def test_v11_out_of_range_uses_the_v11_words():
    dec = Decoder(D["v11"], "secondary")
    dec.feed((9).to_bytes(4, "big") + bytes(8))
    with pytest.raises(DecodeError, match="Invalid colo command, got cmd:9"):
        dec.next_item()


def test_prototype_opcode_in_a_be32_dialect_is_diagnosed():
    dec = Decoder(D["qemu"], "secondary")
    dec.feed((0x46).to_bytes(4, "big"))
    with pytest.raises(DecodeError, match="prototype"):
        dec.next_item()


def test_stream_ending_mid_message_is_an_error():
    dec = Decoder(D["v11"], "secondary")
    dec.feed(b"\x00\x00\x00\x01\x00\x00")
    assert dec.next_item() is None
    with pytest.raises(DecodeError, match="ended in the middle of a control message"):
        dec.close()


def test_truncated_blob_reports_how_much_arrived():
    d = D["qemu"]
    dec = Decoder(d, "primary")
    dec.feed(d.encode(m.VMSTATE_SIZE, 100) + b"x" * 30)
    list(dec.items())
    with pytest.raises(DecodeError, match="got 30 VMState data, less than expected 100"):
        dec.close()


def test_huge_vmstate_size_is_refused_without_allocating():
    d = D["qemu"]
    dec = Decoder(d, "primary", max_blob_bytes=1 << 20)
    dec.feed(d.encode(m.VMSTATE_SIZE, 1 << 62))
    with pytest.raises(DecodeError, match="exceeds the limit"):
        list(dec.items())


def test_pending_bytes_are_bounded():
    dec = Decoder(D["qemu"], "primary", max_pending_bytes=1000)
    d = D["qemu"]
    dec.feed(d.encode(m.VMSTATE_SIZE, 900))
    list(dec.items())
    with pytest.raises(DecodeError, match="receive buffer limit"):
        dec.feed(b"x" * 2000)


def test_clean_close_between_messages():
    dec = Decoder(D["qemu"], "secondary")
    dec.feed(D["qemu"].encode(m.CHECKPOINT_READY))
    assert dec.next_item().name == m.CHECKPOINT_READY
    dec.close()   # no error


def test_malformed_ram_part_is_a_decode_error():
    d = D["qemu"]
    dec = Decoder(d, "primary")
    dec.feed(d.encode(m.VMSTATE_SEND) + b"\x03\x00\x00\x00\x02" + (0x1001).to_bytes(8, "big"))
    with pytest.raises(DecodeError, match="malformed RAM part"):
        list(dec.items())


@pytest.mark.parametrize("name", list(D))
@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.sampled_from([1, 2, 300, 70000]), min_size=1, max_size=6),
       dirty=st.lists(st.booleans(), min_size=6, max_size=6))
def test_a_decoder_kept_across_checkpoints_reads_each_one_afresh(name, sizes, dirty):
    """One decoder reads a connection's every checkpoint.  It hands a value out again
    for the same bytes (an empty RAM part, a vmstate-size of the size before: frozen
    values), and never a stale one: each item is what that checkpoint sent."""
    d = D[name]
    ctx = RamContext.from_blocks([("pc.ram", 1 << 20)])
    dec = Decoder(d, "primary", ram_ctx=RamContext.from_blocks([("pc.ram", 1 << 20)]))
    last_size = last_empty = None
    for n, size in enumerate(sizes):
        recs = [PageRecord("pc.ram", 8192, KIND_PAGE, b"\x07" * 4096)] if dirty[n] else []
        ram, blob = encode_ram_part(recs, ctx), b"\x05" * (size - 1) + b"\x00"
        data = d.encode(m.CHECKPOINT_REQUEST) + d.encode(m.VMSTATE_SEND)
        if d.ram_outside_blob:
            sized = d.encode(m.VMSTATE_SIZE, len(blob))
            data += ram + sized + blob
        else:
            sized = d.encode(m.VMSTATE_SIZE, len(ram + blob))
            data += sized + ram + blob
        dec.feed(data)
        items = [i for i in dec.items() if not isinstance(i, m.RamChunk)]
        kinds = [(type(i).__name__, getattr(i, "name", None)) for i in items]
        assert kinds[:2] == [("Message", m.CHECKPOINT_REQUEST), ("Message", m.VMSTATE_SEND)]
        got = {type(i).__name__ if not isinstance(i, m.Message) else i.name: i
               for i in items[2:]}
        msg = got[m.VMSTATE_SIZE]
        assert (msg.value, msg.raw) == (len(blob) if d.ram_outside_blob else
                                        len(ram + blob), sized)
        if last_size is not None and last_size.raw == sized:
            assert msg is last_size                  # the same bytes: the same value
        last_size = msg
        assert bytes(got["StateBlob"].data) == (blob if d.ram_outside_blob else ram + blob)
        if d.ram_outside_blob:
            part = got["RamPart"]
            assert (part.size_bytes, part.page_count()) == (len(ram), len(recs))
            if not recs and n:       # an empty part after the connection's first one
                assert last_empty is None or part is last_empty
                last_empty = part
