"""protocol.migration.stream: run1 decode, round trips, chunking, errors."""
from __future__ import annotations

import csv
import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.migration.pages import PAGE_SIZE, PageRecord
from protocol.migration.stream import (
    RAM_SAVE_FLAG_CONTINUE,
    InitialReader,
    RamContext,
    RamPartReader,
    StreamError,
    decode_device_blob,
    encode_device_blob,
    encode_initial,
    encode_ram_part,
)
from tests.stream._synth import BLOCKS, DEVICES, VMDESC, page

RUN1 = Path("/work/shared/qemu-colo/run1")
needs_run1 = pytest.mark.skipif(not (RUN1 / "primary_to_secondary.bin").exists(),
                                reason="run1 capture not available")


@pytest.fixture(scope="module")
def run1():
    p2s = (RUN1 / "primary_to_secondary.bin").read_bytes()
    decoded = json.loads((RUN1 / "decoded.json").read_text())
    vmdesc = json.loads((RUN1 / "vmdesc.json").read_text())
    r = InitialReader()
    n = r.feed(p2s)
    with open(RUN1 / "checkpoints.csv", newline="") as f:
        page_lists = {int(row["index"]): row["page_list"] for row in csv.DictReader(f)}
    return {"p2s": p2s, "decoded": decoded, "vmdesc": vmdesc, "reader": r, "n": n,
            "page_lists": page_lists}


def _chunks(data: bytes, sizes: list[int]):
    pos, i = 0, 0
    while pos < len(data):
        k = max(1, sizes[i % len(sizes)]) if sizes else len(data)
        yield data[pos:pos + k]
        pos, i = pos + k, i + 1


def _feed_all(reader, data: bytes, sizes: list[int]) -> int:
    total = 0
    for chunk in _chunks(data, sizes):
        n = reader.feed(chunk)
        total += n
        if n < len(chunk):
            break
    return total


def _checkpoint_parts(run1):
    """(ram part offset, end) of every complete run1 checkpoint, from decoded.json."""
    out = []
    for cp in run1["decoded"]["checkpoints"]:
        if cp["complete"]:
            out.append((cp["live"]["offset"], cp["live"]["eof_offset"] + 1, cp))
    return out


# --- run1 ------------------------------------------------------------------------
@needs_run1
def test_run1_initial_matches_decoded_json(run1):
    s, items = run1["reader"].summary, run1["decoded"]["initial"]["items"]
    assert run1["reader"].done and run1["n"] == run1["decoded"]["initial"]["end"] == 1313269
    assert s.machine == "pc-i440fx-7.2" and s.enable_colo and s.version == 3
    start = next(i for i in items if i["type"] == "START")["ram"]
    assert s.blocks == [(b["idstr"], b["used_length"]) for b in start["blocks"]]
    assert len(s.blocks) == 8 and s.mem_size == start["mem_size"]
    by_type = {d["type"]: d for d in s.ram_sections}
    for it in items:
        if it["type"] in ("PART", "END"):
            got = by_type[it["type"]]
            assert (got["zero"], got["page"]) == (it["ram"]["zero"], it["ram"]["full"])
            for blk, cnt in it["ram"]["by_block"].items():
                assert got["by_block"][blk]["zero"] == cnt["zero"]
                assert got["by_block"][blk]["page"] == cnt["full"]
    assert (by_type["PART"]["zero"], by_type["PART"]["page"]) == (36801, 209)
    assert s.pages_by_kind == {"zero": 36801, "page": 211}
    fulls = [i for i in items if i["type"] == "FULL"]
    assert len(s.device_sections) == len(fulls) == 32
    for d, it in zip(s.device_sections, fulls, strict=True):
        assert (d.section_id, d.idstr, d.instance_id, d.version_id, d.length) == \
            (it["section_id"], it["idstr"], it["instance_id"], it["version_id"], it["body_len"])
        assert d.offset == it["offset"] + 6 + len(it["idstr"]) + 8
        assert d.method == "vmdesc"
    assert s.vmdesc == run1["vmdesc"] and s.vmdesc_len == 101314
    assert s.eof_offset == 1211949
    ctx = run1["reader"].ctx
    assert ctx.ram_section_id == 2 and ctx.current_block == "pc.ram"


@needs_run1
@pytest.mark.parametrize("sizes", [[4096], [65537], [1, 7, 4093, 100000], [13, 5]])
def test_run1_initial_any_chunking(run1, sizes):
    data = run1["p2s"][:1313269 + 5000] if sizes != [13, 5] else run1["p2s"][:1313269 + 8]
    r = InitialReader()
    if sizes == [13, 5]:     # small chunks only around the tail (keeps the test fast)
        n = r.feed(data[:1200000])
        n += _feed_all(r, data[1200000:], sizes)
    else:
        n = _feed_all(r, data, sizes)
    assert r.done and n == 1313269
    assert r.summary == run1["reader"].summary


