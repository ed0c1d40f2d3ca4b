"""Guest RAM: named RAM blocks of 4 KiB pages with a dirty bitmap each.

Every block is an anonymous `mmap` (sparse: untouched pages cost nothing, so a
5 GiB block is fine).  Guest writes (`write`, `fill_page`) set the block's
*dirty* bit (what migration sends) and its *touched* bit (pages that may be
non-zero; digests and page-diffs only look at those).  `store_page` is a
write by QEMU itself (initial migration, RAM-cache flush): it touches the page
but does not dirty it, as a memcpy by QEMU is not in the guest's dirty log.

Offsets are Python ints everywhere, so page offsets >= 2**32 are fine (B7).
Sans-IO: no clock, no randomness, no sockets.
"""
from __future__ import annotations

import hashlib
import mmap
import weakref
from collections.abc import Iterable, Iterator

import numpy as np

from protocol.errors import GuestError
from protocol.guest import pagediff
from protocol.migration.pages import (
    CODE_PAGE,
    CODE_ZERO,
    KIND_PAGE,
    KIND_XBZRLE,
    KIND_ZERO,
    PAGE_SIZE,
    PageBatch,
    PageRecord,
    PageRun,
    PageSource,
)

ZERO_PAGE = bytes(PAGE_SIZE)
_WORDS = PAGE_SIZE // 8
#: fixed (seeded) weights of the per-page hash: h(page) = sum(mix(w_i) * W_i) mod 2**64
def _splitmix_weights(seed: int, n: int) -> np.ndarray:
    """n SplitMix64 outputs, vectorised: fixed weights, nothing drawn at random."""
    z = (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
         + np.uint64(seed))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_PAGE_HASH_WEIGHTS = _splitmix_weights(0xC010, _WORDS) | np.uint64(1)
PAGE_HASH_WEIGHTS = _PAGE_HASH_WEIGHTS


def _as_index_array(indices) -> np.ndarray:
    return np.asarray(indices, dtype=np.int64).reshape(-1)


def page_hashes(pages: np.ndarray) -> np.ndarray:
    """64-bit hashes of the rows of a (n, PAGE_SIZE) uint8 array (`hash_pages`), as a
    read-only uint64 array.

    h = sum_i mix(w_i) * W_i mod 2**64 over the page's 64-bit words, with
    mix(x) = x ^ (x >> 29) (a bijection that folds high bits down) and fixed
    random odd weights: any change to a page changes h except with
    probability <= 2**-30.  An all-zero page hashes to 0 and only it does (a
    non-zero page whose sum is 0 gets 1).
    """
    pages = np.ascontiguousarray(pages, dtype=np.uint8)
    return _hashes_at(pages, np.arange(len(pages), dtype=np.int64))


def _hashes_at(buf, idx: np.ndarray) -> np.ndarray:
    """The hashes of pages `idx` of `buf`, read in place (no gathered copy)."""
    return np.frombuffer(pagediff.hash_pages(buf, idx, _PAGE_HASH_WEIGHTS, PAGE_SIZE),
                         dtype=np.uint64)


def _set_bits(bits: np.ndarray) -> np.ndarray:
    """Positions of the set bits of a little-endian bit array, ascending (int64).

    The unpacked bits (0 or 1 a byte) are searched as a bool view: numpy's
    nonzero takes a fast path for bool that it does not for uint8 (~5x: 0.42 ms
    against 0.09 for the 262,144 bits of a 1 GiB block)."""
    nzb = np.flatnonzero(bits)
    if len(nzb) > len(bits) // 8:     # dense: one pass over every bit is cheaper
        return np.flatnonzero(np.unpackbits(bits, bitorder="little").view(np.bool_))
    rows, cols = np.nonzero(np.unpackbits(bits[nzb][:, None], axis=1,
                                          bitorder="little").view(np.bool_))
    return nzb[rows] * 8 + cols


#: `RamBlock.reread_hashes`: pages read back per call (16 MiB: every page of the
#: exploration's guests; a 1 GiB guest's 26k dirty pages over seven calls)
REREAD_PAGES = 4096


