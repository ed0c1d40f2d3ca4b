"""XBZRLE on both twins: QEMU vectors, a QEMU-transcription oracle, hypothesis."""

from __future__ import annotations

import mmap
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.guest import _pagediff_py as ref

PAGE = 4096
HYPO = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def uleb(n: int) -> bytes:
    assert 0 <= n <= 0x3FFF
    return bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7])


def qemu_encode(old: bytes, new: bytes, dlen: int) -> bytes | None:
    """Python transcription of QEMU's generic xbzrle_encode_buffer control flow,
    word loops and has-zero test included (long = 8 bytes); -1 is None."""
    slen, word, ones = len(old), 8, 0x0101010101010101
    assert slen % word == 0

    def load(buf: bytes, k: int) -> int:
        return int.from_bytes(buf[k:k + word], "little")

    dst = bytearray()
    i = zrun = nzrun = 0
    while i < slen:
        if len(dst) + 2 > dlen:
            return None
        res = (slen - i) % word
        while res and old[i] == new[i]:
            zrun, i, res = zrun + 1, i + 1, res - 1
        if not res:
            while i < slen and load(old, i) == load(new, i):
                i, zrun = i + word, zrun + word
            while i < slen and old[i] == new[i]:
                zrun, i = zrun + 1, i + 1
        if zrun == slen:
            return b""
        if i == slen:
            return bytes(dst)
        dst += uleb(zrun)
        zrun, start = 0, i
        if len(dst) + 2 > dlen:
            return None
        res = (slen - i) % word
        while res and old[i] != new[i]:
            i, nzrun, res = i + 1, nzrun + 1, res - 1
        if not res:
            while i < slen:
                x = load(old, i) ^ load(new, i)
                if ((x - ones) % 2**64) & ~x & (ones << 7):
                    while old[i] != new[i]:
                        nzrun, i = nzrun + 1, i + 1
                    break
                i, nzrun = i + word, nzrun + word
        dst += uleb(nzrun)
        if len(dst) + nzrun > dlen:
            return None
        dst += new[start:start + nzrun]
        nzrun = 0
    return bytes(dst)


def qemu_decode(src: bytes, old: bytes) -> bytes | None:
    """Python transcription of QEMU's xbzrle_decode_buffer; -1 is None."""
    dst, slen, dlen = bytearray(old), len(src), len(old)
    i = d = 0

    def get(k: int) -> tuple[int, int]:
        if src[k] < 0x80:
            return 1, src[k]
        if src[k + 1] & 0x80:
            return -1, 0
        return 2, (src[k] & 0x7F) | (src[k + 1] << 7)

    while i < slen:
        if slen - i < 2:
            return None
        ret, count = get(i)
        if ret < 0 or (i and not count):
            return None
        i, d = i + ret, d + count
        if d > dlen or slen - i < 2:
            return None
        ret, count = get(i)
        if ret < 0 or not count:
            return None
        i += ret
        if d + count > dlen or i + count > slen:
            return None
        dst[d:d + count] = src[i:i + count]
        d, i = d + count, i + count
    return bytes(dst)


def mutate(old: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    new = bytearray(old)
    for pos, length, xor in edits:
        for k in range(pos, min(pos + length, len(new))):
            new[k] ^= xor
    return bytes(new)


@st.composite
def page_pair(draw, sizes=st.sampled_from([8, 16, 64, 200, 256, 1024])):
    n = draw(sizes)
    old = draw(st.binary(min_size=n, max_size=n))
    edits = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(1, 40),
                                    st.integers(1, 255)), max_size=n // 4 + 2 if n else 0))
    return old, mutate(old, edits)


# ---------------------------------------------------------------- vectors
def test_identical_pages(pagediff):
    page = bytes(range(256)) * 16
    assert pagediff.xbzrle_encode(page, page) == b""
    assert pagediff.xbzrle_encode(b"", b"", limit=0) == b""
    assert pagediff.xbzrle_decode(b"", page) == page


def test_identical_pages_need_two_bytes_of_room_like_qemu(pagediff):
    page = bytes(PAGE)
    assert pagediff.xbzrle_encode(page, page, limit=2) == b""
    assert pagediff.xbzrle_encode(page, page, limit=1) is None