@needs_run1
def test_run1_checkpoint_ram_parts_and_reencode(run1):
    ctx = run1["reader"].ctx.copy()
    p2s = run1["p2s"]
    parts = _checkpoint_parts(run1)
    assert len(parts) == 20
    for start, end, cp in parts:
        before = ctx.copy()
        rr = RamPartReader(ctx, base_offset=start)
        assert rr.feed(p2s[start:end + 100]) == end - start     # stops at the EOF byte
        assert rr.done
        want = run1["page_lists"][cp["index"]]
        assert " ".join(f"{r.block}:{r.offset:#x}:{'P' if r.kind == 'page' else 'Z'}"
                        for r in rr.records) == want
        assert encode_ram_part(rr.records, before) == p2s[start:end]
        assert before == ctx


@needs_run1
def test_run1_device_blobs_with_and_without_vmdesc(run1):
    p2s, vmdesc = run1["p2s"], run1["vmdesc"]
    for cp in run1["decoded"]["checkpoints"]:
        if not cp["complete"]:
            continue
        off, size = cp["device"]["offset"], cp["device"]["size"]
        blob = p2s[off:off + size]
        a = decode_device_blob(blob, vmdesc)
        b = decode_device_blob(blob)
        want = [tuple(x) for x in cp["device"]["sections"]]
        for got, method in ((a, "vmdesc"), (b, "heuristic")):
            assert [(d.section_id, d.idstr, d.instance_id, d.version_id, d.length)
                    for d in got] == want
            assert {d.method for d in got} == {method}
        assert [d.body for d in a] == [d.body for d in b]
        assert encode_device_blob([(d.idstr, d.instance_id, d.version_id, d.body)
                                   for d in a], 0) != blob  # ids are not consecutive...
        rebuilt = b"".join(struct.pack(">BI", 4, d.section_id) + bytes([len(d.idstr)])
                           + d.idstr.encode() + struct.pack(">II", d.instance_id, d.version_id)
                           + d.body + struct.pack(">BI", 0x7E, d.section_id) for d in a)
        assert rebuilt + b"\0" == blob


@needs_run1
def test_run1_initial_device_region_without_vmdesc_walk(run1):
    """The initial region decoded by the heuristic gives the same sections."""
    s = run1["reader"].summary
    region = run1["p2s"][s.device_region_offset:s.eof_offset + 1]
    heur = decode_device_blob(region, base_offset=s.device_region_offset)
    assert [(d.section_id, d.offset, d.length) for d in heur] == \
        [(d.section_id, d.offset, d.length) for d in s.device_sections]


# --- round trips -------------------------------------------------------------------
BIG = [("pc.ram", 1 << 34), ("vga", 1 << 24), ("rom", 8 * PAGE_SIZE)]

record_st = st.builds(
    lambda blk, idx, kind, fill, xlen: (
        PageRecord(blk, idx * PAGE_SIZE, kind,
                   bytes([idx % 256]) * PAGE_SIZE if kind == "page"
                   else bytes([(idx + 1) % 256]) * xlen if kind == "xbzrle" else b"",
                   fill if kind == "zero" else 0)),
    st.sampled_from([b for b, _ in BIG]),
    st.one_of(st.integers(0, 7), st.integers(1 << 20, (1 << 22) - 1)),
    st.sampled_from(["zero", "page", "xbzrle"]),
    st.integers(0, 255),
    st.integers(0, PAGE_SIZE),
)


def _fix(r: PageRecord) -> PageRecord:
    used = dict(BIG)[r.block]
    return PageRecord(r.block, r.offset % used, r.kind, r.data, r.fill)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_st, max_size=12), st.lists(record_st, max_size=12),
       st.lists(st.integers(1, 5000), min_size=1, max_size=8), st.binary(max_size=8))
def test_ram_part_roundtrip_any_chunking(recs1, recs2, sizes, trailer):
    recs1, recs2 = [_fix(r) for r in recs1], [_fix(r) for r in recs2]
    enc = RamContext.from_blocks(BIG)
    dec = RamContext.from_blocks(BIG)
    for recs in (recs1, recs2):          # CONTINUE may refer to the previous part
        data = encode_ram_part(recs, enc)
        rr = RamPartReader(dec)
        assert _feed_all(rr, data + trailer, sizes) == len(data)
        assert rr.done and rr.records == recs
        assert dec == enc


