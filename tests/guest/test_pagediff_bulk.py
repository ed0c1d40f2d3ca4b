"""copy_pages / hash_pages / build_bytes on both twins (the bulk kernels behind
the RAM cache flush, the consistency digests and the wire image of a checkpoint)."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.guest import _pagediff_py as ref

HYPO = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
WEIGHTS = (np.arange(1, 513, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


def _hash_by_definition(page: bytes, weights: np.ndarray) -> int:
    """The documented formula, one word at a time, with Python ints."""
    h = 0
    for k, x in enumerate(np.frombuffer(page, dtype=np.uint64).tolist()):
        h = (h + ((x ^ (x >> 29)) * int(weights[k]))) % 2**64
    if h == 0 and any(page):
        h = 1
    return h


# ---------------------------------------------------------------- copy_pages
def test_copy_pages_copies_only_the_named_pages(pagediff):
    src = b"".join(bytes([k + 1]) * 4096 for k in range(5))
    dst = bytearray(5 * 4096)
    assert pagediff.copy_pages(src, dst, [4, 1, 4]) is None
    assert dst == bytes(4096) + b"\x02" * 4096 + bytes(2 * 4096) + b"\x05" * 4096
    pagediff.copy_pages(memoryview(src), memoryview(dst), np.array([0], dtype=np.int64))
    assert dst[:4096] == b"\x01" * 4096
    pagediff.copy_pages(src, dst, [])


@pytest.mark.parametrize("bad", [5, -1, 2**70])
def test_copy_pages_bad_index_writes_nothing(pagediff, bad):
    src, dst = b"x" * 5 * 4096, bytearray(5 * 4096)
    with pytest.raises(IndexError, match=str(bad)):
        pagediff.copy_pages(src, dst, [0, bad])
    assert dst == bytes(5 * 4096)


def test_copy_pages_errors(pagediff):
    with pytest.raises(ValueError, match="differ in length: 8192 != 4096"):
        pagediff.copy_pages(bytes(8192), bytearray(4096), [0])
    with pytest.raises(ValueError, match="not a multiple"):
        pagediff.copy_pages(bytes(100), bytearray(100), [0])
    with pytest.raises(TypeError):
        pagediff.copy_pages(bytes(4096), bytes(4096), [0])
    with pytest.raises(ValueError, match="page_size must be positive"):
        pagediff.copy_pages(bytes(4096), bytearray(4096), [0], page_size=0)


@HYPO
@given(data=st.data(), ps=st.sampled_from([1, 16, 64]), npages=st.integers(1, 30))
def test_copy_pages_differential(pagediff, data, ps, npages):
    src = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    dst = bytearray(data.draw(st.binary(min_size=ps * npages, max_size=ps * npages)))
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=20))
    expected = bytearray(dst)
    for i in idx:
        expected[i * ps:(i + 1) * ps] = src[i * ps:(i + 1) * ps]
    pagediff.copy_pages(src, dst, idx, ps)
    assert dst == expected


# ---------------------------------------------------------------- hash_pages
def test_hash_pages_matches_the_definition(pagediff):
    rng = np.random.default_rng(7)
    pages = rng.integers(0, 256, size=(6, 4096), dtype=np.uint8)
    pages[2] = 0                               # an all-zero page hashes to 0
    pages[3] = 0
    pages[3, 4095] = 0x80                      # one high bit in the last word
    pages[4] = pages[0]                        # equal pages, equal hashes
    buf = pages.tobytes()
    got = np.frombuffer(pagediff.hash_pages(buf, [0, 1, 2, 3, 4, 5, 2], WEIGHTS), np.uint64)
    want = [_hash_by_definition(pages[k].tobytes(), WEIGHTS) for k in (0, 1, 2, 3, 4, 5, 2)]
    assert got.tolist() == want
    assert want[2] == 0 and want[3] != 0 and want[0] == want[4] != want[1]
    assert pagediff.hash_pages(buf, [], WEIGHTS) == b""


def test_hash_pages_never_zero_for_a_nonzero_page(pagediff):
    """A non-zero page whose weighted sum wraps to exactly 0 gets 1.  With all
    weights 1, a page of the words x and mix⁻¹(-mix(x)) sums to 0 mod 2**64
    (mix(x) = x ^ (x >> 29) is a bijection; its inverse is y ^ (y >> 29) ^ (y >> 58))."""
    ones = np.ones(8, dtype=np.uint64)
    x = 1 << 63
    y = (-(x ^ (x >> 29))) % 2**64
    inv = y ^ (y >> 29) ^ (y >> 58)
    assert (inv ^ (inv >> 29)) == y
    page = np.zeros(8, dtype=np.uint64)
    page[0], page[5] = x, inv
    h = np.frombuffer(pagediff.hash_pages(page.tobytes(), [0], ones, page_size=64), np.uint64)
    assert h.tolist() == [1]


def test_hash_pages_errors(pagediff):
    with pytest.raises(ValueError, match="multiple of 8 to hash, not 12"):
        pagediff.hash_pages(bytes(24), [0], bytes(12), page_size=12)
    with pytest.raises(ValueError, match="weights are 8 bytes, expected 512 x 8 = 4096"):
        pagediff.hash_pages(bytes(4096), [0], bytes(8))
    with pytest.raises(IndexError, match="page index 1 out of range for 1 pages"):
        pagediff.hash_pages(bytes(4096), [1], WEIGHTS)
    with pytest.raises(ValueError, match="not a multiple"):
        pagediff.hash_pages(bytes(100), [0], WEIGHTS)


@HYPO
@given(data=st.data(), npages=st.integers(1, 12))
def test_hash_pages_differential(pagediff, data, npages):
    ps = 64
    w = np.array(data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8)),
                 dtype=np.uint64)
    buf = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=16))
    got = pagediff.hash_pages(buf, idx, w, page_size=ps)
    assert got == ref.hash_pages(buf, idx, w, page_size=ps)
    assert np.frombuffer(got, np.uint64).tolist() == [
        _hash_by_definition(buf[i * ps:(i + 1) * ps], w) for i in idx]


def _compiled():
    try:
        from protocol.guest import _pagediff_c
    except ImportError:
        return None
    return _pagediff_c if hasattr(_pagediff_c, "_hash_simd") else None


@HYPO
@given(data=st.data(), words=st.integers(1, 80), npages=st.integers(1, 6))
def test_compiled_hash_vector_and_portable_loops_agree(data, words, npages):
    """The compiled twin's vector hash loops (AVX-512 and AVX2, where the CPU has
    them) and its portable loop give the same hashes, and all the definition's, for
    page sizes that are and are not multiples of the vector widths (an AVX2 or a
    scalar tail)."""
    c = _compiled()
    if c is None:
        pytest.skip("the compiled page-diff twin is not built")
    ps = 8 * words
    w = np.array(data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=words,
                                    max_size=words)), dtype=np.uint64)
    buf = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    idx = list(range(npages))
    was = c._hash_simd(False)
    try:
        portable = c.hash_pages(buf, idx, w, page_size=ps)
        dst = bytearray(len(buf))
        portable_copy = c.copy_pages_hashed(buf, dst, idx, w, page_size=ps)
        vectors = []
        for level in (1, 2):        # the best loop (AVX-512 where there), then AVX2's
            c._hash_simd(level)
            dst2 = bytearray(len(buf))
            vectors.append((c.hash_pages(buf, idx, w, page_size=ps),
                            c.copy_pages_hashed(buf, dst2, idx, w, page_size=ps), dst2))
    finally:
        c._hash_simd(was)
    want = [_hash_by_definition(buf[i * ps:(i + 1) * ps], w) for i in idx]
    assert np.frombuffer(portable, np.uint64).tolist() == want
    for vector, vector_copy, dst2 in vectors:
        assert vector == portable == portable_copy == vector_copy
        assert dst == dst2 == buf


@pytest.mark.parametrize("ps", [64, 4096])
def test_compiled_fused_copy_hash_matches_the_portable_loop(ps):
    """Whole-vector pages take the fused copy-and-hash loop (one pass in registers):
    the copies, in place and gathered at a stride, and the hashes are the portable
    loop's; a page whose sum wraps to 0 still gets 1."""
    c = _compiled()
    if c is None:
        pytest.skip("the compiled page-diff twin is not built")
    rng = np.random.default_rng(ps)
    pages = rng.integers(0, 256, size=(9, ps), dtype=np.uint8)
    pages[3] = 0                                            # a zero page: hash 0
    w = rng.integers(0, 2**63, size=ps // 8, dtype=np.uint64) | np.uint64(1)
    buf = pages.tobytes()
    idx = [8, 0, 3, 5, 1]
    results = []
    was = c._hash_simd(False)
    try:
        for on, aligned in ((False, False), (True, False), (True, True), (2, False)):
            c._hash_simd(on)
            # an mmap is page aligned: the vector loop's aligned (streaming) stores
            dst = mmap.mmap(-1, len(buf)) if aligned else bytearray(len(buf))
            h1 = c.copy_pages_hashed(buf, dst, idx, w, page_size=ps)
            wire = bytearray(len(idx) * (ps + 8) + 3)
            h2 = c.gather_pages(buf, idx, wire, ps, ps + 8, 3, w)
            results.append((bytes(dst), h1, bytes(wire), h2))
    finally:
        c._hash_simd(was)
    assert results[0] == results[1] == results[2] == results[3]
    dst, h1, wire, h2 = results[1]
    assert h1 == h2 and np.frombuffer(h1, np.uint64).tolist() == [
        _hash_by_definition(buf[i * ps:(i + 1) * ps], w) for i in idx]
    for k, i in enumerate(idx):
        assert dst[i * ps:(i + 1) * ps] == buf[i * ps:(i + 1) * ps]
        assert wire[3 + k * (ps + 8):3 + k * (ps + 8) + ps] == buf[i * ps:(i + 1) * ps]
    # the zero-sum rule on the fused path: all weights 1, words x and mix^-1(-mix(x))
    ones = np.ones(ps // 8, dtype=np.uint64)
    x = 1 << 63
    y = (-(x ^ (x >> 29))) % 2**64
    page = np.zeros(ps // 8, dtype=np.uint64)
    page[0], page[5] = x, y ^ (y >> 29) ^ (y >> 58)
    out = bytearray(ps)
    assert np.frombuffer(c.copy_pages_hashed(page.tobytes(), out, [0], ones, page_size=ps),
                         np.uint64).tolist() == [1]
    assert out == page.tobytes()


def test_hash_pages_past_4_gib(pagediff):
    try:
        m = mmap.mmap(-1, (1 << 32) + 8192)
    except (OSError, OverflowError, ValueError) as exc:
        pytest.skip(f"no 4 GiB sparse mapping here: {exc}")
    with m:
        m[(1 << 32) + 4096] = 9                # page 2**20 + 1; a 32-bit offset would hit page 1
        h = np.frombuffer(pagediff.hash_pages(m, [1, (1 << 20) + 1], WEIGHTS), np.uint64)
        assert h[0] == 0 and h[1] != 0


# ------------------------------------------------ copy_pages_hashed / gather_pages_hashed
def test_copy_pages_hashed_copies_and_hashes_the_copies(pagediff):
    rng = np.random.default_rng(3)
    pages = rng.integers(0, 256, size=(5, 4096), dtype=np.uint8)
    pages[3] = 0
    src = pages.tobytes()
    dst = bytearray(b"\xff" * 5 * 4096)
    got = np.frombuffer(pagediff.copy_pages_hashed(src, dst, [4, 1, 3], WEIGHTS), np.uint64)
    assert got.tolist() == [_hash_by_definition(pages[k].tobytes(), WEIGHTS) for k in (4, 1, 3)]
    assert got[2] == 0                                   # the zero page hashes to 0
    want = bytearray(b"\xff" * 5 * 4096)
    for k in (4, 1, 3):
        want[k * 4096:(k + 1) * 4096] = src[k * 4096:(k + 1) * 4096]
    assert dst == want
    assert pagediff.copy_pages_hashed(src, dst, [], WEIGHTS) == b""


def test_copy_pages_hashed_errors_write_nothing(pagediff):
    src, dst = b"x" * 3 * 4096, bytearray(3 * 4096)
    with pytest.raises(IndexError, match="page index 3 out of range"):
        pagediff.copy_pages_hashed(src, dst, [0, 3], WEIGHTS)
    assert dst == bytes(3 * 4096)
    with pytest.raises(ValueError, match="weights are 8 bytes"):
        pagediff.copy_pages_hashed(src, dst, [0], bytes(8))
    with pytest.raises(ValueError, match="differ in length"):
        pagediff.copy_pages_hashed(src, bytearray(4096), [0], WEIGHTS)
    with pytest.raises(TypeError):
        pagediff.copy_pages_hashed(src, bytes(3 * 4096), [0], WEIGHTS)
    with pytest.raises(ValueError, match="multiple of 8 to hash"):
        pagediff.copy_pages_hashed(bytes(24), bytearray(24), [0], bytes(12), page_size=12)
    assert dst == bytes(3 * 4096)


def test_gather_pages_hashed_fills_out_in_index_order(pagediff):
    rng = np.random.default_rng(5)
    pages = rng.integers(0, 256, size=(6, 4096), dtype=np.uint8)
    pages[0] = 0
    out = np.full((4, 4096), 7, dtype=np.uint8)
    got = np.frombuffer(pagediff.gather_pages_hashed(pages.tobytes(), np.array([5, 0, 2, 5]),
                                                     out, WEIGHTS), np.uint64)
    assert (out == pages[[5, 0, 2, 5]]).all()
    assert got.tolist() == [_hash_by_definition(pages[k].tobytes(), WEIGHTS) for k in (5, 0, 2, 5)]
    assert got[1] == 0


def test_gather_pages_hashed_errors(pagediff):
    src = bytes(3 * 4096)
    with pytest.raises(ValueError, match="out is 4096 bytes, expected 2 pages"):
        pagediff.gather_pages_hashed(src, [0, 1], bytearray(4096), WEIGHTS)
    out = bytearray(b"\x01" * 8192)
    with pytest.raises(IndexError, match="page index -1 out of range"):
        pagediff.gather_pages_hashed(src, [0, -1], out, WEIGHTS)
    assert out == b"\x01" * 8192                        # nothing written
    with pytest.raises(TypeError):
        pagediff.gather_pages_hashed(src, [0], bytes(4096), WEIGHTS)


@HYPO
@given(data=st.data(), npages=st.integers(1, 12))
def test_copy_and_gather_hashed_differential(pagediff, data, npages):
    """Both twins agree with copy_pages + hash_pages (and with each other)."""
    ps = 64
    w = np.array(data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8)),
                 dtype=np.uint64)
    src = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    dst0 = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=16))
    dst, want_dst = bytearray(dst0), bytearray(dst0)
    got = pagediff.copy_pages_hashed(src, dst, idx, w, page_size=ps)
    ref.copy_pages(src, want_dst, idx, ps)
    assert dst == want_dst
    assert got == ref.hash_pages(want_dst, idx, w, page_size=ps) \
        == ref.copy_pages_hashed(src, bytearray(dst0), idx, w, page_size=ps)
    out = bytearray(len(idx) * ps)
    hashes = pagediff.gather_pages_hashed(src, idx, out, w, page_size=ps)
    assert bytes(out) == b"".join(src[i * ps:(i + 1) * ps] for i in idx)
    assert hashes == ref.hash_pages(src, idx, w, page_size=ps)


