# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython page-diff twin: same names, results and error texts as `_pagediff_py`.

The loops are plain C (below) run with the GIL released.  All offsets are
Py_ssize_t, so buffers past 4 GiB work.  XBZRLE output is byte-identical to QEMU's
migration/xbzrle.c: its run boundaries are byte-exact despite its word-at-a-time
scanning (see `_pagediff_py`), and this scanner finds the same boundaries eight
bytes at a time with an exact per-byte test, then checks for room exactly where
QEMU does.
"""
from cpython.buffer cimport (PyBUF_FORMAT, PyBUF_ND, PyBUF_SIMPLE, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from operator import index as _index

from protocol.guest._pagediff_py import (E_BAD_ULEB, E_NZRUN_INPUT, E_NZRUN_PAGE,
                                         E_TRUNC_NZRUN, E_TRUNC_ZRUN, E_ZERO_NZRUN,
                                         E_ZERO_ZRUN, E_ZRUN_PAGE)

__all__ = ["changed_pages", "zero_pages", "scatter_pages", "xbzrle_encode", "xbzrle_decode"]

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #define PD_LOW7 0x7f7f7f7f7f7f7f7fULL
    #define PD_HIGH 0x8080808080808080ULL

    static inline uint64_t pd_load(const unsigned char *p) {
        uint64_t v;
        memcpy(&v, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);   /* byte 0 in the low bits, as on little-endian */
    #endif
        return v;
    }

    /* First i in [i, n) with a[i] != b[i], or n. */
    static inline Py_ssize_t pd_next_diff(const unsigned char *a, const unsigned char *b,
                                          Py_ssize_t i, Py_ssize_t n) {
        uint64_t x;
        while (i + 32 <= n) {
            uint64_t x0 = pd_load(a + i) ^ pd_load(b + i);
            uint64_t x1 = pd_load(a + i + 8) ^ pd_load(b + i + 8);
            uint64_t x2 = pd_load(a + i + 16) ^ pd_load(b + i + 16);
            uint64_t x3 = pd_load(a + i + 24) ^ pd_load(b + i + 24);
            if (x0 | x1 | x2 | x3) {
                if (x0) return i + (__builtin_ctzll(x0) >> 3);
                if (x1) return i + 8 + (__builtin_ctzll(x1) >> 3);
                if (x2) return i + 16 + (__builtin_ctzll(x2) >> 3);
                return i + 24 + (__builtin_ctzll(x3) >> 3);
            }
            i += 32;
        }
        while (i + 8 <= n) {
            x = pd_load(a + i) ^ pd_load(b + i);
            if (x) return i + (__builtin_ctzll(x) >> 3);
            i += 8;
        }
        while (i < n && a[i] == b[i]) i++;
        return i;
    }

    /* First i in [i, n) with a[i] == b[i], or n.  A byte y of the xor word is
       zero iff bit 7 of ((y & 0x7f) + 0x7f) | y is clear: exact, no carries
       between bytes (unlike QEMU's cheaper has-zero test, only used as yes/no). */
    static inline Py_ssize_t pd_next_same(const unsigned char *a, const unsigned char *b,
                                          Py_ssize_t i, Py_ssize_t n) {
        while (i + 8 <= n) {
            uint64_t x = pd_load(a + i) ^ pd_load(b + i);
            uint64_t z = ~(((x & PD_LOW7) + PD_LOW7) | x) & PD_HIGH;
            if (z) return i + (__builtin_ctzll(z) >> 3);
            i += 8;
        }
        while (i < n && a[i] != b[i]) i++;
        return i;
    }

    static inline Py_ssize_t pd_put_uleb(unsigned char *p, Py_ssize_t v) {
        if (v < 0x80) { p[0] = (unsigned char)v; return 1; }
        p[0] = (unsigned char)((v & 0x7f) | 0x80);
        p[1] = (unsigned char)(v >> 7);
        return 2;
    }

    /* QEMU's xbzrle_encode_buffer, check for check.  dst must hold the output
       (at most 3n+4 bytes) but dlen may be larger.  Returns the length, -1 on
       overflow, -2 for a run over 14 bits (QEMU asserts). */
    static Py_ssize_t pd_xbzrle_encode(const unsigned char *old, const unsigned char *new_,
                                       Py_ssize_t n, unsigned char *dst, Py_ssize_t dlen) {
        Py_ssize_t i = 0, d = 0, j, run;
        while (i < n) {
            if (d + 2 > dlen) return -1;
            j = pd_next_diff(old, new_, i, n);
            if (j == n) return d;           /* unchanged page (d == 0) or tail zrun */
            run = j - i;
            if (run > 0x3fff) return -2;
            d += pd_put_uleb(dst + d, run);
            if (d + 2 > dlen) return -1;
            i = j;
            j = (j + 1 < n && old[j + 1] == new_[j + 1]) ? j + 1 : pd_next_same(old, new_, j, n);
            run = j - i;
            if (run > 0x3fff) return -2;
            d += pd_put_uleb(dst + d, run);
            if (d + run > dlen) return -1;
            memcpy(dst + d, new_ + i, run);
            d += run;
            i = j;
        }
        return d;
    }

    /* Reads a 14-bit ULEB128 at p (2 bytes are there); its size, or -1 if over 14 bits. */
    static inline int pd_get_uleb(const unsigned char *p, Py_ssize_t *v) {
        if (p[0] < 0x80) { *v = p[0]; return 1; }
        if (p[1] & 0x80) return -1;
        *v = (p[0] & 0x7f) | ((Py_ssize_t)p[1] << 7);
        return 2;
    }

    /* QEMU's xbzrle_decode_buffer on dst (a copy of the old page).  Returns 0 or
       an error code 1..8 (the E_* texts) with *a, *b the offsets it names. */
    static int pd_xbzrle_decode(const unsigned char *src, Py_ssize_t slen, unsigned char *dst,
                                Py_ssize_t dlen, Py_ssize_t *a, Py_ssize_t *b) {
        Py_ssize_t i = 0, d = 0, count;
        int r;
        while (i < slen) {
            if (slen - i < 2) { *a = i; return 1; }
            if ((r = pd_get_uleb(src + i, &count)) < 0) { *a = i; return 3; }
            if (i && !count) { *a = i; return 4; }
            i += r;
            d += count;
            if (d > dlen) { *a = d; *b = dlen; return 6; }
            if (slen - i < 2) { *a = i; return 2; }
            if ((r = pd_get_uleb(src + i, &count)) < 0) { *a = i; return 3; }
            if (!count) { *a = i; return 5; }
            i += r;
            if (d + count > dlen) { *a = d + count; *b = dlen; return 7; }
            if (i + count > slen) { *a = i + count; *b = slen; return 8; }
            memcpy(dst + d, src + i, (size_t)count);
            d += count;
            i += count;
        }
        return 0;
    }

    /* memcmp per page is at memcmp bandwidth while pages are equal, but its exit
       at a random byte of a changed page breaks the hardware prefetch stream (a
       100 %-changed 1 GiB scan ran ~1.35x slower than a full memcmp).  Where the
       CPU has AVX2 (checked at run time; the build stays portable) each 4 KiB
       block is read whole, xor/or-accumulated, which streams like memcmp. */
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    #define PD_AVX2 1
    __attribute__((target("avx2")))
    static Py_ssize_t pd_changed_avx2(const unsigned char *a, const unsigned char *b,
                                      Py_ssize_t npages, Py_ssize_t ps, uint64_t *bits) {
        Py_ssize_t p, k, end, hits = 0;
        for (p = 0; p < npages; p++) {
            const unsigned char *x = a + p * ps, *y = b + p * ps;
            int diff = 0;
            for (k = 0; k < ps && !diff; k = end) {
                __m256i acc = _mm256_setzero_si256();
                end = k + 4096 < ps ? k + 4096 : ps;
                for (; k + 128 <= end; k += 128) {
                    __m256i d0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + k)),
                                                  _mm256_loadu_si256((const __m256i *)(y + k)));
                    __m256i d1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + k + 32)),
                                                  _mm256_loadu_si256((const __m256i *)(y + k + 32)));
                    __m256i d2 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + k + 64)),
                                                  _mm256_loadu_si256((const __m256i *)(y + k + 64)));
                    __m256i d3 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + k + 96)),
                                                  _mm256_loadu_si256((const __m256i *)(y + k + 96)));
                    acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_or_si256(d0, d1),
                                                               _mm256_or_si256(d2, d3)));
                }
                diff = !_mm256_testz_si256(acc, acc) || (k < end && memcmp(x + k, y + k, (size_t)(end - k)));
            }
            if (diff) {
                bits[p >> 6] |= 1ULL << (p & 63);
                hits++;
            }
        }
        return hits;
    }
    #endif

    static Py_ssize_t pd_changed(const unsigned char *a, const unsigned char *b,
                                 Py_ssize_t npages, Py_ssize_t ps, uint64_t *bits) {
        Py_ssize_t p, hits = 0;
    #ifdef PD_AVX2
        if (ps >= 128 && __builtin_cpu_supports("avx2"))
            return pd_changed_avx2(a, b, npages, ps, bits);
    #endif
        for (p = 0; p < npages; p++) {
            if (memcmp(a + p * ps, b + p * ps, (size_t)ps)) {
                bits[p >> 6] |= 1ULL << (p & 63);
                hits++;
            }
        }
        return hits;
    }

    static inline int pd_is_zero(const unsigned char *p, Py_ssize_t n) {
        Py_ssize_t i = 0;
        if (n >= 8 && pd_load(p)) return 0;
        for (; i + 64 <= n; i += 64) {
            uint64_t w[8];
            memcpy(w, p + i, 64);
            if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return 0;
        }
        for (; i < n; i++) if (p[i]) return 0;
        return 1;
    }

    static Py_ssize_t pd_zero(const unsigned char *a, Py_ssize_t npages, Py_ssize_t ps,
                              uint64_t *bits) {
        Py_ssize_t p, hits = 0;
        for (p = 0; p < npages; p++) {
            if (pd_is_zero(a + p * ps, ps)) {
                bits[p >> 6] |= 1ULL << (p & 63);
                hits++;
            }
        }
        return hits;
    }

    static void pd_scatter(unsigned char *ram, const Py_ssize_t *idx, Py_ssize_t count,
                           const unsigned char *pages, Py_ssize_t ps) {
        Py_ssize_t k;
        for (k = 0; k < count; k++)
            memmove(ram + idx[k] * ps, pages + k * ps, (size_t)ps);
    }
    """
    Py_ssize_t pd_xbzrle_encode(const unsigned char *old, const unsigned char *new_,
                                Py_ssize_t n, unsigned char *dst, Py_ssize_t dlen) nogil
    int pd_xbzrle_decode(const unsigned char *src, Py_ssize_t slen, unsigned char *dst,
                         Py_ssize_t dlen, Py_ssize_t *where, Py_ssize_t *what) nogil
    Py_ssize_t pd_changed(const unsigned char *a, const unsigned char *b,
                          Py_ssize_t npages, Py_ssize_t ps, uint64_t *bits) nogil
    Py_ssize_t pd_zero(const unsigned char *a, Py_ssize_t npages, Py_ssize_t ps,
                       uint64_t *bits) nogil
    void pd_scatter(unsigned char *ram, const Py_ssize_t *idx, Py_ssize_t count,
                    const unsigned char *pages, Py_ssize_t ps) nogil
    int __builtin_ctzll(unsigned long long) nogil

