"""Pure-Python page-diff twin: the reference specification.

`protocol.guest._pagediff_c` (Cython) must give the same results, including the
text of every error.  Both twins accept any C-contiguous buffer-protocol object
(bytes, bytearray, memoryview, mmap, numpy arrays ...).

XBZRLE is QEMU's migration/xbzrle.c format:

    page  = zrun nzrun | zrun nzrun page
    zrun  = length                (unchanged bytes; 0 only in the first pair)
    nzrun = length byte...        (changed bytes, >= 1, copied from the new page)
    length = ULEB128, at most 14 bits (one byte below 0x80, else two bytes)

No trailing zrun is written.  QEMU's encoder scans eight bytes at a time where it
can, but every run boundary it emits is byte-exact: an unchanged run always ends
at the first differing byte (the word loop is followed by a byte loop) and a
changed run always ends at the first equal byte (the "has a zero byte" test on
the xor word is exact as a yes/no, and then a byte loop finds the byte).  So the
runs are exactly the maximal runs of equal / differing bytes, which is what this
twin computes with a regular expression over the xor of the two pages.  Where the
encoder gives up (returns None) follows QEMU's checks one for one.
"""

from __future__ import annotations

import operator
import re

__all__ = ["changed_pages", "zero_pages", "scatter_pages", "copy_pages", "hash_pages",
           "copy_pages_hashed", "gather_pages_hashed", "gather_pages", "zero_pages_at",
           "build_bytes", "xbzrle_encode", "xbzrle_decode", "xbzrle_decode_into",
           "SPEC_VERSION"]

#: the twins' common interface, bumped when a signature changes (2: scatter_pages took
#: stride and offset): a compiled twin of another version is stale, never used
SPEC_VERSION = 2

_CHUNK = 1 << 20            # compare at most this many bytes per bytes() copy
_MAX_RUN = 0x3FFF           # 14-bit ULEB128 limit of QEMU's uleb128_encode_small
_CHANGED_RUN = re.compile(rb"[^\x00]+")

# Error texts shared, word for word, with the C twin.
E_TRUNC_ZRUN = "xbzrle: unchanged-run length past the input end (input offset {})"
E_TRUNC_NZRUN = "xbzrle: changed-run length past the input end (input offset {})"
E_BAD_ULEB = "xbzrle: bad ULEB128 length, over 14 bits (input offset {})"
E_ZERO_ZRUN = "xbzrle: zero-length unchanged run after the first pair (input offset {})"
E_ZERO_NZRUN = "xbzrle: zero-length changed run (input offset {})"
E_ZRUN_PAGE = "xbzrle: unchanged run past the page end (page offset {} > {})"
E_NZRUN_PAGE = "xbzrle: changed run past the page end (page offset {} > {})"
E_NZRUN_INPUT = "xbzrle: changed run past the input end (input offset {} > {})"


def _view(buf, writable: bool = False) -> memoryview:
    view = memoryview(buf)
    if not view.c_contiguous:
        raise BufferError("page buffers must be C-contiguous")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if writable and view.readonly:
        raise TypeError("buffer is read-only")
    return view


def _check_page_size(page_size: int) -> int:
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, not {page_size}")
    return page_size


def _check_multiple(n: int, page_size: int) -> None:
    if n % page_size:
        raise ValueError(f"buffer length {n} is not a multiple of page_size {page_size}")


def _spans(start: int, end: int):
    """[start, end) in chunks of 4 KiB doubling up to _CHUNK: a big page that
    differs early is decided early, and no copy exceeds _CHUNK bytes."""
    step = 4096
    while start < end:
        hi = min(start + step, end)
        yield start, hi
        start, step = hi, min(step * 2, _CHUNK)


def _equal(a: memoryview, b: memoryview, start: int, end: int) -> bool:
    return all(a[lo:hi].tobytes() == b[lo:hi].tobytes() for lo, hi in _spans(start, end))


def _all_zero(a: memoryview, start: int, end: int, zeros: bytes) -> bool:
    return all(a[lo:hi].tobytes() == zeros[: hi - lo] for lo, hi in _spans(start, end))