def test_gather_pages_strided_leaves_the_gaps(pagediff):
    src = b"".join(bytes([k + 1]) * 16 for k in range(4))
    out = bytearray(b"." * 60)
    assert pagediff.gather_pages(src, [3, 0, 3], out, 16, 20, 4) is None
    assert out == b"...." + b"\x04" * 16 + b"...." + b"\x01" * 16 + b"...." + b"\x04" * 16
    out2 = bytearray(32)
    pagediff.gather_pages(src, np.array([1, 2]), out2, 16)      # default stride: packed
    assert out2 == b"\x02" * 16 + b"\x03" * 16
    pagediff.gather_pages(src, [], bytearray(), 16)


def test_gather_pages_errors_write_nothing(pagediff):
    src, out = bytes(64), bytearray(b"x" * 40)
    with pytest.raises(ValueError, match="too small for 2 pages at offset 5, stride 20"):
        pagediff.gather_pages(src, [0, 1], out, 16, 20, 5)
    with pytest.raises(IndexError, match="page index 4 out of range"):
        pagediff.gather_pages(src, [0, 4], out, 16, 20)
    with pytest.raises(ValueError, match="stride 8 must be >= page_size 16"):
        pagediff.gather_pages(src, [0], out, 16, 8)
    with pytest.raises(ValueError, match="offset -1 >= 0"):
        pagediff.gather_pages(src, [0], out, 16, 16, -1)
    with pytest.raises(TypeError):
        pagediff.gather_pages(src, [0], bytes(40), 16)
    assert out == b"x" * 40