DEF STACK_OUT = 16384


cdef inline int _check_page_size(Py_ssize_t page_size) except -1:
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, not {page_size}")
    return 0


cdef inline int _check_multiple(Py_ssize_t n, Py_ssize_t page_size) except -1:
    if n % page_size:
        raise ValueError(f"buffer length {n} is not a multiple of page_size {page_size}")
    return 0


cdef list _bits_to_list(const uint64_t *bits, Py_ssize_t npages):
    cdef list out = []
    cdef Py_ssize_t w, nwords = (npages + 63) >> 6
    cdef uint64_t word
    for w in range(nwords):
        word = bits[w]
        while word:
            out.append((w << 6) + __builtin_ctzll(word))
            word &= word - 1
    return out


def changed_pages(old, new, Py_ssize_t page_size=4096):
    """Sorted indices of the pages that differ between two equal-length buffers."""
    cdef Py_buffer a, b
    cdef uint64_t *bits
    cdef Py_ssize_t n, npages
    _check_page_size(page_size)
    PyObject_GetBuffer(old, &a, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(new, &b, PyBUF_SIMPLE)
        try:
            n = a.len
            if n != b.len:
                raise ValueError(f"buffers differ in length: {n} != {b.len}")
            _check_multiple(n, page_size)
            npages = n // page_size
            bits = <uint64_t *>calloc(((npages + 63) >> 6) + 1, 8)
            if bits == NULL:
                raise MemoryError()
            try:
                with nogil:
                    pd_changed(<const unsigned char *>a.buf, <const unsigned char *>b.buf,
                               npages, page_size, bits)
                return _bits_to_list(bits, npages)
            finally:
                free(bits)
        finally:
            PyBuffer_Release(&b)
    finally:
        PyBuffer_Release(&a)


def zero_pages(buf, Py_ssize_t page_size=4096):
    """Indices of the pages of `buf` whose bytes are all zero."""
    cdef Py_buffer a
    cdef uint64_t *bits
    cdef Py_ssize_t npages
    _check_page_size(page_size)
    PyObject_GetBuffer(buf, &a, PyBUF_SIMPLE)
    try:
        _check_multiple(a.len, page_size)
        npages = a.len // page_size
        bits = <uint64_t *>calloc(((npages + 63) >> 6) + 1, 8)
        if bits == NULL:
            raise MemoryError()
        try:
            with nogil:
                pd_zero(<const unsigned char *>a.buf, npages, page_size, bits)
            return _bits_to_list(bits, npages)
        finally:
            free(bits)
    finally:
        PyBuffer_Release(&a)



cdef int _get_writable(object obj, Py_buffer *view) except -1:
    try:
        PyObject_GetBuffer(obj, view, PyBUF_WRITABLE)
    except BufferError:
        if memoryview(obj).readonly:
            raise TypeError("buffer is read-only") from None
        raise
    return 0


cdef Py_ssize_t *_indices(object indices, Py_ssize_t *count) except NULL:
    """Copy `indices` into a malloc'd Py_ssize_t array (1-D int64 buffers: one memcpy)."""
    cdef Py_buffer v
    cdef Py_ssize_t k, n
    cdef Py_ssize_t *idx
    cdef bint fast = False
    try:
        PyObject_GetBuffer(indices, &v, PyBUF_FORMAT | PyBUF_ND)
    except (TypeError, BufferError):
        pass
    else:
        fmt = (v.format if v.format != NULL else b"B").lstrip(b"@=")
        fast = v.ndim == 1 and v.itemsize == 8 and fmt in (b"q", b"l", b"n")
        if fast:
            n = v.shape[0]
            idx = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t) + 8)
            if idx != NULL:
                memcpy(idx, v.buf, n * sizeof(Py_ssize_t))
        PyBuffer_Release(&v)
        if fast:
            if idx == NULL:
                raise MemoryError()
            count[0] = n
            return idx
    seq = list(indices)
    n = len(seq)
    idx = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t) + 8)
    if idx == NULL:
        raise MemoryError()
    k = 0
    try:
        for k in range(n):
            idx[k] = _index(seq[k])
    except OverflowError:
        free(idx)
        raise IndexError(f"page index {seq[k]} out of range") from None
    except BaseException:
        free(idx)
        raise
    count[0] = n
    return idx


