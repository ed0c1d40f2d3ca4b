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
                             PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer)
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_FromSsize_t
from cpython.ref cimport Py_INCREF

from operator import index as _index

from protocol.guest._pagediff_py import (E_BAD_ULEB, E_NZRUN_INPUT, E_NZRUN_PAGE,
                                         E_TRUNC_NZRUN, E_TRUNC_ZRUN, E_ZERO_NZRUN,
                                         E_ZERO_ZRUN, E_ZRUN_PAGE)

__all__ = ["changed_pages", "zero_pages", "scatter_pages", "copy_pages", "hash_pages",
           "copy_pages_hashed", "gather_pages_hashed", "gather_pages", "zero_pages_at",
           "build_bytes", "xbzrle_encode", "xbzrle_decode", "xbzrle_decode_into",
           "SPEC_VERSION"]

#: the twins' common interface, bumped when a signature changes (2: scatter_pages took
#: stride and offset): a compiled twin of another version is stale, never used
SPEC_VERSION = 2

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(__x86_64__) && defined(__SSE2__)
    #include <emmintrin.h>
    #define PD_SSE2 1
    #define PD_L16(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
    #define PD_EQ16(k) _mm_cmpeq_epi8(PD_L16(a + i + (k)), PD_L16(b + i + (k)))
    #endif

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
    #ifdef PD_SSE2
        /* one 16-byte compare first (changes are often close together), then 64
           bytes a step: four 16-byte compares, the exact byte from the masks */
        if (i + 16 <= n) {
            unsigned m = (unsigned)_mm_movemask_epi8(PD_EQ16(0));
            if (m != 0xffff) return i + __builtin_ctz(~m);
            i += 16;
        }
        while (i + 64 <= n) {
            __m128i e0 = PD_EQ16(0), e1 = PD_EQ16(16), e2 = PD_EQ16(32), e3 = PD_EQ16(48);
            __m128i all = _mm_and_si128(_mm_and_si128(e0, e1), _mm_and_si128(e2, e3));
            if (_mm_movemask_epi8(all) != 0xffff) {
                uint64_t m = (uint64_t)(unsigned)_mm_movemask_epi8(e0)
                           | (uint64_t)(unsigned)_mm_movemask_epi8(e1) << 16
                           | (uint64_t)(unsigned)_mm_movemask_epi8(e2) << 32
                           | (uint64_t)(unsigned)_mm_movemask_epi8(e3) << 48;
                return i + __builtin_ctzll(~m);
            }
            i += 64;
        }
        while (i + 16 <= n) {
            unsigned m = (unsigned)_mm_movemask_epi8(PD_EQ16(0));
            if (m != 0xffff) return i + __builtin_ctz(~m);
            i += 16;
        }
    #endif
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
    #ifdef PD_SSE2
        while (i + 32 <= n) {
            unsigned m0 = (unsigned)_mm_movemask_epi8(PD_EQ16(0));
            unsigned m1 = (unsigned)_mm_movemask_epi8(PD_EQ16(16));
            if (m0 | m1) return i + __builtin_ctz(m0 | (m1 << 16));
            i += 32;
        }
        while (i + 16 <= n) {
            unsigned m = (unsigned)_mm_movemask_epi8(PD_EQ16(0));
            if (m) return i + __builtin_ctz(m);
            i += 16;
        }
    #endif
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

    /* QEMU's xbzrle_decode_buffer on dst (the old page).  Returns 0 or an error
       code 1..8 (the E_* texts) with *a, *b the offsets it names.  write == 0
       only checks (nothing is written): decoding in place checks first, so a
       malformed delta leaves the page as it was. */
    static int pd_xbzrle_decode(const unsigned char *src, Py_ssize_t slen, unsigned char *dst,
                                Py_ssize_t dlen, Py_ssize_t *a, Py_ssize_t *b, int write) {
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
            if (!write) ;
            else if (count == 1) dst[d] = src[i];
            else memcpy(dst + d, src + i, (size_t)count);
            d += count;
            i += count;
        }
        return 0;
    }

    /* changed_pages / zero_pages are memory-bandwidth bound.  What keeps them at
       stream speed: no branch on freshly loaded data inside the scan (a
       mispredict there throws away the loads already in flight for the next
       pages and serialises on DRAM latency, which is what an early exit at a
       random byte of a changed page does), the page read front to back (an
       early load of the page's last line confuses the prefetcher), and the
       32-byte loads of the first buffer aligned (Python's bytes data sits at
       48 mod 64: every other unaligned load would split a cache line).  The
       per-page result goes into the bitmap word without a branch.  AVX2 is
       detected at run time; the build itself stays portable. */
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    #define PD_AVX2 1
    #define PD_L32(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
    #define PD_X32(k) _mm256_xor_si256(PD_L32(x + (k)), PD_L32(y + (k)))
    #define PD_OR _mm256_or_si256

    /* 1 if x[0:n] != y[0:n]; n >= 32.  Overlapping head/tail loads are harmless. */
    __attribute__((target("avx2")))
    static inline int pd_differs_avx2(const unsigned char *x, const unsigned char *y, Py_ssize_t n) {
        Py_ssize_t k = 32 - (Py_ssize_t)((uintptr_t)x & 31);
        __m256i acc0 = PD_X32(0), acc1 = _mm256_setzero_si256();
        for (; k + 128 <= n; k += 128) {
            acc0 = PD_OR(acc0, PD_OR(PD_X32(k), PD_X32(k + 32)));
            acc1 = PD_OR(acc1, PD_OR(PD_X32(k + 64), PD_X32(k + 96)));
        }
        for (; k + 32 <= n; k += 32) acc0 = PD_OR(acc0, PD_X32(k));
        acc0 = PD_OR(acc0, PD_OR(acc1, PD_X32(n - 32)));
        return !_mm256_testz_si256(acc0, acc0);
    }

    __attribute__((target("avx2")))
    static Py_ssize_t pd_changed_avx2(const unsigned char *a, const unsigned char *b,
                                      Py_ssize_t npages, Py_ssize_t ps, uint64_t *bits) {
        Py_ssize_t p, hits = 0;
        uint64_t word = 0;
        for (p = 0; p < npages; p++) {
            uint64_t d = (uint64_t)pd_differs_avx2(a + p * ps, b + p * ps, ps);
            word |= d << (p & 63);
            hits += (Py_ssize_t)d;
            if ((p & 63) == 63) { bits[p >> 6] = word; word = 0; }
        }
        if (npages & 63) bits[npages >> 6] = word;
        return hits;
    }

    /* 1 if x[0:n] is all zero; n >= 32. */
    __attribute__((target("avx2")))
    static inline int pd_zero_avx2_page(const unsigned char *x, Py_ssize_t n) {
        Py_ssize_t k = 32 - (Py_ssize_t)((uintptr_t)x & 31);
        __m256i acc0 = PD_L32(x), acc1 = _mm256_setzero_si256();
        for (; k + 128 <= n; k += 128) {
            acc0 = PD_OR(acc0, PD_OR(PD_L32(x + k), PD_L32(x + k + 32)));
            acc1 = PD_OR(acc1, PD_OR(PD_L32(x + k + 64), PD_L32(x + k + 96)));
        }
        for (; k + 32 <= n; k += 32) acc0 = PD_OR(acc0, PD_L32(x + k));
        acc0 = PD_OR(acc0, PD_OR(acc1, PD_L32(x + n - 32)));
        return _mm256_testz_si256(acc0, acc0);
    }

    /* Two modes per 64-page word, picked from the previous word: where zero pages
       are rare, look at each page's first 64 bytes and skip it if they are not
       zero (a 0 %-zero scan touches one line a page); where they are common,
       read every page whole without a data-dependent branch (a mix of skipped and
       read pages would mispredict on every page and stall on memory latency). */
    __attribute__((target("avx2")))
    static Py_ssize_t pd_zero_avx2(const unsigned char *a, Py_ssize_t npages, Py_ssize_t ps,
                                   uint64_t *bits) {
        Py_ssize_t p, w, end, hits = 0, prev = 64;
        for (w = 0; w * 64 < npages; w++) {
            uint64_t word = 0;
            Py_ssize_t cnt;
            end = (w + 1) * 64 < npages ? (w + 1) * 64 : npages;
            if (prev >= 8) {
                for (p = w * 64; p < end; p++)
                    word |= (uint64_t)pd_zero_avx2_page(a + p * ps, ps) << (p & 63);
            } else {
                for (p = w * 64; p < end; p++) {
                    const unsigned char *x = a + p * ps;
                    __m256i v = PD_OR(PD_L32(x), PD_L32(x + 32));
                    if (_mm256_testz_si256(v, v) && pd_zero_avx2_page(x, ps))
                        word |= 1ULL << (p & 63);
                }
            }
            bits[w] = word;
            cnt = __builtin_popcountll(word);
            hits += cnt;
            prev = cnt;
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
    #ifdef PD_AVX2
        if (ps >= 128 && __builtin_cpu_supports("avx2"))
            return pd_zero_avx2(a, npages, ps, bits);
    #endif
        for (p = 0; p < npages; p++) {
            if (pd_is_zero(a + p * ps, ps)) {
                bits[p >> 6] |= 1ULL << (p & 63);
                hits++;
            }
        }
        return hits;
    }

    static void pd_scatter(unsigned char *ram, const Py_ssize_t *idx, Py_ssize_t count,
                           const unsigned char *pages, Py_ssize_t ps, Py_ssize_t stride) {
        Py_ssize_t k;
        for (k = 0; k < count; k++)
            memmove(ram + idx[k] * ps, pages + k * stride, (size_t)ps);
    }

    static void pd_gather(unsigned char *out, Py_ssize_t stride, const unsigned char *src,
                          const Py_ssize_t *idx, Py_ssize_t count, Py_ssize_t ps) {
        Py_ssize_t k;
        for (k = 0; k < count; k++)
            memcpy(out + k * stride, src + idx[k] * ps, (size_t)ps);
    }

    static Py_ssize_t pd_zero_at(const unsigned char *a, const Py_ssize_t *idx,
                                 Py_ssize_t count, Py_ssize_t ps, uint64_t *bits) {
        Py_ssize_t k, hits = 0;
        for (k = 0; k < count; k++)
            if (pd_is_zero(a + idx[k] * ps, ps)) {
                bits[k >> 6] |= 1ULL << (k & 63);
                hits++;
            }
        return hits;
    }

    static void pd_copy(unsigned char *dst, const unsigned char *src, const Py_ssize_t *idx,
                        Py_ssize_t count, Py_ssize_t ps) {
        Py_ssize_t k;
        for (k = 0; k < count; k++)
            memmove(dst + idx[k] * ps, src + idx[k] * ps, (size_t)ps);
    }

    /* The pages' 64-bit hashes (see hash_pages): one pass over each page, four
       independent sums so the multiplies overlap.  Native-endian words, as a
       numpy uint64 view reads them (the pure-Python twin).

       The pages of a checkpoint are scattered (every tenth page of a guest, say),
       and the hardware prefetcher does not cross into the next page: a page read
       at the pace of the hash's multiplies waits for each line from DRAM, which
       made a hashed copy cost twice a plain one.  So each loop takes a `next`
       page (the one it reads after this one; this one again for the last) and
       prefetches it a line per line it reads here: the next page is in flight
       while this one is hashed.  And where the CPU has AVX-512 (F and DQ) the
       sum takes 64-bit multiplies (vpmullq) 8 lanes at a time, in place of
       AVX2's three 32-bit partial products per 4 lanes: the same sum mod 2**64. */
    #define PD_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
    #ifdef PD_AVX2
    /* The low 64 bits of a * b in each lane (AVX2 has no 64-bit multiply): the
       three 32 x 32 -> 64 partial products that reach the low half. */
    __attribute__((target("avx2")))
    static inline __m256i pd_mul64_avx2(__m256i a, __m256i b) {
        __m256i lo = _mm256_mul_epu32(a, b);
        __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                         _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
        return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
    }

    /* pd_hash1's sum over the page's first nw8 words (nw8 a multiple of 8), four
       lanes at a time in two accumulators: the same sum mod 2**64 in another order.
       `next`'s first nw8 words are prefetched meanwhile. */
    __attribute__((target("avx2")))
    static uint64_t pd_hash_sum_avx2(const unsigned char *p, Py_ssize_t nw8,
                                     const uint64_t *w, const unsigned char *next) {
        Py_ssize_t i;
        __m256i h0 = _mm256_setzero_si256(), h1 = _mm256_setzero_si256();
        uint64_t lanes[4];
        for (i = 0; i < nw8; i += 8) {
            __m256i x0 = PD_L32(p + 8 * i), x1 = PD_L32(p + 8 * i + 32);
            PD_PREFETCH(next + 8 * i);
            x0 = _mm256_xor_si256(x0, _mm256_srli_epi64(x0, 29));
            x1 = _mm256_xor_si256(x1, _mm256_srli_epi64(x1, 29));
            h0 = _mm256_add_epi64(h0, pd_mul64_avx2(x0, PD_L32(w + i)));
            h1 = _mm256_add_epi64(h1, pd_mul64_avx2(x1, PD_L32(w + i + 4)));
        }
        _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_add_epi64(h0, h1));
        return lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
    /* Copy a page of nw8 words (a multiple of 8) from s to d and return pd_hash1's
       sum over it, in one pass: each 32-byte load is stored and hashed from the
       register (memmove then a hash re-reads the copy); `next` is prefetched
       meanwhile.  Plain stores: streaming ones saved ~1.5 ms of 18 on resident
       pages but cost ~15 ms more on pages the kernel has just zeroed (a first
       flush), whose lines are in the cache. */
    __attribute__((target("avx2")))
    static uint64_t pd_copy_hash_sum_avx2(unsigned char *d, const unsigned char *s,
                                          Py_ssize_t nw8, const uint64_t *w,
                                          const unsigned char *next) {
        Py_ssize_t i;
        __m256i h0 = _mm256_setzero_si256(), h1 = _mm256_setzero_si256();
        uint64_t lanes[4];
        for (i = 0; i < nw8; i += 8) {
            __m256i x0 = PD_L32(s + 8 * i), x1 = PD_L32(s + 8 * i + 32);
            PD_PREFETCH(next + 8 * i);
            _mm256_storeu_si256((__m256i *)(void *)(d + 8 * i), x0);
            _mm256_storeu_si256((__m256i *)(void *)(d + 8 * i + 32), x1);
            x0 = _mm256_xor_si256(x0, _mm256_srli_epi64(x0, 29));
            x1 = _mm256_xor_si256(x1, _mm256_srli_epi64(x1, 29));
            h0 = _mm256_add_epi64(h0, pd_mul64_avx2(x0, PD_L32(w + i)));
            h1 = _mm256_add_epi64(h1, pd_mul64_avx2(x1, PD_L32(w + i + 4)));
        }
        _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_add_epi64(h0, h1));
        return lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }

    /* The same two loops with AVX-512: nw16 a multiple of 16 words (two 64-byte
       lines a step, each line's twin in `next` prefetched). */
    __attribute__((target("avx512f,avx512dq")))
    static uint64_t pd_hash_sum_avx512(const unsigned char *p, Py_ssize_t nw16,
                                       const uint64_t *w, const unsigned char *next) {
        Py_ssize_t i;
        __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
        for (i = 0; i < nw16; i += 16) {
            __m512i x0 = _mm512_loadu_si512((const void *)(p + 8 * i));
            __m512i x1 = _mm512_loadu_si512((const void *)(p + 8 * i + 64));
            PD_PREFETCH(next + 8 * i);
            PD_PREFETCH(next + 8 * i + 64);
            x0 = _mm512_xor_si512(x0, _mm512_srli_epi64(x0, 29));
            x1 = _mm512_xor_si512(x1, _mm512_srli_epi64(x1, 29));
            h0 = _mm512_add_epi64(h0, _mm512_mullo_epi64(x0, _mm512_loadu_si512((const void *)(w + i))));
            h1 = _mm512_add_epi64(h1, _mm512_mullo_epi64(x1, _mm512_loadu_si512((const void *)(w + i + 8))));
        }
        return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(h0, h1));
    }
    __attribute__((target("avx512f,avx512dq")))
    static uint64_t pd_copy_hash_sum_avx512(unsigned char *d, const unsigned char *s,
                                            Py_ssize_t nw16, const uint64_t *w,
                                            const unsigned char *next) {
        Py_ssize_t i;
        __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
        for (i = 0; i < nw16; i += 16) {
            __m512i x0 = _mm512_loadu_si512((const void *)(s + 8 * i));
            __m512i x1 = _mm512_loadu_si512((const void *)(s + 8 * i + 64));
            PD_PREFETCH(next + 8 * i);
            PD_PREFETCH(next + 8 * i + 64);
            _mm512_storeu_si512((void *)(d + 8 * i), x0);
            _mm512_storeu_si512((void *)(d + 8 * i + 64), x1);
            x0 = _mm512_xor_si512(x0, _mm512_srli_epi64(x0, 29));
            x1 = _mm512_xor_si512(x1, _mm512_srli_epi64(x1, 29));
            h0 = _mm512_add_epi64(h0, _mm512_mullo_epi64(x0, _mm512_loadu_si512((const void *)(w + i))));
            h1 = _mm512_add_epi64(h1, _mm512_mullo_epi64(x1, _mm512_loadu_si512((const void *)(w + i + 8))));
        }
        return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(h0, h1));
    }
    #endif

    /* The vector loops in use: 0 the portable one, 1 AVX2, 2 AVX-512; -1 until
       detected (on first use) from what the CPU and the OS support. */
    static int pd_simd = -1;
    static inline int pd_simd_level(void) {
        if (pd_simd < 0) {
    #if defined(PD_AVX2) && !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
            __builtin_cpu_init();
            pd_simd = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") ? 2
                    : __builtin_cpu_supports("avx2") ? 1 : 0;
    #else
            pd_simd = 0;
    #endif
        }
        return pd_simd;
    }

    /* The hash of the page at p (ps bytes), prefetching the page at `next`. */
    static inline uint64_t pd_hash1n(const unsigned char *p, Py_ssize_t ps,
                                     const uint64_t *w, const unsigned char *next) {
        Py_ssize_t i = 0, nw = ps / 8;
        uint64_t h0 = 0, h1 = 0, h2 = 0, h3 = 0, x0, x1, x2, x3;
    #ifdef PD_AVX2
        int level = pd_simd_level();
        if (level == 2 && nw >= 16) {
            i = nw & ~(Py_ssize_t)15;
            h0 = pd_hash_sum_avx512(p, i, w, next);
        }
        if (level >= 1 && nw - i >= 8) {
            Py_ssize_t n8 = (nw - i) & ~(Py_ssize_t)7;
            h0 += pd_hash_sum_avx2(p + 8 * i, n8, w + i, next + 8 * i);
            i += n8;
        }
    #endif
        for (; i + 4 <= nw; i += 4) {
            if (!(i & 7)) PD_PREFETCH(next + 8 * i);
            memcpy(&x0, p + 8 * i, 8);
            memcpy(&x1, p + 8 * i + 8, 8);
            memcpy(&x2, p + 8 * i + 16, 8);
            memcpy(&x3, p + 8 * i + 24, 8);
            h0 += (x0 ^ (x0 >> 29)) * w[i];
            h1 += (x1 ^ (x1 >> 29)) * w[i + 1];
            h2 += (x2 ^ (x2 >> 29)) * w[i + 2];
            h3 += (x3 ^ (x3 >> 29)) * w[i + 3];
        }
        for (; i < nw; i++) {
            memcpy(&x0, p + 8 * i, 8);
            h0 += (x0 ^ (x0 >> 29)) * w[i];
        }
        h0 += h1 + h2 + h3;
        if (h0 == 0) {              /* rare: zero page, or a sum that wrapped to 0 */
            for (i = 0; i < ps && !p[i]; i++) ;
            h0 = i < ps;
        }
        return h0;
    }

    static inline uint64_t pd_hash1(const unsigned char *p, Py_ssize_t ps,
                                    const uint64_t *w) {
        return pd_hash1n(p, ps, w, p);
    }

    /* Tests: 0 forces the portable hash loop, 1 the best vector loop the CPU has,
       2 the AVX2 loop even where AVX-512 is there (as 1 without AVX-512); returns
       the choice in use before, in the same terms (passing it back restores it). */
    static int pd_hash_simd(int on) {
        int was = pd_simd_level();
        int best = was;
    #ifdef PD_AVX2
        pd_simd = -1;
        best = pd_simd_level();
        pd_simd = !on ? 0 : (on == 2 && best == 2) ? 1 : best;
        return was == 0 ? 0 : was == best ? 1 : 2;
    #else
        (void)on; (void)best;
        return 0;
    #endif
    }

    static void pd_hash(const unsigned char *a, const Py_ssize_t *idx, Py_ssize_t count,
                        Py_ssize_t ps, const uint64_t *w, uint64_t *out) {
        Py_ssize_t k;
        for (k = 0; k < count; k++)
            out[k] = pd_hash1n(a + idx[k] * ps, ps, w, a + idx[k + 1 < count ? k + 1 : k] * ps);
    }

    /* Copy page idx[k] of src to page idx[k] of dst (didx NULL: to page k of dst, a
       gather) and hash it from the copy, still in L1: one pass over the bytes. */
    static void pd_copy_hash(unsigned char *dst, const Py_ssize_t *didx,
                             const unsigned char *src, const Py_ssize_t *idx,
                             Py_ssize_t count, Py_ssize_t ps, const uint64_t *w,
                             uint64_t *out, Py_ssize_t stride) {
        Py_ssize_t k;
    #ifdef PD_AVX2
        int level = pd_simd_level();
    #endif
        for (k = 0; k < count; k++) {
            unsigned char *d = dst + (didx ? didx[k] * ps : k * stride);
            const unsigned char *from = src + idx[k] * ps;
            const unsigned char *next = src + idx[k + 1 < count ? k + 1 : k] * ps;
    #ifdef PD_AVX2
            /* one pass in registers, where the page is whole vectors and the two
               pages do not overlap (memmove semantics otherwise) */
            if (level > 0 && ps % 64 == 0 && (d + ps <= from || from + ps <= d)) {
                uint64_t h = level == 2 && ps % 128 == 0
                    ? pd_copy_hash_sum_avx512(d, from, ps / 8, w, next)
                    : pd_copy_hash_sum_avx2(d, from, ps / 8, w, next);
                if (h == 0) h = pd_hash1(d, ps, w);     /* the rare zero-sum rule */
                out[k] = h;
                continue;
            }
    #endif
            memmove(d, from, (size_t)ps);
            out[k] = pd_hash1n(d, ps, w, next);
        }
    }
    """
    int pd_hash_simd(int on) nogil
    Py_ssize_t pd_xbzrle_encode(const unsigned char *old, const unsigned char *new_,
                                Py_ssize_t n, unsigned char *dst, Py_ssize_t dlen) nogil
    int pd_xbzrle_decode(const unsigned char *src, Py_ssize_t slen, unsigned char *dst,
                         Py_ssize_t dlen, Py_ssize_t *where, Py_ssize_t *what, int write) nogil
    Py_ssize_t pd_changed(const unsigned char *a, const unsigned char *b,
                          Py_ssize_t npages, Py_ssize_t ps, uint64_t *bits) nogil
    Py_ssize_t pd_zero(const unsigned char *a, Py_ssize_t npages, Py_ssize_t ps,
                       uint64_t *bits) nogil
    void pd_scatter(unsigned char *ram, const Py_ssize_t *idx, Py_ssize_t count,
                    const unsigned char *pages, Py_ssize_t ps, Py_ssize_t stride) nogil
    void pd_copy(unsigned char *dst, const unsigned char *src, const Py_ssize_t *idx,
                 Py_ssize_t count, Py_ssize_t ps) nogil
    void pd_gather(unsigned char *out, Py_ssize_t stride, const unsigned char *src,
                   const Py_ssize_t *idx, Py_ssize_t count, Py_ssize_t ps) nogil
    Py_ssize_t pd_zero_at(const unsigned char *a, const Py_ssize_t *idx, Py_ssize_t count,
                          Py_ssize_t ps, uint64_t *bits) nogil
    void pd_copy_hash(unsigned char *dst, const Py_ssize_t *didx, const unsigned char *src,
                      const Py_ssize_t *idx, Py_ssize_t count, Py_ssize_t ps,
                      const uint64_t *w, uint64_t *out, Py_ssize_t stride) nogil
    void pd_hash(const unsigned char *a, const Py_ssize_t *idx, Py_ssize_t count,
                 Py_ssize_t ps, const uint64_t *w, uint64_t *out) nogil
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


cdef list _bits_to_list(const uint64_t *bits, Py_ssize_t npages, Py_ssize_t hits):
    """The set bits as a list of ints, built in place (`hits` of them)."""
    cdef list out = PyList_New(hits)
    cdef Py_ssize_t w, k = 0, nwords = (npages + 63) >> 6
    cdef uint64_t word
    cdef object v
    for w in range(nwords):
        word = bits[w]
        while word:
            v = PyLong_FromSsize_t((w << 6) + __builtin_ctzll(word))
            Py_INCREF(v)
            PyList_SET_ITEM(out, k, v)
            k += 1
            word &= word - 1
    return out


def changed_pages(old, new, Py_ssize_t page_size=4096):
    """Sorted indices of the pages that differ between two equal-length buffers."""
    cdef Py_buffer a, b
    cdef uint64_t *bits
    cdef Py_ssize_t n, npages, hits
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
                    hits = pd_changed(<const unsigned char *>a.buf, <const unsigned char *>b.buf,
                                      npages, page_size, bits)
                return _bits_to_list(bits, npages, hits)
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
    cdef Py_ssize_t npages, hits
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
                hits = pd_zero(<const unsigned char *>a.buf, npages, page_size, bits)
            return _bits_to_list(bits, npages, hits)
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


cdef int _check_indices(const Py_ssize_t *idx, Py_ssize_t count, Py_ssize_t npages) except -1:
    cdef Py_ssize_t k
    for k in range(count):
        if idx[k] < 0 or idx[k] >= npages:
            raise IndexError(f"page index {idx[k]} out of range for {npages} pages")
    return 0


def scatter_pages(ram, indices, pages, Py_ssize_t page_size=4096, Py_ssize_t stride=-1,
                  Py_ssize_t offset=0):
    """Write page k of `pages` over page indices[k] of `ram`, in place.

    Page k is pages[offset + k * stride:][:page_size]; by default (stride -1,
    offset 0) the pages are consecutive and `pages` holds exactly them; a larger
    stride skips gaps (the record headers of a wire image: pages decoded straight
    from it into RAM).  Every index and the extent are checked before anything is
    written.
    """
    cdef Py_buffer dst, src
    cdef Py_ssize_t npages, count = 0, k
    cdef Py_ssize_t *idx
    cdef bint exact = stride == -1 and offset == 0
    _check_page_size(page_size)
    if stride == -1:
        stride = page_size
    if stride < page_size or offset < 0:
        raise ValueError(f"stride {stride} must be >= page_size {page_size} and offset "
                         f"{offset} >= 0")
    _get_writable(ram, &dst)
    try:
        PyObject_GetBuffer(pages, &src, PyBUF_SIMPLE)
        try:
            _check_multiple(dst.len, page_size)
            npages = dst.len // page_size
            idx = _indices(indices, &count)
            try:
                if exact and src.len != count * page_size:
                    raise ValueError(
                        f"pages buffer is {src.len} bytes, expected {count} pages x "
                        f"{page_size} = {count * page_size}")
                if count and offset + (count - 1) * stride + page_size > src.len:
                    raise ValueError(f"pages buffer is {src.len} bytes, too small for {count} "
                                     f"pages at offset {offset}, stride {stride}")
                _check_indices(idx, count, npages)
                with nogil:
                    pd_scatter(<unsigned char *>dst.buf, idx, count,
                               <const unsigned char *>src.buf + offset, page_size, stride)
            finally:
                free(idx)
        finally:
            PyBuffer_Release(&src)
    finally:
        PyBuffer_Release(&dst)


def copy_pages(src, dst, indices, Py_ssize_t page_size=4096):
    """Copy the pages `indices` of `src` over the same pages of `dst`, in place.

    The two buffers have the same length; every index is checked before anything
    is written (the RAM cache's flush: cache pages -> SVM RAM in one pass).
    """
    cdef Py_buffer a, b
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t *idx
    _check_page_size(page_size)
    PyObject_GetBuffer(src, &a, PyBUF_SIMPLE)
    try:
        _get_writable(dst, &b)
        try:
            if a.len != b.len:
                raise ValueError(f"buffers differ in length: {a.len} != {b.len}")
            _check_multiple(a.len, page_size)
            idx = _indices(indices, &count)
            try:
                _check_indices(idx, count, a.len // page_size)
                with nogil:
                    pd_copy(<unsigned char *>b.buf, <const unsigned char *>a.buf, idx, count,
                            page_size)
            finally:
                free(idx)
        finally:
            PyBuffer_Release(&b)
    finally:
        PyBuffer_Release(&a)


def _hash_simd(int on):
    """For tests: hash with the portable loop (0 / False), with the best vector loop
    the CPU has (1 / True: AVX-512 or AVX2), or with the AVX2 loop even where
    AVX-512 is there (2; as 1 without AVX-512); returns the choice in use before,
    in the same terms (passing it back restores it).  All give the same hashes
    (a sum mod 2**64 in another order)."""
    return pd_hash_simd(on)


def hash_pages(buf, indices, weights, Py_ssize_t page_size=4096):
    """64-bit content hashes of the pages `indices` of `buf`, as native-endian
    uint64 values packed in a bytes object (8 bytes per index).

    h = sum_i mix(x_i) * weights[i] mod 2**64 over the page's native-endian
    64-bit words x_i, mix(x) = x ^ (x >> 29); `weights` holds page_size / 8
    native uint64.  An all-zero page hashes to 0 and only it does (a non-zero
    page whose sum is 0 gets 1).
    """
    cdef Py_buffer a, w
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t *idx
    cdef uint64_t *wts
    cdef uint64_t *dst
    cdef bytes out
    _check_page_size(page_size)
    if page_size % 8:
        raise ValueError(f"page_size must be a multiple of 8 to hash, not {page_size}")
    PyObject_GetBuffer(buf, &a, PyBUF_SIMPLE)
    try:
        _check_multiple(a.len, page_size)
        PyObject_GetBuffer(weights, &w, PyBUF_SIMPLE)
        try:
            if w.len != page_size:
                raise ValueError(f"weights are {w.len} bytes, expected {page_size // 8} x 8 "
                                 f"= {page_size}")
            idx = _indices(indices, &count)
            try:
                _check_indices(idx, count, a.len // page_size)
                out = PyBytes_FromStringAndSize(NULL, count * 8)
                dst = <uint64_t *>PyBytes_AS_STRING(out)
                wts = <uint64_t *>malloc(page_size)     # aligned, whatever `weights` is
                if wts == NULL:
                    raise MemoryError()
                memcpy(wts, w.buf, page_size)
                with nogil:
                    pd_hash(<const unsigned char *>a.buf, idx, count, page_size, wts, dst)
                free(wts)
                return out
            finally:
                free(idx)
        finally:
            PyBuffer_Release(&w)
    finally:
        PyBuffer_Release(&a)


cdef uint64_t *_weights(object weights, Py_ssize_t page_size) except NULL:
    """A malloc'd, aligned copy of the page_size / 8 hash weights."""
    cdef Py_buffer w
    cdef uint64_t *wts
    if page_size % 8:
        raise ValueError(f"page_size must be a multiple of 8 to hash, not {page_size}")
    PyObject_GetBuffer(weights, &w, PyBUF_SIMPLE)
    try:
        if w.len != page_size:
            raise ValueError(f"weights are {w.len} bytes, expected {page_size // 8} x 8 "
                             f"= {page_size}")
        wts = <uint64_t *>malloc(page_size)
        if wts == NULL:
            raise MemoryError()
        memcpy(wts, w.buf, page_size)
        return wts
    finally:
        PyBuffer_Release(&w)


def gather_pages(src, indices, out, Py_ssize_t page_size=4096, Py_ssize_t stride=-1,
                 Py_ssize_t offset=0, weights=None):
    """Copy page indices[k] of `src` to out[offset + k * stride:][:page_size] for
    every k (stride defaults to page_size: consecutive pages; a larger stride
    leaves gaps, e.g. for the record headers of a wire image).  Every index and
    the extent in `out` are checked before anything is written.  With `weights`,
    returns the copies' `hash_pages` hashes (bytes, 8 per index), each page
    hashed from its copy in the same pass; else None."""
    cdef Py_buffer a, b
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t *idx
    cdef uint64_t *wts = NULL
    _check_page_size(page_size)
    if weights is not None:
        wts = _weights(weights, page_size)
    try:
        return _gather_checked(src, indices, out, page_size, stride, offset, wts)
    finally:
        free(wts)


cdef object _gather_checked(src, indices, out, Py_ssize_t page_size, Py_ssize_t stride,
                            Py_ssize_t offset, const uint64_t *wts):
    cdef Py_buffer a, b
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t *idx
    cdef uint64_t *hashes
    cdef bytes res = None
    if stride == -1:
        stride = page_size
    if stride < page_size or offset < 0:
        raise ValueError(f"stride {stride} must be >= page_size {page_size} and offset "
                         f"{offset} >= 0")
    PyObject_GetBuffer(src, &a, PyBUF_SIMPLE)
    try:
        _get_writable(out, &b)
        try:
            _check_multiple(a.len, page_size)
            idx = _indices(indices, &count)
            try:
                if count and offset + (count - 1) * stride + page_size > b.len:
                    raise ValueError(f"out is {b.len} bytes, too small for {count} pages at "
                                     f"offset {offset}, stride {stride}")
                _check_indices(idx, count, a.len // page_size)
                if wts == NULL:
                    with nogil:
                        pd_gather(<unsigned char *>b.buf + offset, stride,
                                  <const unsigned char *>a.buf, idx, count, page_size)
                else:
                    res = PyBytes_FromStringAndSize(NULL, count * 8)
                    hashes = <uint64_t *>PyBytes_AS_STRING(res)
                    with nogil:
                        pd_copy_hash(<unsigned char *>b.buf + offset, NULL,
                                     <const unsigned char *>a.buf, idx, count, page_size, wts,
                                     hashes, stride)
            finally:
                free(idx)
        finally:
            PyBuffer_Release(&b)
    finally:
        PyBuffer_Release(&a)
    return res


def zero_pages_at(buf, indices, Py_ssize_t page_size=4096):
    """Positions k (ascending) where page indices[k] of `buf` is all zero."""
    cdef Py_buffer a
    cdef uint64_t *bits
    cdef Py_ssize_t count = 0, hits
    cdef Py_ssize_t *idx
    _check_page_size(page_size)
    PyObject_GetBuffer(buf, &a, PyBUF_SIMPLE)
    try:
        _check_multiple(a.len, page_size)
        idx = _indices(indices, &count)
        try:
            _check_indices(idx, count, a.len // page_size)
            bits = <uint64_t *>calloc(((count + 63) >> 6) + 1, 8)
            if bits == NULL:
                raise MemoryError()
            try:
                with nogil:
                    hits = pd_zero_at(<const unsigned char *>a.buf, idx, count, page_size, bits)
                return _bits_to_list(bits, count, hits)
            finally:
                free(bits)
        finally:
            free(idx)
    finally:
        PyBuffer_Release(&a)


def copy_pages_hashed(src, dst, indices, weights, Py_ssize_t page_size=4096):
    """`copy_pages` that also returns the copied pages' `hash_pages` hashes (bytes,
    8 per index), each page hashed from its fresh copy: one pass over the bytes."""
    cdef Py_buffer a, b
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t *idx
    cdef uint64_t *wts
    cdef uint64_t *hashes
    cdef bytes out
    _check_page_size(page_size)
    wts = _weights(weights, page_size)
    try:
        PyObject_GetBuffer(src, &a, PyBUF_SIMPLE)
        try:
            _get_writable(dst, &b)
            try:
                if a.len != b.len:
                    raise ValueError(f"buffers differ in length: {a.len} != {b.len}")
                _check_multiple(a.len, page_size)
                idx = _indices(indices, &count)
                try:
                    _check_indices(idx, count, a.len // page_size)
                    out = PyBytes_FromStringAndSize(NULL, count * 8)
                    hashes = <uint64_t *>PyBytes_AS_STRING(out)
                    with nogil:
                        pd_copy_hash(<unsigned char *>b.buf, idx, <const unsigned char *>a.buf,
                                     idx, count, page_size, wts, hashes, page_size)
                    return out
                finally:
                    free(idx)
            finally:
                PyBuffer_Release(&b)
        finally:
            PyBuffer_Release(&a)
    finally:
        free(wts)


def gather_pages_hashed(src, indices, out, weights, Py_ssize_t page_size=4096):
    """Copy the pages `indices` of `src` to consecutive pages 0, 1, ... of the
    writable buffer `out` (exactly len(indices) pages) and return their
    `hash_pages` hashes (bytes, 8 per index), hashed from the copies."""
    cdef Py_buffer a, b
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t *idx
    cdef uint64_t *wts
    cdef uint64_t *hashes
    cdef bytes res
    _check_page_size(page_size)
    wts = _weights(weights, page_size)
    try:
        PyObject_GetBuffer(src, &a, PyBUF_SIMPLE)
        try:
            _get_writable(out, &b)
            try:
                _check_multiple(a.len, page_size)
                idx = _indices(indices, &count)
                try:
                    if b.len != count * page_size:
                        raise ValueError(f"out is {b.len} bytes, expected {count} pages of "
                                         f"{page_size} = {count * page_size}")
                    _check_indices(idx, count, a.len // page_size)
                    res = PyBytes_FromStringAndSize(NULL, count * 8)
                    hashes = <uint64_t *>PyBytes_AS_STRING(res)
                    with nogil:
                        pd_copy_hash(<unsigned char *>b.buf, NULL, <const unsigned char *>a.buf,
                                     idx, count, page_size, wts, hashes, page_size)
                    return res
                finally:
                    free(idx)
            finally:
                PyBuffer_Release(&b)
        finally:
            PyBuffer_Release(&a)
    finally:
        free(wts)


cdef class _BytesWriter:
    """A writable buffer over a bytes object nobody else holds yet (build_bytes)."""
    cdef object owner
    cdef char *buf
    cdef Py_ssize_t size
    cdef Py_ssize_t exports
    cdef bint sealed

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self.sealed:         # `fill` kept the writer: no new view once it returned
            raise BufferError("build_bytes: the bytes object is complete and immutable")
        PyBuffer_FillInfo(view, self, self.buf, self.size, 0, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1


def build_bytes(n, fill):
    """A new bytes object of `n` bytes written by `fill(view)`, `view` a writable
    byte memoryview that `fill` must write whole and not keep.

    The view is straight over the new, not yet shared bytes object (what CPython
    does inside bytes.join): a large wire image is written once, not written and
    then copied.  If `fill` kept a view alive, a copy is returned instead, so the
    bytes handed out can never change afterwards.
    """
    cdef Py_ssize_t size = _index(n)
    if size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef _BytesWriter w = _BytesWriter.__new__(_BytesWriter)
    w.owner, w.buf, w.size = out, PyBytes_AS_STRING(out), size
    view = memoryview(w)
    try:
        fill(view)
    finally:
        w.sealed = True
        try:
            view.release()
        except BufferError:     # something made from the view is still alive
            pass
    if w.exports:
        return PyBytes_FromStringAndSize(w.buf, size)
    return out


cdef inline int _read_view(object obj, Py_buffer *view) except -1:
    """PyBUF_SIMPLE view; exact bytes (what migration passes) without the buffer protocol."""
    if PyBytes_CheckExact(obj):
        memset(view, 0, sizeof(Py_buffer))  # obj NULL: PyBuffer_Release is a no-op; the caller holds obj
        view.buf = PyBytes_AS_STRING(obj)
        view.len = PyBytes_GET_SIZE(obj)
        return 0
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    return 0


def xbzrle_encode(old, new, Py_ssize_t limit=4096):
    """QEMU XBZRLE delta from `old` to `new`; b"" if identical, None if over `limit`."""
    cdef Py_buffer a, b
    cdef unsigned char stack_out[STACK_OUT]
    cdef unsigned char *out = stack_out
    cdef Py_ssize_t n, cap, d
    _read_view(old, &a)
    try:
        _read_view(new, &b)
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
    _read_view(encoded, &e)
    try:
        _read_view(old, &o)
        try:
            # NULL: a fresh object (1-byte strings from data are shared singletons)
            page = PyBytes_FromStringAndSize(NULL, o.len)
            dst = <unsigned char *>PyBytes_AS_STRING(page)
            memcpy(dst, o.buf, o.len)
            with nogil:
                err = pd_xbzrle_decode(<const unsigned char *>e.buf, e.len, dst, o.len, &x, &y, 1)
        finally:
            PyBuffer_Release(&o)
    finally:
        PyBuffer_Release(&e)
    if err:
        raise ValueError(_DECODE_ERRORS[err].format(x, y))
    return page


def xbzrle_decode_into(encoded, page):
    """Apply an XBZRLE delta to `page` in place (a writable buffer that holds the
    old page, as QEMU decodes into the page it has); ValueError on malformed
    input, and then `page` is left as it was."""
    cdef Py_buffer e, p
    cdef Py_ssize_t x = 0, y = 0
    cdef int err
    cdef unsigned char stack_page[STACK_OUT]
    cdef unsigned char *work = stack_page
    _read_view(encoded, &e)
    try:
        _get_writable(page, &p)
        try:
            # decode into a scratch copy, then copy back only if it all decoded:
            # cheaper than a separate checking pass over the delta
            if p.len > STACK_OUT:
                work = <unsigned char *>malloc(p.len)
                if work == NULL:
                    raise MemoryError()
            try:
                with nogil:
                    memcpy(work, p.buf, p.len)
                    err = pd_xbzrle_decode(<const unsigned char *>e.buf, e.len, work, p.len,
                                           &x, &y, 1)
                    if not err:
                        memcpy(p.buf, work, p.len)
            finally:
                if work != stack_page:
                    free(work)
        finally:
            PyBuffer_Release(&p)
    finally:
        PyBuffer_Release(&e)
    if err:
        raise ValueError(_DECODE_ERRORS[err].format(x, y))


_DECODE_ERRORS = (None, E_TRUNC_ZRUN, E_TRUNC_NZRUN, E_BAD_ULEB, E_ZERO_ZRUN, E_ZERO_NZRUN,
                  E_ZRUN_PAGE, E_NZRUN_PAGE, E_NZRUN_INPUT)