@HYPO
@given(data=st.data(), npages=st.integers(1, 10), gap=st.integers(0, 9),
       offset=st.integers(0, 7))
def test_gather_pages_differential(pagediff, data, npages, gap, offset):
    ps = 16
    src = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=12))
    size = offset + len(idx) * (ps + gap)
    fill = data.draw(st.binary(min_size=size, max_size=size))
    out, want = bytearray(fill), bytearray(fill)
    for k, i in enumerate(idx):
        at = offset + k * (ps + gap)
        want[at:at + ps] = src[i * ps:(i + 1) * ps]
    pagediff.gather_pages(src, idx, out, ps, ps + gap, offset)
    assert out == want
    ref_out = bytearray(fill)
    ref.gather_pages(src, idx, ref_out, ps, ps + gap, offset)
    assert ref_out == want


def test_gather_pages_with_weights_returns_the_copies_hashes(pagediff):
    rng = np.random.default_rng(11)
    pages = rng.integers(0, 256, size=(5, 4096), dtype=np.uint8)
    pages[2] = 0
    out = bytearray(3 * 4200 + 50)
    got = pagediff.gather_pages(pages.tobytes(), [4, 2, 0], out, 4096, 4200, 50, WEIGHTS)
    assert np.frombuffer(got, np.uint64).tolist() == [
        _hash_by_definition(pages[k].tobytes(), WEIGHTS) for k in (4, 2, 0)]
    for j, k in enumerate((4, 2, 0)):
        assert out[50 + j * 4200:50 + j * 4200 + 4096] == pages[k].tobytes()
    assert pagediff.gather_pages(pages.tobytes(), [1], bytearray(4096)) is None
    with pytest.raises(ValueError, match="weights are 8 bytes"):
        pagediff.gather_pages(pages.tobytes(), [1], bytearray(4096), 4096, 4096, 0, bytes(8))