def scatter_pages(ram, indices, pages, Py_ssize_t page_size=4096):
    """Write page i of `pages` over page indices[i] of `ram`, in place.

    Every index is checked before anything is written.
    """
    cdef Py_buffer dst, src
    cdef Py_ssize_t npages, count = 0, k
    cdef Py_ssize_t *idx
    _check_page_size(page_size)
    _get_writable(ram, &dst)
    try:
        PyObject_GetBuffer(pages, &src, PyBUF_SIMPLE)
        try:
            _check_multiple(dst.len, page_size)
            npages = dst.len // page_size
            idx = _indices(indices, &count)
            try:
                if src.len != count * page_size:
                    raise ValueError(
                        f"pages buffer is {src.len} bytes, expected {count} pages x "
                        f"{page_size} = {count * page_size}")
                for k in range(count):
                    if idx[k] < 0 or idx[k] >= npages:
                        raise IndexError(f"page index {idx[k]} out of range for {npages} pages")
                with nogil:
                    pd_scatter(<unsigned char *>dst.buf, idx, count,
                               <const unsigned char *>src.buf, page_size)
            finally:
                free(idx)
        finally:
            PyBuffer_Release(&src)
    finally:
        PyBuffer_Release(&dst)


def xbzrle_encode(old, new, Py_ssize_t limit=4096):
    """QEMU XBZRLE delta from `old` to `new`; b"" if identical, None if over `limit`."""
    cdef Py_buffer a, b
    cdef unsigned char stack_out[STACK_OUT]
    cdef unsigned char *out = stack_out
    cdef Py_ssize_t n, cap, d
    PyObject_GetBuffer(old, &a, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(new, &b, PyBUF_SIMPLE)
        try:
            n = a.len
            if n != b.len:
                raise ValueError(f"pages differ in length: {n} != {b.len}")
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit}")
            cap = 3 * n + 4 if limit > 3 * n + 4 else limit
            if cap > STACK_OUT:
                out = <unsigned char *>malloc(cap)
                if out == NULL:
                    raise MemoryError()
            try:
                with nogil:
                    d = pd_xbzrle_encode(<const unsigned char *>a.buf,
                                         <const unsigned char *>b.buf, n, out, limit)
                if d == -1:
                    return None
                if d == -2:
                    raise ValueError("xbzrle: a run does not fit a 14-bit length")
                return PyBytes_FromStringAndSize(<char *>out, d)
            finally:
                if out != stack_out:
                    free(out)
        finally:
            PyBuffer_Release(&b)
    finally:
        PyBuffer_Release(&a)