def test_continue_across_parts_and_big_offsets():
    ctx = RamContext.from_blocks(BIG)
    a = encode_ram_part([page("pc.ram", (1 << 33) + PAGE_SIZE)], ctx)
    b = encode_ram_part([page("pc.ram", (1 << 34) - PAGE_SIZE, "xbzrle")], ctx)
    word = struct.unpack(">Q", b[5:13])[0]
    assert word & RAM_SAVE_FLAG_CONTINUE and word & ~0xFFF == (1 << 34) - PAGE_SIZE
    dec = RamContext.from_blocks(BIG)
    r1, r2 = RamPartReader(dec), RamPartReader(dec)
    r1.feed(a)
    r2.feed(b)
    assert r2.records[0].offset == (1 << 34) - PAGE_SIZE and r2.records[0].block == "pc.ram"
    assert r1.records[0].offset == (1 << 33) + PAGE_SIZE
    with pytest.raises(StreamError, match="CONTINUE"):
        RamPartReader(RamContext.from_blocks(BIG)).feed(b)


@settings(max_examples=25, deadline=None)
@given(st.lists(record_st, max_size=10), st.lists(st.integers(1, 3000), min_size=1, max_size=6))
def test_initial_roundtrip(recs, sizes):
    recs = [_fix(r) for r in recs]
    data, ctx = encode_initial("pc-q35-7.2", BIG, recs, DEVICES, VMDESC)
    r = InitialReader(keep_pages=True)
    assert _feed_all(r, data + b"\x00\x00\x00\x01", sizes) == len(data)
    s = r.summary
    assert r.done and s.bytes == len(data)
    assert s.machine == "pc-q35-7.2" and s.enable_colo and s.blocks == BIG
    assert s.records == recs and r.ctx == ctx
    assert [(d.idstr, d.instance_id, d.version_id, d.body) for d in s.device_sections] == DEVICES
    assert [d.method for d in s.device_sections] == ["vmdesc", "vmdesc"]
    assert s.vmdesc == VMDESC


def test_initial_without_device_sections():
    data, ctx = encode_initial("m", BLOCKS, [page("tiny", 0)], [], {"page_size": 4096,
                                                                     "devices": []})
    r = InitialReader()
    assert r.feed(data + b"\0\0\0\1") == len(data) and r.done
    assert r.summary.device_sections == [] and r.summary.pages_by_kind == {"page": 1}
    assert ctx.current_block == "tiny" == r.ctx.current_block


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text("abcdefghij/:._", min_size=1, max_size=20),
                          st.integers(0, 3), st.integers(0, 9),
                          st.binary(max_size=300).map(lambda b: b.replace(b"\x7e", b"~~")
                                                      .replace(b"~", b"}"))),
                max_size=6), st.integers(0, 60000))
def test_device_blob_roundtrip_heuristic(sections, first):
    blob = encode_device_blob(sections, first)
    got = decode_device_blob(blob)
    assert [(d.idstr, d.instance_id, d.version_id, d.body) for d in got] == sections
    assert [d.section_id for d in got] == list(range(first, first + len(sections)))


def test_device_blob_fake_footer_inside_body():
    blob = encode_device_blob(DEVICES, 3)     # serial's body holds "7e 00000004 'x'"
    for desc in (None, VMDESC):
        got = decode_device_blob(blob, desc)
        assert [d.body for d in got] == [b for *_, b in DEVICES]


def test_device_blob_vmdesc_subsections_and_fallback():
    desc = {"page_size": 4096, "devices": [{
        "name": "dev", "instance_id": 0, "vmsd_name": "dev", "version": 1,
        "fields": [{"name": "s", "type": "struct", "size": 3, "array_len": 2,
                    "struct": {"vmsd_name": "el", "version": 1,
                               "fields": [{"name": "x", "type": "uint8", "size": 3}]}}],
        "subsections": [{"vmsd_name": "dev/sub", "version": 1,
                         "fields": [{"name": "y", "type": "buffer", "size": 5}]}]}]}
    sub = b"\x05\x07dev/sub" + struct.pack(">I", 1) + b"\x7e\x00\x00\x00\x09"
    with_sub = b"abcdef" + sub
    for body in (b"abcdef", with_sub):
        got = decode_device_blob(encode_device_blob([("dev", 0, 1, body)], 9), desc)
        assert got[0].body == body and got[0].method == "vmdesc" and got[0].vmsd_name == "dev"
    # a layout the vmdesc does not describe falls back to the heuristic
    got = decode_device_blob(encode_device_blob([("dev", 0, 1, b"abcdefgh")], 9), desc)
    assert got[0].body == b"abcdefgh" and got[0].method == "heuristic"


# --- errors ----------------------------------------------------------------------
def _part(recs=None):
    return encode_ram_part(recs if recs is not None else [page("vga", 0)],
                           RamContext.from_blocks(BIG))