@HYPO
@given(data=st.data(), npages=st.integers(1, 12))
def test_zero_pages_at_differential(pagediff, data, npages):
    ps = 64
    kinds = data.draw(st.lists(st.sampled_from(["zero", "last", "first", "rand"]),
                               min_size=npages, max_size=npages))
    buf = bytearray()
    for kind in kinds:
        page = bytearray(ps)
        if kind == "last":
            page[-1] = 1
        elif kind == "first":
            page[0] = 0x80
        elif kind == "rand":
            page[:] = data.draw(st.binary(min_size=ps, max_size=ps))
        buf += page
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=16))
    want = [k for k, i in enumerate(idx) if not any(buf[i * ps:(i + 1) * ps])]
    assert pagediff.zero_pages_at(bytes(buf), idx, ps) == want
    assert ref.zero_pages_at(bytes(buf), np.array(idx, dtype=np.int64), ps) == want


def test_zero_pages_at_errors(pagediff):
    assert pagediff.zero_pages_at(bytes(8192), []) == []
    with pytest.raises(IndexError, match="page index 2 out of range"):
        pagediff.zero_pages_at(bytes(8192), [0, 2])
    with pytest.raises(ValueError, match="not a multiple"):
        pagediff.zero_pages_at(bytes(100), [0])


