"""changed_pages / zero_pages / scatter_pages on both twins (the selector: test_twins.py)."""

from __future__ import annotations

import array
import ctypes
import mmap
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.guest import _pagediff_py as ref

HYPO = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
GIB = 1 << 30
MIB = 1 << 20
MAP_FIXED = getattr(mmap, "MAP_FIXED", 0x10)


def pages_of(data: bytes, ps: int) -> list[bytes]:
    return [data[k:k + ps] for k in range(0, len(data), ps)]


# ---------------------------------------------------------------- changed_pages
def test_changed_pages_edges(pagediff):
    assert pagediff.changed_pages(b"", b"") == []
    one = bytes(4096)
    assert pagediff.changed_pages(one, one) == []
    assert pagediff.changed_pages(one, b"\x01" + one[1:]) == [0]
    buf = bytearray(4096 * 5)
    other = bytearray(buf)
    other[-1] = 9
    assert pagediff.changed_pages(buf, other) == [4]
    other[4096] = 1
    assert pagediff.changed_pages(memoryview(buf), other) == [1, 4]


def test_changed_pages_errors(pagediff):
    with pytest.raises(ValueError, match="8192 != 4096"):
        pagediff.changed_pages(bytes(8192), bytes(4096))
    with pytest.raises(ValueError, match="4100 is not a multiple of page_size 4096"):
        pagediff.changed_pages(bytes(4100), bytes(4100))
    with pytest.raises(ValueError, match="page_size"):
        pagediff.changed_pages(bytes(64), bytes(64), page_size=0)


def test_changed_pages_accepts_buffers(pagediff):
    with mmap.mmap(-1, 3 * 4096) as m:
        m[5000] = 1
        assert pagediff.changed_pages(m, bytes(3 * 4096)) == [1]
        assert pagediff.changed_pages(array.array("q", bytes(3 * 4096)), m) == [1]


@HYPO
@given(data=st.data(), ps=st.sampled_from([1, 8, 64, 100, 4096]), npages=st.integers(0, 40))
def test_changed_pages_differential(pagediff, data, ps, npages):
    old = data.draw(st.binary(min_size=ps * npages, max_size=ps * npages))
    new = bytearray(old)
    for k in data.draw(st.lists(st.integers(0, max(len(new) - 1, 0)), max_size=10)):
        if new:
            new[k] ^= data.draw(st.integers(1, 255))
    expected = [i for i, (a, b) in enumerate(zip(pages_of(old, ps), pages_of(bytes(new), ps),
                                                 strict=True)) if a != b]
    assert pagediff.changed_pages(old, new, ps) == expected == ref.changed_pages(old, new, ps)


# ---------------------------------------------------------------- zero_pages
def test_zero_pages_edges(pagediff):
    assert pagediff.zero_pages(b"") == []
    assert pagediff.zero_pages(bytes(4096)) == [0]
    assert pagediff.zero_pages(b"\x00" * 4095 + b"\x01") == []
    buf = bytearray(4096 * 4)
    buf[4096 * 3 - 1] = 1           # last byte of page 2
    assert pagediff.zero_pages(buf) == [0, 1, 3]
    with pytest.raises(ValueError, match="100 is not a multiple of page_size 64"):
        pagediff.zero_pages(bytes(100), 64)


@HYPO
@given(data=st.data(), ps=st.sampled_from([1, 7, 64, 4096]), npages=st.integers(0, 40))
def test_zero_pages_differential(pagediff, data, ps, npages):
    buf = bytearray(ps * npages)
    for k in data.draw(st.lists(st.integers(0, max(len(buf) - 1, 0)), max_size=12)):
        if buf:
            buf[k] = data.draw(st.integers(1, 255))
    expected = [i for i, p in enumerate(pages_of(bytes(buf), ps)) if not any(p)]
    assert pagediff.zero_pages(buf, ps) == expected == ref.zero_pages(buf, ps)