def xbzrle_decode(encoded, old):
    """Apply an XBZRLE delta to a copy of `old`; ValueError on malformed input."""
    cdef Py_buffer e, o
    cdef Py_ssize_t x = 0, y = 0
    cdef int err
    cdef bytes page
    cdef unsigned char *dst
    PyObject_GetBuffer(encoded, &e, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(old, &o, PyBUF_SIMPLE)
        try:
            # NULL: a fresh object (1-byte strings from data are shared singletons)
            page = PyBytes_FromStringAndSize(NULL, o.len)
            dst = <unsigned char *>PyBytes_AS_STRING(page)
            memcpy(dst, o.buf, o.len)
            with nogil:
                err = pd_xbzrle_decode(<const unsigned char *>e.buf, e.len, dst, o.len, &x, &y)
        finally:
            PyBuffer_Release(&o)
    finally:
        PyBuffer_Release(&e)
    if err:
        raise ValueError(_DECODE_ERRORS[err].format(x, y))
    return page


_DECODE_ERRORS = (None, E_TRUNC_ZRUN, E_TRUNC_NZRUN, E_BAD_ULEB, E_ZERO_ZRUN, E_ZERO_NZRUN,
                  E_ZRUN_PAGE, E_NZRUN_PAGE, E_NZRUN_INPUT)