# ---------------------------------------------------------------- build_bytes
def test_build_bytes_writes_a_new_bytes_object(pagediff):
    def fill(view):
        assert not view.readonly and len(view) == 6
        view[:] = b"abcdef"
    out = pagediff.build_bytes(6, fill)
    assert type(out) is bytes and out == b"abcdef"
    assert pagediff.build_bytes(0, lambda v: None) == b""
    with pytest.raises(ValueError, match="size must be >= 0, not -1"):
        pagediff.build_bytes(-1, lambda v: None)


def test_build_bytes_result_cannot_change_when_fill_keeps_a_view(pagediff):
    kept = []

    def fill(view):
        view[:] = b"abc"
        kept.append(np.frombuffer(view, dtype=np.uint8))
    out = pagediff.build_bytes(3, fill)
    kept[0][0] = ord("X")                      # writes the builder's memory, not `out`
    assert out == b"abc"


def test_build_bytes_passes_fill_errors_on(pagediff):
    def fill(view):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        pagediff.build_bytes(10, fill)


def test_build_bytes_c_writes_the_result_itself(pagediff):
    """The compiled twin's point: `fill` writes the returned object, no copy after."""
    if not pagediff.__name__.endswith("_c"):
        pytest.skip("the pure-Python twin copies a bytearray, by design")
    where = []

    def fill(view):
        arr = np.frombuffer(view, dtype=np.uint8)
        arr[:] = 7
        where.append(arr.ctypes.data)
    out = pagediff.build_bytes(1 << 16, fill)
    assert np.frombuffer(out, dtype=np.uint8).ctypes.data == where[0]
    assert out == b"\x07" * (1 << 16)


def test_build_bytes_c_writer_kept_by_fill_cannot_write_later(pagediff):
    """`fill` may keep the writer object itself (view.obj): once build_bytes has
    returned, it gives no new writable view of the (now shared) bytes object."""
    if not pagediff.__name__.endswith("_c"):
        pytest.skip("the pure-Python twin's view is over its own bytearray")
    kept = []

    def fill(view):
        view[:] = b"immutable"
        kept.append(view.obj)
    out = pagediff.build_bytes(9, fill)
    with pytest.raises(BufferError, match="complete and immutable"):
        memoryview(kept[0])
    assert out == b"immutable"