# ---------------------------------------------------------------- scatter_pages
def test_scatter_pages(pagediff):
    ram = bytearray(4096 * 4)
    pages = b"A" * 4096 + b"B" * 4096
    assert pagediff.scatter_pages(ram, [3, 0], pages) is None
    assert ram == b"B" * 4096 + bytes(8192) + b"A" * 4096
    pagediff.scatter_pages(ram, array.array("q", [1]), b"C" * 4096)
    assert ram[4096:8192] == b"C" * 4096
    pagediff.scatter_pages(ram, [], b"")
    pagediff.scatter_pages(memoryview(ram), (2,), b"D" * 64, page_size=64)
    assert ram[128:192] == b"D" * 64


@pytest.mark.parametrize("bad", [4, -1, 2**70])
def test_scatter_pages_bad_index_writes_nothing(pagediff, bad):
    ram = bytearray(4096 * 4)
    with pytest.raises(IndexError, match=str(bad)):
        pagediff.scatter_pages(ram, [0, bad], b"x" * 8192)
    assert ram == bytes(4096 * 4)


def test_scatter_pages_errors(pagediff):
    with pytest.raises(ValueError, match="4096 bytes, expected 2 pages"):
        pagediff.scatter_pages(bytearray(8192), [0, 1], bytes(4096))
    with pytest.raises(ValueError, match="not a multiple"):
        pagediff.scatter_pages(bytearray(100), [0], bytes(4096))
    with pytest.raises(TypeError):
        pagediff.scatter_pages(bytes(8192), [0], bytes(4096))
    with pytest.raises(TypeError):
        pagediff.scatter_pages(bytearray(8192), [0.0], bytes(4096))


@HYPO
@given(data=st.data(), ps=st.sampled_from([1, 16, 64]), npages=st.integers(1, 30))
def test_scatter_pages_differential(pagediff, data, ps, npages):
    ram = bytearray(data.draw(st.binary(min_size=ps * npages, max_size=ps * npages)))
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=20))
    pages = data.draw(st.binary(min_size=ps * len(idx), max_size=ps * len(idx)))
    expected = bytearray(ram)
    ref.scatter_pages(expected, idx, pages, ps)
    for k, i in enumerate(idx):
        assert expected[i * ps:(i + 1) * ps] == pages[k * ps:(k + 1) * ps] or i in idx[k + 1:]
    pagediff.scatter_pages(ram, idx, pages, ps)
    assert ram == expected


def test_scatter_pages_strided_from_a_wire_image(pagediff):
    """Pages at a stride (8-byte record headers between them), from an offset: each
    lands whole, the headers never reach RAM."""
    ram = bytearray(64 * 4)
    wire = b"hdr" + b"".join(b"H" * 8 + bytes([65 + k]) * 64 for k in range(3))
    pagediff.scatter_pages(ram, [2, 0, 3], wire, 64, stride=72, offset=3 + 8)
    assert ram == b"B" * 64 + bytes(64) + b"A" * 64 + b"C" * 64
    with pytest.raises(ValueError, match="too small for 3 pages"):
        pagediff.scatter_pages(ram, [0, 1, 2], wire, 64, stride=72, offset=12)
    with pytest.raises(ValueError, match="stride 32 must be >= page_size 64"):
        pagediff.scatter_pages(ram, [0], wire, 64, stride=32)
    with pytest.raises(ValueError, match="offset -1"):
        pagediff.scatter_pages(ram, [0], wire, 64, stride=72, offset=-1)
    pagediff.scatter_pages(ram, [], b"", 64, stride=72, offset=5)     # nothing to do
    assert ram == b"B" * 64 + bytes(64) + b"A" * 64 + b"C" * 64


@HYPO
@given(data=st.data(), ps=st.sampled_from([1, 16, 64]), npages=st.integers(1, 30),
       gap=st.integers(0, 9), offset=st.integers(0, 7))