@pytest.mark.parametrize("mutate, match", [
    (lambda d: b"\x02" + d[1:], "SECTION_END"),
    (lambda d: d[:1] + b"\0\0\0\x07" + d[5:], "ram section id"),
    (lambda d: d[:12] + b"\x09" + d[13:], "flags"),                      # PAGE|FULL
    (lambda d: d[:12] + b"\x04" + d[13:], "MEM_SIZE"),
    (lambda d: d[:12] + b"\x88" + d[13:], "HOOK"),
    (lambda d: d[:14] + b"vgb" + d[17:], "known RAMBlock"),
    (lambda d: d[:5] + struct.pack(">Q", (1 << 24) | 8) + d[13:], "used_length"),
    (lambda d: d[:-5] + b"\x00\x00\x00\x03\x00", "footer"),
    (lambda d: d[:-1] + b"\x01", "EOF"),
    (lambda d: d[:13] + b"\x00" + d[14:], "idstr length"),
])
def test_ram_part_errors(mutate, match):
    bad = mutate(_part())
    with pytest.raises(StreamError, match=match) as ei:
        RamPartReader(RamContext.from_blocks(BIG)).feed(bad)
    assert "at stream offset" in str(ei.value)


def test_ram_part_xbzrle_errors_and_record_bound():
    good = _part([page("vga", 0, "xbzrle")])
    bad = good[:17] + b"\x02" + good[18:]
    with pytest.raises(StreamError, match="XBZRLE encoding flag"):
        RamPartReader(RamContext.from_blocks(BIG)).feed(bad)
    big = good[:18] + struct.pack(">H", PAGE_SIZE + 1) + good[20:]
    with pytest.raises(StreamError, match="XBZRLE length"):
        RamPartReader(RamContext.from_blocks(BIG)).feed(big)
    with pytest.raises(StreamError, match="records <="):
        RamPartReader(RamContext.from_blocks(BIG), max_record_bytes=1000).feed(_part())


def test_ram_part_truncated_is_not_done_and_error_is_sticky():
    data = _part()
    rr = RamPartReader(RamContext.from_blocks(BIG))
    assert rr.feed(data[:-1]) == len(data) - 1 and not rr.done and rr.records
    with pytest.raises(StreamError):
        rr.feed(b"\x05")
    with pytest.raises(StreamError):
        rr.feed(b"\x00")


def test_initial_errors():
    data, _ = encode_initial("m", BLOCKS, [], DEVICES, VMDESC)
    for bad, match in ((b"QEVN" + data[4:], "magic"), (data[:7] + b"\x02" + data[8:], "obsolete"),
                       (data[:8] + b"\x09" + data[9:], "section type"),
                       (data.replace(b'{"page_size"', b'{"page_sizz"'), "VMDESCRIPTION within")):
        with pytest.raises(StreamError, match=match):
            InitialReader(max_device_region=len(data)).feed(bad + bytes(len(data)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_only_stream_errors(data):
    for reader in (RamPartReader(RamContext.from_blocks(BIG)), InitialReader()):
        try:
            reader.feed(data)
        except StreamError:
            pass
    for blob in (data, b"\x04" + data, data + b"\x00"):
        try:
            decode_device_blob(blob, VMDESC)
        except StreamError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.integers(1, 4))
def test_mutated_initial_only_stream_errors(pos, value, n):
    data, _ = encode_initial("m", BLOCKS, [page("pc.ram", 0), page("vga.vram", 0, "zero")],
                             DEVICES, VMDESC)
    pos %= len(data)
    bad = data[:pos] + bytes([value]) * n + data[pos + n:]
    r = InitialReader(max_device_region=1 << 16)
    try:
        r.feed(bad)
        r.feed(bytes(1 << 17))
    except StreamError:
        pass


def test_random_split_points_same_result():
    recs = [page("pc.ram", i * PAGE_SIZE, k) for i, k in
            enumerate(["page", "zero", "xbzrle"] * 5)]
    data = encode_ram_part(recs, RamContext.from_blocks(BIG))
    rnd = random.Random(7)
    for _ in range(50):
        cuts = sorted(rnd.sample(range(1, len(data)), 6))
        rr = RamPartReader(RamContext.from_blocks(BIG))
        prev = 0
        for c in cuts + [len(data)]:
            assert rr.feed(data[prev:c]) == c - prev
            prev = c
        assert rr.done and rr.records == recs


def test_malformed_vmdesc_falls_back_to_heuristic():
    blob = encode_device_blob(DEVICES, 3)
    for desc in ({"devices": [{"name": "timer", "instance_id": 0, "fields": "x"}]},
                 {"devices": [{"name": "timer", "instance_id": "0"}, 5]},
                 {"devices": [{"name": "timer", "instance_id": 0,
                               "fields": [{"type": "struct", "struct": {"fields": [1]}}]}]}):
        got = decode_device_blob(blob, desc)
        assert [d.body for d in got] == [b for *_, b in DEVICES]


def test_import_order_independent():
    import subprocess
    import sys
    for first in ("protocol.migration.streamdecode", "protocol.migration.stream"):
        code = f"import {first}; from protocol.migration.stream import InitialReader, RamPartReader"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