def changed_pages(old, new, page_size: int = 4096) -> list[int]:
    """Sorted indices of the pages that differ between two equal-length buffers."""
    _check_page_size(page_size)
    ov, nv = _view(old), _view(new)
    n = len(ov)
    if n != len(nv):
        raise ValueError(f"buffers differ in length: {n} != {len(nv)}")
    _check_multiple(n, page_size)
    out: list[int] = []
    if page_size >= _CHUNK:
        for index, start in enumerate(range(0, n, page_size)):
            if not _equal(ov, nv, start, start + page_size):
                out.append(index)
        return out
    group = _CHUNK // page_size * page_size
    for base in range(0, n, group):
        a = ov[base:base + group].tobytes()
        b = nv[base:base + group].tobytes()
        if a == b:
            continue
        for off in range(0, len(a), page_size):
            if a[off:off + page_size] != b[off:off + page_size]:
                out.append((base + off) // page_size)
    return out


def zero_pages(buf, page_size: int = 4096) -> list[int]:
    """Indices of the pages of `buf` whose bytes are all zero."""
    _check_page_size(page_size)
    view = _view(buf)
    n = len(view)
    _check_multiple(n, page_size)
    out: list[int] = []
    zeros = bytes(min(n, _CHUNK))
    if page_size >= _CHUNK:
        for index, start in enumerate(range(0, n, page_size)):
            if _all_zero(view, start, start + page_size, zeros):
                out.append(index)
        return out
    group = _CHUNK // page_size * page_size
    page_zeros = zeros[:page_size]
    for base in range(0, n, group):
        chunk = view[base:base + group].tobytes()
        if chunk == zeros[: len(chunk)]:
            out.extend(range(base // page_size, (base + len(chunk)) // page_size))
            continue
        for off in range(0, len(chunk), page_size):
            if chunk[off:off + page_size] == page_zeros:
                out.append((base + off) // page_size)
    return out


def scatter_pages(ram, indices, pages, page_size: int = 4096, stride: int = -1,
                  offset: int = 0) -> None:
    """Write page k of `pages` over page indices[k] of `ram`, in place.

    Page k is pages[offset + k * stride:][:page_size]; by default (stride -1,
    offset 0) the pages are consecutive and `pages` holds exactly them; a larger
    stride skips gaps (the record headers of a wire image: pages decoded straight
    from it into RAM).  Every index and the extent are checked before anything is
    written.
    """
    _check_page_size(page_size)
    exact = stride == -1 and offset == 0
    if stride == -1:
        stride = page_size
    if stride < page_size or offset < 0:
        raise ValueError(f"stride {stride} must be >= page_size {page_size} and offset "
                         f"{offset} >= 0")
    dst = _view(ram, writable=True)
    src = _view(pages)
    n = len(dst)
    _check_multiple(n, page_size)
    npages = n // page_size
    idx = [operator.index(i) for i in indices]
    if exact and len(src) != len(idx) * page_size:
        raise ValueError(
            f"pages buffer is {len(src)} bytes, expected {len(idx)} pages x {page_size} = "
            f"{len(idx) * page_size}")
    if idx and offset + (len(idx) - 1) * stride + page_size > len(src):
        raise ValueError(f"pages buffer is {len(src)} bytes, too small for {len(idx)} pages "
                         f"at offset {offset}, stride {stride}")
    _check_indices(idx, npages)
    for k, i in enumerate(idx):
        at = offset + k * stride
        dst[i * page_size:(i + 1) * page_size] = src[at:at + page_size]


def _check_indices(idx: list[int], npages: int) -> None:
    for i in idx:
        if not 0 <= i < npages:
            raise IndexError(f"page index {i} out of range for {npages} pages")


def copy_pages(src, dst, indices, page_size: int = 4096) -> None:
    """Copy the pages `indices` of `src` over the same pages of `dst`, in place.

    The two buffers have the same length; every index is checked before anything
    is written (the RAM cache's flush: cache pages -> SVM RAM in one pass).
    """
    _check_page_size(page_size)
    a = _view(src)
    b = _view(dst, writable=True)
    if len(a) != len(b):
        raise ValueError(f"buffers differ in length: {len(a)} != {len(b)}")
    _check_multiple(len(a), page_size)
    idx = [operator.index(i) for i in indices]
    _check_indices(idx, len(a) // page_size)
    for i in idx:
        b[i * page_size:(i + 1) * page_size] = a[i * page_size:(i + 1) * page_size]


def gather_pages(src, indices, out, page_size: int = 4096, stride: int = -1,
                 offset: int = 0, weights=None) -> bytes | None:
    """Copy page indices[k] of `src` to out[offset + k * stride:][:page_size] for
    every k (stride defaults to page_size: consecutive pages; a larger stride
    leaves gaps, e.g. for the record headers of a wire image).  Every index and
    the extent in `out` are checked before anything is written.  With `weights`,
    returns the copies' `hash_pages` hashes (bytes, 8 per index), each page
    hashed from its copy in the same pass; else None."""
    _check_page_size(page_size)
    if weights is not None:
        _check_hash_args(weights, page_size)
    if stride == -1:
        stride = page_size
    if stride < page_size or offset < 0:
        raise ValueError(f"stride {stride} must be >= page_size {page_size} and offset "
                         f"{offset} >= 0")
    a = _view(src)
    b = _view(out, writable=True)
    _check_multiple(len(a), page_size)
    idx = [operator.index(i) for i in indices]
    if idx and offset + (len(idx) - 1) * stride + page_size > len(b):
        raise ValueError(f"out is {len(b)} bytes, too small for {len(idx)} pages at offset "
                         f"{offset}, stride {stride}")
    _check_indices(idx, len(a) // page_size)
    for k, i in enumerate(idx):
        at = offset + k * stride
        b[at:at + page_size] = a[i * page_size:(i + 1) * page_size]
    if weights is None:
        return None
    return hash_pages(a, idx, weights, page_size)


def zero_pages_at(buf, indices, page_size: int = 4096) -> list[int]:
    """Positions k (ascending) where page indices[k] of `buf` is all zero."""
    _check_page_size(page_size)
    view = _view(buf)
    _check_multiple(len(view), page_size)
    idx = [operator.index(i) for i in indices]
    _check_indices(idx, len(view) // page_size)
    zero = bytes(page_size)
    return [k for k, i in enumerate(idx) if view[i * page_size:(i + 1) * page_size] == zero]


def copy_pages_hashed(src, dst, indices, weights, page_size: int = 4096) -> bytes:
    """`copy_pages` that also returns the copied pages' `hash_pages` hashes (bytes,
    8 per index), each page hashed from its fresh copy: one pass over the bytes."""
    _check_page_size(page_size)
    _check_hash_args(weights, page_size)
    idx = [operator.index(i) for i in indices]
    copy_pages(src, dst, idx, page_size)
    return hash_pages(dst, idx, weights, page_size)


def gather_pages_hashed(src, indices, out, weights, page_size: int = 4096) -> bytes:
    """Copy the pages `indices` of `src` to consecutive pages 0, 1, ... of the
    writable buffer `out` (exactly len(indices) pages) and return their
    `hash_pages` hashes (bytes, 8 per index), hashed from the copies."""
    _check_page_size(page_size)
    _check_hash_args(weights, page_size)
    a = _view(src)
    b = _view(out, writable=True)
    _check_multiple(len(a), page_size)
    idx = [operator.index(i) for i in indices]
    if len(b) != len(idx) * page_size:
        raise ValueError(f"out is {len(b)} bytes, expected {len(idx)} pages of {page_size} "
                         f"= {len(idx) * page_size}")
    _check_indices(idx, len(a) // page_size)
    for k, i in enumerate(idx):
        b[k * page_size:(k + 1) * page_size] = a[i * page_size:(i + 1) * page_size]
    return hash_pages(b, range(len(idx)), weights, page_size)


def _check_hash_args(weights, page_size: int) -> None:
    if page_size % 8:
        raise ValueError(f"page_size must be a multiple of 8 to hash, not {page_size}")
    w = _view(weights)
    if len(w) != page_size:
        raise ValueError(f"weights are {len(w)} bytes, expected {page_size // 8} x 8 = "
                         f"{page_size}")


def hash_pages(buf, indices, weights, page_size: int = 4096) -> bytes:
    """64-bit content hashes of the pages `indices` of `buf`, as native-endian
    uint64 values packed in a bytes object (8 bytes per index).

    h = sum_i mix(x_i) * weights[i] mod 2**64 over the page's native-endian
    64-bit words x_i, mix(x) = x ^ (x >> 29); `weights` holds page_size / 8
    native uint64.  An all-zero page hashes to 0 and only it does (a non-zero
    page whose sum is 0 gets 1).
    """
    import numpy as np
    _check_page_size(page_size)
    if page_size % 8:
        raise ValueError(f"page_size must be a multiple of 8 to hash, not {page_size}")
    a = _view(buf)
    _check_multiple(len(a), page_size)
    w = _view(weights)
    if len(w) != page_size:
        raise ValueError(f"weights are {len(w)} bytes, expected {page_size // 8} x 8 = "
                         f"{page_size}")
    idx = [operator.index(i) for i in indices]
    _check_indices(idx, len(a) // page_size)
    words = np.frombuffer(a, dtype=np.uint64).reshape(-1, page_size // 8)
    wts = np.frombuffer(w, dtype=np.uint64)
    out = np.empty(len(idx), dtype=np.uint64)
    rows = np.asarray(idx, dtype=np.int64)
    chunk = max(1, (1 << 20) // page_size)      # 1 MiB of scratch at a time
    for start in range(0, len(rows), chunk):
        part = words[rows[start:start + chunk]]
        t = np.right_shift(part, np.uint64(29))
        np.bitwise_xor(t, part, out=t)
        np.multiply(t, wts, out=t)
        t.sum(axis=1, out=out[start:start + len(part)])
    for k in np.flatnonzero(out == 0).tolist():
        if words[rows[k]].any():
            out[k] = 1
    return out.tobytes()


def build_bytes(n: int, fill) -> bytes:
    """A new bytes object of `n` bytes written by `fill(view)`, `view` a writable
    byte memoryview that `fill` must write whole and not keep.  (The compiled twin
    writes straight into the bytes object: no copy of a large wire image.)"""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"size must be >= 0, not {n}")
    buf = bytearray(n)
    fill(memoryview(buf))
    return bytes(buf)


def _uleb(value: int) -> bytes:
    if value > _MAX_RUN:
        raise ValueError(f"xbzrle: run of {value} bytes does not fit a 14-bit length")
    if value < 0x80:
        return bytes((value,))
    return bytes(((value & 0x7F) | 0x80, value >> 7))


def xbzrle_encode(old, new, limit: int = 4096) -> bytes | None:
    """QEMU XBZRLE delta from `old` to `new`; b"" if identical, None if over `limit`.

    Like QEMU, the encoder needs 2 free bytes before each length it writes (so
    identical pages with limit < 2 give None) and room for a whole changed run
    before copying it.
    """
    ov, nv = _view(old), _view(new)
    n = len(ov)
    if n != len(nv):
        raise ValueError(f"pages differ in length: {n} != {len(nv)}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    if n == 0:
        return b""
    newb = nv.tobytes()
    diff = (int.from_bytes(ov, "little") ^ int.from_bytes(newb, "little")).to_bytes(n, "little")
    out = bytearray()
    pos = 0
    for run in _CHANGED_RUN.finditer(diff):
        start, end = run.span()
        if len(out) + 2 > limit:
            return None
        out += _uleb(start - pos)
        if len(out) + 2 > limit:
            return None
        out += _uleb(end - start)
        if len(out) + end - start > limit:
            return None
        out += newb[start:end]
        pos = end
    if pos < n and len(out) + 2 > limit:    # QEMU checks before scanning the tail
        return None
    return bytes(out)


def _read_uleb(src: bytes, i: int) -> tuple[int, int]:
    first = src[i]
    if first < 0x80:
        return first, i + 1
    second = src[i + 1]
    if second & 0x80:
        raise ValueError(E_BAD_ULEB.format(i))
    return (first & 0x7F) | (second << 7), i + 2


def xbzrle_decode(encoded, old) -> bytes:
    """Apply an XBZRLE delta to a copy of `old`; ValueError on malformed input."""
    src = _view(encoded).tobytes()
    page = bytearray(_view(old))
    n, slen = len(page), len(src)
    i = d = 0
    while i < slen:
        if slen - i < 2:
            raise ValueError(E_TRUNC_ZRUN.format(i))
        at = i
        count, i = _read_uleb(src, i)
        if at and not count:
            raise ValueError(E_ZERO_ZRUN.format(at))
        d += count
        if d > n:
            raise ValueError(E_ZRUN_PAGE.format(d, n))
        if slen - i < 2:
            raise ValueError(E_TRUNC_NZRUN.format(i))
        at = i
        count, i = _read_uleb(src, i)
        if not count:
            raise ValueError(E_ZERO_NZRUN.format(at))
        if d + count > n:
            raise ValueError(E_NZRUN_PAGE.format(d + count, n))
        if i + count > slen:
            raise ValueError(E_NZRUN_INPUT.format(i + count, slen))
        page[d:d + count] = src[i:i + count]
        d += count
        i += count
    return bytes(page)


def xbzrle_decode_into(encoded, page) -> None:
    """Apply an XBZRLE delta to `page` in place (a writable buffer that holds the
    old page, as QEMU decodes into the page it has); ValueError on malformed
    input, and then `page` is left as it was."""
    dst = _view(page, writable=True)
    dst[:] = xbzrle_decode(encoded, dst)