def test_scatter_pages_strided_differential(pagediff, data, ps, npages, gap, offset):
    ram = bytearray(data.draw(st.binary(min_size=ps * npages, max_size=ps * npages)))
    idx = data.draw(st.lists(st.integers(0, npages - 1), max_size=20))
    stride = ps + gap
    size = offset + max(0, len(idx) - 1) * stride + (ps if idx else 0)
    wire = data.draw(st.binary(min_size=size, max_size=size + 5))
    expected = bytearray(ram)
    for k, i in enumerate(idx):         # the plain reading of the spec
        expected[i * ps:(i + 1) * ps] = wire[offset + k * stride:offset + k * stride + ps]
    pagediff.scatter_pages(ram, idx, wire, ps, stride=stride, offset=offset)
    assert ram == expected


# ---------------------------------------------------------------- 64-bit offsets
def _mmap_fixed():
    """libc's mmap, for MAP_FIXED (Linux; None elsewhere)."""
    if not hasattr(os, "memfd_create"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.mmap
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                   ctypes.c_long]
    return fn


def mapping_past_4_gib(mark: bool) -> mmap.mmap:
    """A 4 GiB + 1 MiB mapping whose first 4 GiB are one 1 MiB memfd mapped 4096 times
    (byte 0 of it is 1 if `mark`) and whose last MiB is the mapping's own memory.

    Reading it costs one 1 MiB of memory and few page faults (shared pages, fault-
    around), where a plain sparse mapping costs a million faults (the compiled twin
    reads whole pages).  Page 4096 starts at 4 GiB and is distinct memory: an offset
    that wrapped at 32 bits would land on page 0, which is the marked tile."""
    m = mmap.mmap(-1, 4 * GIB + MIB)
    fixed = _mmap_fixed()
    if fixed is None:                 # a plain sparse mapping: slower, same content
        if mark:
            for k in range(4096):
                m[k * MIB] = 1
        return m
    fd = os.memfd_create("pagediff-tile")
    try:
        os.ftruncate(fd, MIB)
        if mark:
            with mmap.mmap(fd, MIB) as tile:
                tile[0] = 1
        anchor = ctypes.c_char.from_buffer(m)
        base = ctypes.addressof(anchor)
        del anchor
        for k in range(4096):
            at = base + k * MIB
            if fixed(at, MIB, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED | MAP_FIXED,
                     fd, 0) != at:
                m.close()
                raise OSError(ctypes.get_errno(), "mmap(MAP_FIXED) of the tile failed")
    finally:
        os.close(fd)
    return m


def test_offsets_past_4_gib(pagediff):
    """Offsets >= 2**32 on a 4 GiB + 1 MiB mapping.  Pages 0..4095 of 1 MiB start
    with a 1 in `a` and are zero in `b`; page 4096 starts at 4 GiB, and a 32-bit
    offset would wrap it onto page 0, which differs / is not zero."""
    try:
        a = mapping_past_4_gib(mark=True)
        b = mapping_past_4_gib(mark=False)
    except (OSError, OverflowError, ValueError) as exc:
        pytest.skip(f"no 4 GiB mapping here: {exc}")
    with a, b:
        assert a[7 * MIB] == 1 and a[4095 * MIB] == 1 and a[4096 * MIB] == 0
        assert pagediff.zero_pages(a, MIB) == [4096]
        assert pagediff.changed_pages(a, b, MIB) == list(range(4096))
        pagediff.scatter_pages(a, [4 * GIB // 4096 + 3], b"\x07" * 4096)
        off = 4 * GIB + 3 * 4096
        assert a[off - 1:off + 4097] == b"\0" + b"\x07" * 4096 + b"\0"
        assert a[3 * 4096] == 0
        assert pagediff.changed_pages(a, b, MIB) == list(range(4097))
        assert pagediff.zero_pages(a, MIB) == []