def test_first_byte_changed(pagediff):
    old = bytes(PAGE)
    new = b"\x07" + bytes(PAGE - 1)
    assert pagediff.xbzrle_encode(old, new) == b"\x00\x01\x07"
    # after the run QEMU wants 2 more bytes of room before scanning the tail
    assert pagediff.xbzrle_encode(old, new, limit=4) is None
    assert pagediff.xbzrle_encode(old, new, limit=5) == b"\x00\x01\x07"
    assert pagediff.xbzrle_decode(b"\x00\x01\x07", old) == new


def test_last_byte_changed(pagediff):
    old = bytes(PAGE)
    new = bytes(PAGE - 1) + b"\xaa"
    assert pagediff.xbzrle_encode(old, new) == b"\xff\x1f\x01\xaa"   # 4095 = ff 1f
    assert pagediff.xbzrle_encode(old, new, limit=4) == b"\xff\x1f\x01\xaa"
    assert pagediff.xbzrle_encode(old, new, limit=3) is None
    assert pagediff.xbzrle_decode(b"\xff\x1f\x01\xaa", old) == new


def test_alternating_bytes_overflow(pagediff):
    old = bytes(PAGE)
    new = b"\x01\x00" * (PAGE // 2)
    assert pagediff.xbzrle_encode(old, new) is None
    full = pagediff.xbzrle_encode(old, new, limit=3 * PAGE)
    assert full == b"\x00\x01\x01" + b"\x01\x01\x01" * (PAGE // 2 - 1)
    assert pagediff.xbzrle_decode(full, old) == new
    for limit in (0, 1, 2, 3, 100, 4096, len(full) - 1, len(full) + 1):
        assert pagediff.xbzrle_encode(old, new, limit) == qemu_encode(old, new, limit)


@pytest.mark.parametrize(("run", "length_bytes"), [
    (0x7F, b"\x7f"), (0x80, b"\x80\x01"), (0x3FFF, b"\xff\x7f")])
def test_changed_run_uleb128(pagediff, run, length_bytes):
    n = 0x4000
    old = bytes(n)
    new = b"\x00" + b"\x5a" * run + bytes(n - 1 - run)
    enc = pagediff.xbzrle_encode(old, new, limit=2 * n)
    assert enc == b"\x01" + length_bytes + b"\x5a" * run
    assert pagediff.xbzrle_decode(enc, old) == new


def test_run_over_14_bits_is_rejected(pagediff):
    with pytest.raises(ValueError, match="14-bit"):
        pagediff.xbzrle_encode(bytes(0x4000), b"\x01" * 0x4000, limit=0x8000)


def test_overflow_at_small_limit(pagediff):
    old = bytes(64)
    new = mutate(old, [(3, 5, 1), (20, 1, 2), (40, 9, 3)])
    full = pagediff.xbzrle_encode(old, new, limit=1000)
    assert full == qemu_encode(old, new, 1000)
    assert pagediff.xbzrle_encode(old, new, limit=len(full) + 2) == full
    for limit in range(len(full) + 2):
        assert pagediff.xbzrle_encode(old, new, limit) == qemu_encode(old, new, limit)
    assert pagediff.xbzrle_encode(old, new, limit=10) is None


def test_encode_rejects_bad_arguments(pagediff):
    with pytest.raises(ValueError, match="4096 != 4095"):
        pagediff.xbzrle_encode(bytes(4096), bytes(4095))
    with pytest.raises(ValueError, match="limit"):
        pagediff.xbzrle_encode(bytes(8), bytes(8), limit=-1)


@pytest.mark.parametrize(("encoded", "match"), [
    (b"\x00\x01\x41\x00\x01\x42", "zero-length unchanged run after the first pair"),
    (b"\x00\x00\x41", "zero-length changed run"),
    (b"\xff\xff\x01\x41", "bad ULEB128"),
    (b"\x00\xff\xff\x41", "bad ULEB128"),
    (b"\x81\x20\x01\x41", "unchanged run past the page end"),     # 4097
    (b"\x80\x20\x01\x41", "changed run past the page end"),       # 4096 + 1
    (b"\xff\x1f\x02\x41\x42", "changed run past the page end"),   # 4095 + 2
    (b"\x00\x05\x41\x42", "changed run past the input end"),
    (b"\x05", "unchanged-run length past the input end"),
    (b"\x05\x01", "changed-run length past the input end"),
    (b"\x00\x01\x41\x05", "unchanged-run length past the input end"),
])
def test_decoder_rejections(pagediff, encoded, match):
    with pytest.raises(ValueError, match=match):
        pagediff.xbzrle_decode(encoded, bytes(PAGE))
    assert qemu_decode(encoded, bytes(PAGE)) is None


def test_decoder_accepts_what_qemu_accepts(pagediff):
    old = bytes(PAGE)
    # a two-byte zero first zrun is not canonical but QEMU takes it
    assert pagediff.xbzrle_decode(b"\x80\x00\x01\x41", old) == b"A" + bytes(PAGE - 1)
    assert pagediff.xbzrle_decode(b"\xff\x1f\x01\x41", old) == bytes(PAGE - 1) + b"A"
    assert pagediff.xbzrle_decode(memoryview(b"\x02\x02AB"), bytearray(old))[:4] == b"\0\0AB"


# ---------------------------------------------------------------- hypothesis
@HYPO
@given(pair=page_pair(), limit=st.integers(0, 3000))
def test_encode_matches_qemu_oracle(pagediff, pair, limit):
    old, new = pair
    assert pagediff.xbzrle_encode(old, new, limit) == qemu_encode(old, new, limit)


@HYPO
@given(pair=page_pair(sizes=st.integers(0, 300)), limit=st.integers(0, 1000))
def test_twins_agree_and_round_trip(pagediff, pair, limit):
    old, new = pair
    enc = pagediff.xbzrle_encode(old, new, limit)
    assert enc == ref.xbzrle_encode(old, new, limit)
    if enc is not None:
        assert len(enc) <= max(limit, 0) or enc == b""
        assert pagediff.xbzrle_decode(enc, old) == new
        assert ref.xbzrle_decode(enc, old) == new


#: (offset, length, xor byte) edits of a 4 KiB page
EDITS = st.lists(st.tuples(st.integers(0, PAGE - 1), st.integers(1, 300), st.integers(1, 255)),
                 max_size=60)


@settings(HYPO, max_examples=60)
@given(seed=st.integers(0, 2**32), edits=EDITS)
def test_round_trip_4096(pagediff, seed, edits):
    old = random.Random(seed).randbytes(PAGE)
    new = mutate(old, edits)
    enc = pagediff.xbzrle_encode(old, new, limit=3 * PAGE + 4)
    assert enc == qemu_encode(old, new, 3 * PAGE + 4)
    assert pagediff.xbzrle_decode(enc, old) == new
    # in place, into a page of an anonymous mapping, as the RAM model applies it
    with mmap.mmap(-1, 3 * PAGE) as ram:
        ram[PAGE:2 * PAGE] = old
        with memoryview(ram) as mem:
            pagediff.xbzrle_decode_into(enc, mem[PAGE:2 * PAGE])
        assert ram[PAGE:2 * PAGE] == new and ram[:PAGE] == bytes(PAGE) == ram[2 * PAGE:]


@HYPO
@given(data=st.binary(max_size=64), old=st.binary(min_size=0, max_size=48))
def test_decode_random_bytes(pagediff, data, old):
    expected = qemu_decode(data, old)
    try:
        page = pagediff.xbzrle_decode(data, old)
    except ValueError as exc:
        assert expected is None
        with pytest.raises(ValueError) as ref_exc:
            ref.xbzrle_decode(data, old)
        assert str(ref_exc.value) == str(exc)
    else:
        assert page == expected
        assert len(page) == len(old)


def test_decode_returns_a_fresh_page(pagediff):
    """1-byte bytes objects are shared singletons: the decoder must not write into one."""
    old = bytes([0xCF])
    for _ in range(3):
        assert pagediff.xbzrle_decode(b"\x00\x01\x41", old) == b"A"
    assert old[0] == 0xCF and bytes([0xCF])[0] == 0xCF
    assert pagediff.xbzrle_decode(b"", b"") == b""


# ---------------------------------------------------------------- in place
@HYPO
@given(data=st.binary(max_size=64), old=st.binary(min_size=0, max_size=48))
def test_decode_into_is_decode_in_place(pagediff, data, old):
    """Random deltas: the same page, or the same error with the page untouched."""
    page = bytearray(old)
    try:
        want = pagediff.xbzrle_decode(data, old)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            pagediff.xbzrle_decode_into(data, page)
        assert str(got.value) == str(exc)
        assert page == old                   # checked before anything is written
    else:
        assert pagediff.xbzrle_decode_into(data, page) is None
        assert page == want


def test_decode_into_needs_a_writable_page(pagediff):
    with pytest.raises(TypeError):
        pagediff.xbzrle_decode_into(b"\x00\x01\x41", bytes(PAGE))