class Bitmap:
    """One bit per page, with a population count kept up to date."""

    __slots__ = ("nbits", "_bits", "count")

    def __init__(self, nbits: int) -> None:
        self.nbits = nbits
        self._bits = bytearray((nbits + 7) // 8)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def set(self, index: int) -> bool:
        """Set bit `index`; True if it was clear before."""
        byte, mask = index >> 3, 1 << (index & 7)
        value = self._bits[byte]
        if value & mask:
            return False
        self._bits[byte] = value | mask
        self.count += 1
        return True

    def test(self, index: int) -> bool:
        return bool(self._bits[index >> 3] & (1 << (index & 7)))

    def clear(self, index: int) -> bool:
        byte, mask = index >> 3, 1 << (index & 7)
        value = self._bits[byte]
        if not value & mask:
            return False
        self._bits[byte] = value & ~mask
        self.count -= 1
        return True

    def clear_all(self) -> None:
        if self.count:
            self._bits = bytearray(len(self._bits))
            self.count = 0

    def indices(self) -> list[int]:
        """Set bits in ascending order."""
        if not self.count:
            return []
        return self.index_array().tolist()

    def index_array(self) -> np.ndarray:
        """Set bits in ascending order as an int64 array (numpy: non-zero bytes only)."""
        if not self.count:
            return np.empty(0, dtype=np.int64)
        return _set_bits(np.frombuffer(self._bits, dtype=np.uint8))

    def union_array(self, other: Bitmap) -> np.ndarray:
        """The bits set in self or other (same size), ascending: index_array of
        self | other, without building either index array."""
        if not other.count:
            return self.index_array()
        if not self.count:
            return other.index_array()
        return _set_bits(np.frombuffer(self._bits, dtype=np.uint8)
                         | np.frombuffer(other._bits, dtype=np.uint8))

    def set_many(self, indices) -> None:
        """Set every bit of `indices` (an int array or sequence, any order)."""
        idx = _as_index_array(indices)
        if not len(idx):
            return
        if int(idx.min()) < 0 or int(idx.max()) >= self.nbits:
            raise IndexError(f"bit index out of range 0..{self.nbits - 1}")
        bits = np.frombuffer(self._bits, dtype=np.uint8)
        flags = np.unpackbits(bits, bitorder="little")
        flags[idx] = 1
        self._bits[:] = np.packbits(flags, bitorder="little").tobytes()
        self.count = int(np.count_nonzero(flags[:self.nbits]))

    def clear_many(self, indices) -> None:
        """Clear every bit of `indices` (an int array or sequence, any order)."""
        idx = _as_index_array(indices)
        if not len(idx):
            return
        if int(idx.min()) < 0 or int(idx.max()) >= self.nbits:
            raise IndexError(f"bit index out of range 0..{self.nbits - 1}")
        if not self.count:
            return
        bits = np.frombuffer(self._bits, dtype=np.uint8)
        flags = np.unpackbits(bits, bitorder="little")
        flags[idx] = 0
        self._bits[:] = np.packbits(flags, bitorder="little").tobytes()
        self.count = int(np.count_nonzero(flags[:self.nbits]))

    def test_many(self, indices) -> np.ndarray:
        """A bool array: is each bit of `indices` set."""
        idx = _as_index_array(indices)
        bits = np.frombuffer(self._bits, dtype=np.uint8)
        return (bits[idx >> 3] >> (idx & 7).astype(np.uint8) & 1).astype(bool)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def update(self, other: Bitmap) -> None:
        """self |= other (same size)."""
        if other.count:
            self.set_many(other.index_array())


def _size_text(n: int) -> str:
    return f"{n / (1 << 30):,.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.1f} MiB"


class RamPages(PageSource):
    """Pages `rows` of a RamBlock, collected but not copied yet (see `PageRun.source`).

    The block pins them (`gather`) before its next write, so the data read
    through this object are always the contents at collection time.
    """

    def __init__(self, block: RamBlock, rows: np.ndarray) -> None:
        self.block = block
        self.rows = rows
        self._data: np.ndarray | None = None

    @property
    def pinned(self) -> bool:
        return self._data is not None

    def gather(self) -> np.ndarray:
        if self._data is None:
            self._data = self.block.gather(self.rows)
            self._data.flags.writeable = False
        return self._data

    def gather_into(self, out, offset: int, stride: int, j0: int, j1: int) -> None:
        if self._data is not None:
            dst = np.lib.stride_tricks.as_strided(np.frombuffer(out, dtype=np.uint8)[offset:],
                                                  shape=(j1 - j0, PAGE_SIZE), strides=(stride, 1))
            dst[...] = self._data[j0:j1]
        else:
            # not pinned: RAM still holds the collected contents, so the hashes of the
            # copies (taken in the same pass) are the block's current page hashes
            rows = self.rows[j0:j1]
            hashes = pagediff.gather_pages(self.block.mem, rows, out, PAGE_SIZE, stride,
                                           offset, _PAGE_HASH_WEIGHTS)
            self.block.set_hashes(rows, hashes)


class RamBlock:
    """One RAMBlock: `size_bytes` of anonymous memory, a dirty and a touched map."""

    def __init__(self, name: str, size_bytes: int) -> None:
        if size_bytes <= 0 or size_bytes % PAGE_SIZE:
            raise ValueError(f"RAM block {name!r}: size {size_bytes} is not a positive "
                             f"multiple of {PAGE_SIZE}")
        self.name = name
        self.size_bytes = size_bytes
        self.npages = size_bytes // PAGE_SIZE
        # private anonymous memory: sparse like a shared mapping, cheaper first-touch faults
        try:
            self.mem = mmap.mmap(-1, size_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except (OSError, OverflowError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise GuestError(f"RAM block {name!r}: cannot map {_size_text(size_bytes)} of "
                             f"guest memory here ({why})") from None
        self.dirty = Bitmap(self.npages)
        self.touched = Bitmap(self.npages)
        self.xbzrle_cache: dict[int, bytes] = {}
        #: per-page content hashes for `Ram.digest` (valid where `stale` is clear)
        self.stale = Bitmap(self.npages)
        self._hashes: np.ndarray | None = None
        self._arr: np.ndarray | None = None
        #: RamPages not gathered yet (weak): pinned by `before_write`
        self._unpinned: list[weakref.ref] = []
        self._touched_idx: tuple[int, np.ndarray] = (0, np.empty(0, dtype=np.int64))
        self._reread_at = 0           # where `reread_hashes`' window starts next

    def lend(self, rows: np.ndarray) -> RamPages:
        """The pages `rows` as a RamPages, pinned before this block is next written."""
        pages = RamPages(self, rows)
        lent = self._unpinned
        if len(lent) >= 64:         # loans dropped unused (a block seldom written): forget them
            lent[:] = [ref for ref in lent if ref() is not None]
        lent.append(weakref.ref(pages))
        return pages

    def before_write(self) -> None:
        """Every write to `mem` comes after this: lent pages get their copy first."""
        lent = self._unpinned
        if lent:
            self._unpinned = []
            for ref in lent:
                pages = ref()
                if pages is not None:
                    pages.gather()

    def check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size_bytes:
            raise ValueError(f"RAM block {self.name!r}: access [{offset:#x}, "
                             f"{offset + length:#x}) outside its {self.size_bytes:#x} bytes")

    def array(self) -> np.ndarray:
        """The block as a writable (npages, PAGE_SIZE) uint8 array over `mem` (no copy)."""
        if self._arr is None:
            self._arr = np.frombuffer(self.mem, dtype=np.uint8).reshape(self.npages, PAGE_SIZE)
        return self._arr

    def page(self, page_index: int) -> bytes:
        offset = page_index * PAGE_SIZE
        return self.mem[offset:offset + PAGE_SIZE]

    def put_page(self, page_index: int, data: bytes) -> None:
        if len(data) != PAGE_SIZE:
            raise ValueError(f"RAM block {self.name!r}: page {page_index} needs "
                             f"{PAGE_SIZE} bytes, got {len(data)}")
        offset = page_index * PAGE_SIZE
        self.before_write()
        self.mem[offset:offset + PAGE_SIZE] = data
        self.mark_written(page_index)

    def mark_written(self, page_index: int, dirty: bool = False) -> None:
        """Page `page_index` was written: touched, its hash stale, and with `dirty`
        logged for the next checkpoint (a guest write, not a load)."""
        if dirty:
            self.dirty.set(page_index)
        self.touched.set(page_index)
        self.stale.set(page_index)

    def gather(self, indices) -> np.ndarray:
        """A new (n, PAGE_SIZE) array with copies of the pages `indices`."""
        idx = _as_index_array(indices)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.npages):
            raise ValueError(f"RAM block {self.name!r}: page index out of range")
        return self.array()[idx]

    def put_pages(self, indices, pages) -> None:
        """put_page for many pages at once: row k of `pages` over page indices[k]."""
        idx = _as_index_array(indices)
        if not len(idx):
            return
        self.before_write()
        pagediff.scatter_pages(self.mem, idx, pages, PAGE_SIZE)
        self.touched.set_many(idx)
        self.stale.set_many(idx)

    def read_hashes(self, idx: np.ndarray) -> np.ndarray:
        """The hashes of pages `idx` read from memory now, not from the per-page cache
        (a write that bypassed the block's methods shows here, not in `hashes`)."""
        return _hashes_at(self.mem, idx)

    def touched_indices(self) -> np.ndarray:
        """The touched pages, ascending (kept while the set stays the same: touched
        bits are only ever set -- a page once written may hold data -- so an unchanged
        count is an unchanged set)."""
        count, idx = self._touched_idx
        if count != self.touched.count:
            idx = self.touched.index_array()
            self._touched_idx = (self.touched.count, idx)
        return idx

    def reread_hashes(self, budget: int = REREAD_PAGES) -> None:
        """Rehash touched pages from memory, trusting none of the per-page cache (a
        write around the block's methods -- a raw copy, a stray memcpy -- shows from
        here on): every touched page while there are at most `budget`, else the next
        `budget` of them in turn (a window that moves on at each call, so a big guest
        is read back whole over touched/budget calls, at a bounded cost per call).
        A page never touched is still taken as zero: a write there goes unseen."""
        # (stale pages are touched ones: every write through the methods touches its page)
        idx = self.touched_indices()
        if len(idx) > budget:
            at = self._reread_at % len(idx)
            self._reread_at = at + budget
            idx = np.take(idx, np.arange(at, at + budget), mode="wrap")
        if len(idx):
            if self._hashes is None:
                self._hashes = np.zeros(self.npages, dtype=np.uint64)
            self._hashes[idx] = self.read_hashes(idx)
        if len(idx) == self.touched.count:
            self.stale.clear_all()
        else:
            self.stale.clear_many(idx)

    def hashes(self) -> np.ndarray:
        """Per-page content hashes (0 exactly for zero pages), refreshed where stale."""
        if self._hashes is None:
            self._hashes = np.zeros(self.npages, dtype=np.uint64)
        if self.stale.count:
            idx = self.stale.index_array()
            self._hashes[idx] = _hashes_at(self.mem, idx)
            self.stale.clear_all()
        return self._hashes

    def set_hashes(self, indices: np.ndarray, hashes: bytes) -> None:
        """Pages `indices` were just hashed (`hashes`: `hash_pages` bytes of their
        current contents, e.g. from a hashed copy): store them, no longer stale."""
        if self._hashes is None:
            self._hashes = np.zeros(self.npages, dtype=np.uint64)
        self._hashes[indices] = np.frombuffer(hashes, dtype=np.uint64)
        self.stale.clear_many(indices)

    def release(self) -> None:
        self._arr = None


class Ram:
    """All RAM blocks of one VM, in registration order (QEMU's RAM list order)."""

    def __init__(self, blocks: Iterable[tuple[str, int]]) -> None:
        self.blocks: dict[str, RamBlock] = {}
        for name, size in blocks:
            if name in self.blocks:
                raise ValueError(f"duplicate RAM block {name!r}")
            self.blocks[name] = RamBlock(name, size)
        if not self.blocks:
            raise ValueError("a RAM needs at least one block")
        # where the next dirty scan starts: (block position, page index); see collect_dirty
        self._cursor = (0, 0)

    # -- layout ------------------------------------------------------------
    def layout(self) -> list[tuple[str, int]]:
        return [(b.name, b.size_bytes) for b in self.blocks.values()]

    def block(self, name: str) -> RamBlock:
        try:
            return self.blocks[name]
        except KeyError:
            raise ValueError(f"unknown RAM block {name!r}") from None

    @property
    def size_bytes(self) -> int:
        return sum(b.size_bytes for b in self.blocks.values())

    # -- guest writes (dirty-logged) ----------------------------------------
    def write(self, block: str, offset: int, data: bytes) -> None:
        blk = self.block(block)
        blk.check(offset, len(data))
        if not data:
            return
        blk.before_write()
        blk.mem[offset:offset + len(data)] = data
        first, last = offset // PAGE_SIZE, (offset + len(data) - 1) // PAGE_SIZE
        for index in range(first, last + 1):
            blk.mark_written(index, dirty=True)

    def fill_page(self, block: str, page_index: int, byte: int) -> None:
        self.write(block, page_index * PAGE_SIZE, bytes([byte & 0xFF]) * PAGE_SIZE)

    def read(self, block: str, offset: int, length: int) -> bytes:
        blk = self.block(block)
        blk.check(offset, length)
        return blk.mem[offset:offset + length]

    def read_page(self, block: str, page_index: int) -> bytes:
        blk = self.block(block)
        blk.check(page_index * PAGE_SIZE, PAGE_SIZE)
        return blk.page(page_index)

    # -- writes by QEMU itself (not in the guest's dirty log) ---------------
    def store_page(self, block: str, page_index: int, data: bytes) -> None:
        blk = self.block(block)
        blk.check(page_index * PAGE_SIZE, PAGE_SIZE)
        blk.put_page(page_index, data)

    def dirty_count(self) -> int:
        return sum(b.dirty.count for b in self.blocks.values())

    def clear_dirty(self) -> None:
        for blk in self.blocks.values():
            blk.dirty.clear_all()

    # -- migration -----------------------------------------------------------
    def _scan_order(self) -> list[tuple[RamBlock, list[int]]]:
        """Dirty pages in QEMU's scan order: resume where the last pass stopped."""
        blocks = list(self.blocks.values())
        start_block, start_page = self._cursor
        order: list[tuple[RamBlock, list[int]]] = []
        first = blocks[start_block].dirty.indices()
        order.append((blocks[start_block], [i for i in first if i >= start_page]))
        for k in range(1, len(blocks)):
            blk = blocks[(start_block + k) % len(blocks)]
            order.append((blk, blk.dirty.indices()))
        order.append((blocks[start_block], [i for i in first if i < start_page]))
        return order

    def collect_dirty(self, xbzrle: bool = False) -> list[PageRecord]:
        """PageRecords for the dirty pages, in QEMU's scan order; clears the bitmaps.

        Like `ram_find_and_save_block`, the scan resumes after the block where
        the previous pass stopped, so every checkpoint of the run1 guest starts
        with vga.vram.  With `xbzrle`, a page already in the per-block cache is
        sent as an XBZRLE delta (skipped when unchanged, a full page when the
        delta is too big); zero pages are always ZERO records.
        """
        if not xbzrle:
            return self._collect_dirty_fast()
        records: list[PageRecord] = []
        positions = {name: k for k, name in enumerate(self.blocks)}
        last: tuple[int, int] | None = None
        for blk, indices in self._scan_order():
            for index in indices:
                data = blk.page(index)
                offset = index * PAGE_SIZE
                last = (positions[blk.name], blk.npages)
                if data == ZERO_PAGE:
                    if xbzrle:
                        blk.xbzrle_cache[index] = ZERO_PAGE
                    records.append(PageRecord(blk.name, offset, KIND_ZERO, b"", 0))
                    continue
                if xbzrle and index in blk.xbzrle_cache:
                    encoded = pagediff.xbzrle_encode(blk.xbzrle_cache[index], data)
                    blk.xbzrle_cache[index] = data
                    if encoded == b"":
                        continue  # unchanged since last sent: QEMU skips the page
                    if encoded is not None:
                        records.append(PageRecord(blk.name, offset, KIND_XBZRLE, encoded))
                        continue
                elif xbzrle:
                    blk.xbzrle_cache[index] = data
                records.append(PageRecord(blk.name, offset, KIND_PAGE, data))
            blk.dirty.clear_all()
        if last is not None:
            self._cursor = last
        return records

    def _dirty_scan_order(self) -> list:
        """[(block, dirty page indices)] in QEMU's scan order: from where the last
        pass stopped, around all blocks, back to the start of that block."""
        blocks = list(self.blocks.values())
        start_block, start_page = self._cursor
        first = blocks[start_block].dirty.index_array()
        cut = int(np.searchsorted(first, start_page))
        order = [(blocks[start_block], first[cut:])]
        order += [(blocks[(start_block + k) % len(blocks)],
                   blocks[(start_block + k) % len(blocks)].dirty.index_array())
                  for k in range(1, len(blocks))]
        order.append((blocks[start_block], first[:cut]))
        return order

    def _collect_dirty_fast(self) -> list[PageRecord]:
        """collect_dirty without XBZRLE: numpy bitmap scan.

        Dirty indices come from numpy, one tight loop per block.
        """
        order = self._dirty_scan_order()
        records: list[PageRecord] = []
        append = records.append
        last: tuple[int, int] | None = None
        for blk, indices in order:
            if len(indices):
                # PageRecord.data stays `bytes` (an mmap slice), zero pages by memcmp
                mem = blk.mem
                name = blk.name
                for offset in (indices * PAGE_SIZE).tolist():
                    data = mem[offset:offset + PAGE_SIZE]
                    if data == ZERO_PAGE:
                        append(PageRecord(name, offset, KIND_ZERO, b"", 0))
                    else:
                        append(PageRecord(name, offset, KIND_PAGE, data))
                last = (self._position(blk), blk.npages)
            blk.dirty.clear_all()
        if last is not None:
            self._cursor = last
        return records

    def collect_dirty_batch(self) -> PageBatch:
        """collect_dirty() without XBZRLE, as a PageBatch (no per-page objects).

        Same records, order and side effects as `collect_dirty()`: per block,
        the zero pages are found in place (a non-zero page at its first bytes,
        as a rule) and the dirty pages lent, not copied: each run's `source` is
        a `RamPages`, which the encoder copies straight into the wire image,
        hashing each page from its copy (so the next digest need not read them
        again), and which the block pins (copies) before it is next written.
        """
        order = self._dirty_scan_order()
        runs: list[PageRun] = []
        last: tuple[int, int] | None = None
        for blk, indices in order:
            if len(indices):
                kinds = np.full(len(indices), CODE_PAGE, dtype=np.uint8)
                zeros = pagediff.zero_pages_at(blk.mem, indices, PAGE_SIZE)
                if zeros:
                    zeros = np.asarray(zeros, dtype=np.int64)
                    kinds[zeros] = CODE_ZERO
                    rows = indices[zeros]         # a zero page's hash is 0 by definition
                    blk.set_hashes(rows, bytes(8 * len(rows)))
                runs.append(PageRun(blk.name, indices * PAGE_SIZE, kinds,
                                    source=blk.lend(indices)))
                last = (self._position(blk), blk.npages)
            blk.dirty.clear_all()
        if last is not None:
            self._cursor = last
        return PageBatch(runs)

    def _position(self, blk: RamBlock) -> int:
        return list(self.blocks).index(blk.name)

    def migration_pass(self) -> list[PageRecord]:
        """The initial migration: every touched page (zero or not); clears dirty bits.

        Like run1's capture, the migration's last (END) pass is taken to end in
        the first block (pc.ram), so the next dirty scan starts with the block
        after it (vga.vram first, as in every run1 checkpoint).
        """
        records: list[PageRecord] = []
        for blk in self.blocks.values():
            for index in blk.touched.indices():
                data = blk.page(index)
                kind = KIND_ZERO if data == ZERO_PAGE else KIND_PAGE
                records.append(PageRecord(blk.name, index * PAGE_SIZE, kind,
                                          b"" if kind == KIND_ZERO else data))
            blk.dirty.clear_all()
        self._cursor = (0, next(iter(self.blocks.values())).npages)
        return records

    def apply_record(self, record: PageRecord, dirty: bool = False) -> None:
        """Write one record into this RAM (xbzrle decoded against the current page)."""
        blk = self.block(record.block)
        if record.offset % PAGE_SIZE:
            raise ValueError(f"page record offset {record.offset:#x} is not page aligned")
        index = record.offset // PAGE_SIZE
        blk.check(record.offset, PAGE_SIZE)
        if record.kind == KIND_ZERO:
            data = bytes([record.fill & 0xFF]) * PAGE_SIZE
        elif record.kind == KIND_PAGE:
            data = record.data
        elif record.kind == KIND_XBZRLE:       # decoded in place, as QEMU does
            offset = index * PAGE_SIZE
            blk.before_write()
            with memoryview(blk.mem) as mem:
                pagediff.xbzrle_decode_into(record.data, mem[offset:offset + PAGE_SIZE])
            blk.mark_written(index, dirty)
            return
        else:
            raise ValueError(f"unknown page record kind {record.kind!r}")
        if dirty:
            self.write(record.block, record.offset, data)
        else:
            blk.put_page(index, data)

    # -- comparison and digests ----------------------------------------------
    def same_layout(self, other: Ram) -> bool:
        return self.layout() == other.layout()

    def diff_pages(self, other: Ram) -> dict[str, list[int]]:
        """Per block, the page indices whose contents differ (only non-empty blocks)."""
        if not self.same_layout(other):
            raise ValueError(f"RAM layouts differ: {self.layout()} vs {other.layout()}")
        out: dict[str, list[int]] = {}
        for name, mine in self.blocks.items():
            theirs = other.blocks[name]
            candidates = sorted(set(mine.touched.indices()) | set(theirs.touched.indices()))
            if not candidates:
                continue
            old = b"".join(theirs.page(i) for i in candidates)
            new = b"".join(mine.page(i) for i in candidates)
            changed = pagediff.changed_pages(old, new, PAGE_SIZE)
            if changed:
                out[name] = [candidates[k] for k in changed]
        return out

    def digest(self, raw: bool = False) -> str:
        """Content digest: block layout + every non-zero page (index, page hash).

        Incremental: each block keeps a 64-bit hash per page (`page_hashes`)
        and rehashes only the pages written since the last digest, so a
        digest costs the bytes written since, not the RAM size.  ``raw``: touched
        pages are read back and rehashed first (`RamBlock.reread_hashes`: all of them
        up to REREAD_PAGES per block, else that many in turn), so a write around the
        blocks' methods shows; it costs at most REREAD_PAGES pages' bytes per block.
        """
        h = hashlib.blake2b(digest_size=16)
        for blk in self.blocks.values():
            if raw:
                blk.reread_hashes(REREAD_PAGES)
            h.update(blk.name.encode() + b"\0" + blk.size_bytes.to_bytes(8, "big"))
            hashes = blk.hashes()
            touched = blk.touched_indices()       # (a page never touched hashes to 0)
            values = hashes[touched]
            keep = values != 0
            nonzero, values = touched[keep], values[keep]
            h.update(len(nonzero).to_bytes(8, "big"))
            h.update(nonzero.astype(">u8").tobytes())
            h.update(values.astype(">u8").tobytes())
        return h.hexdigest()

    def copy_from(self, other: Ram) -> None:
        """Make this RAM's contents equal to `other`'s (not dirty-logged)."""
        if not self.same_layout(other):
            raise ValueError(f"RAM layouts differ: {self.layout()} vs {other.layout()}")
        for name, src in other.blocks.items():
            dst = self.blocks[name]
            for index in sorted(set(src.touched.indices()) | set(dst.touched.indices())):
                dst.put_page(index, src.page(index))

    def clone(self) -> Ram:
        twin = Ram(self.layout())
        twin.copy_from(self)
        return twin

    def close(self) -> None:
        for blk in self.blocks.values():
            blk.before_write()          # lent pages still alive keep their data
            blk.release()
            blk.mem.close()
