"""The secondary's COLO RAM cache (PROTOCOL.md §6, 7.2 `migration/ram.c`).

* At COLO start the cache equals SVM RAM (the initial migration wrote both)
  and the SVM's dirty log is cleared (`colo_incoming_start_dirty_log`).
* In COLO state PVM pages go **only** into the cache and set the page's bit in
  the cache bitmap (`receive`).
* `flush()` (after the whole checkpoint was received) copies cache -> SVM RAM
  for every page in PVM-sent ∪ SVM-dirtied (7.2 / hybrid) or PVM-sent only
  (v11 / periodic: the SVM did not run), clears the bits and returns how many
  pages it copied: the bitmap population, never the RAM size (bug B6).
  Copying SVM-dirtied pages from the cache reverts the SVM's own writes.
* `discard()` drops a partly received checkpoint: SVM RAM is untouched, and
  the cache returns to the last complete checkpoint (an undo log).

The undo log copies only what it must.  Outside the pages received since the
last flush, the cache equals SVM RAM except where the SVM wrote since (its dirty
log) or where a page reached SVM RAM around the cache (`diverged`: bug B11's
bypass).  So a page first received this checkpoint needs, to be undone:

* nothing, if the cache never held it (it was zero: restored as zero);
* nothing copied now, if the cache equals SVM RAM there: SVM RAM *lends* it
  (`RamBlock.lend`), and the loan is copied out only if SVM RAM is written
  before the flush or the discard (`before_write`; the SVM is stopped while a
  checkpoint comes in, so normally never) — the flush drops the loans first;
* a copy (into the reused arena), where the SVM or a bypass made them differ.
* `receive(..., bypass_cache=True)` models bug B11 (multifd writes guest RAM
  directly, the cache goes stale).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from protocol.guest import pagediff
from protocol.guest.ram import PAGE_HASH_WEIGHTS, Bitmap, Ram, RamPages
from protocol.migration.pages import (
    CODE_PAGE,
    CODE_ZERO,
    KIND_PAGE,
    PAGE_SIZE,
    PageBatch,
    PageRecord,
)

#: madvise(2): fault in (writable) every page of a range, contents unchanged (Linux 5.14)
MADV_POPULATE_WRITE = 23

#: the undo arena is kept between checkpoints up to this many pages (256 MiB)
UNDO_ARENA_MAX_PAGES = 1 << 16

_PAGE_SHIFT = PAGE_SIZE.bit_length() - 1


def unique_indices(idx: np.ndarray) -> np.ndarray:
    """np.unique(idx) for an int array, by sorting: numpy 2.4's np.unique hashes
    instead, ~60x slower here (5 ms against 0.08 for 26,215 page indices).  The
    simulator's flush-set and discard checks use it too (protocol.sim.guestwatch)."""
    idx = np.sort(idx)
    if len(idx) > 1:
        keep = np.empty(len(idx), dtype=bool)
        keep[0] = True
        np.not_equal(idx[1:], idx[:-1], out=keep[1:])
        idx = idx[keep]
    return idx


def _scatter(blk, arr: np.ndarray, idx: np.ndarray, pages: np.ndarray) -> None:
    """arr[idx] = pages, in C where the rows are whole pages at one stride: then
    straight out of the wire image a run was decoded from (rows `stride` apart,
    the record headers between them), without gathering them first."""
    stride, step = pages.strides
    if pages.flags.c_contiguous:
        pagediff.scatter_pages(blk.mem, idx, pages, PAGE_SIZE)
    elif step == 1 and stride >= PAGE_SIZE and len(pages):
        span = (len(pages) - 1) * stride + PAGE_SIZE
        flat = np.lib.stride_tricks.as_strided(pages, shape=(span,), strides=(1,),
                                               writeable=False)
        pagediff.scatter_pages(blk.mem, idx, flat, PAGE_SIZE, stride=stride)
    else:
        arr[idx] = pages


class RamCache:
    def __init__(self, svm_ram: Ram, include_svm_dirty: bool = True) -> None:
        self.svm_ram = svm_ram
        self.include_svm_dirty = include_svm_dirty
        self.cache = svm_ram.clone()                       # initial sync: cache == RAM
        self.bitmaps = {name: Bitmap(blk.npages) for name, blk in svm_ram.blocks.items()}
        self._undo: dict[tuple[str, int], bytes] = {}      # pre-checkpoint cache pages
        #: bulk undo: (block, page indices, their old contents: an array, RamPages lent
        #: by SVM RAM (equal to the cache there), or None = were zero)
        self._undo_runs: list[tuple[str, np.ndarray, np.ndarray | RamPages | None]] = []
        #: pages where SVM RAM was written around the cache (B11 bypass): the cache may
        #: differ from SVM RAM there although the SVM's dirty log does not say so
        self.diverged = {name: Bitmap(blk.npages) for name, blk in svm_ram.blocks.items()}
        #: one buffer the bulk undo copies go to, reused checkpoint after checkpoint
        #: (no fresh allocation, so no page faults, in the steady state)
        self._arena: np.ndarray | None = None
        self._arena_used = 0
        svm_ram.clear_dirty()                              # start the SVM's dirty log
        self.pages_received = 0
        self.pages_copied_total = 0
        self.last_flush_pages = 0
        self.flushes = 0
        self.discards = 0

    def populate(self) -> int:
        """Make every page of the cache resident, as QEMU 7.2's initial migration
        leaves it: before COLO state each received page is written into SVM RAM *and*
        copied into the cache (`ram_load_precopy`'s `host_bak`), and the first pass
        sends every page, zero pages too.  The model's clone copies only the pages
        that hold data, so its cache would first fault at the first checkpoint, which
        QEMU's does not.  Contents are unchanged (MADV_POPULATE_WRITE only maps the
        pages).  Returns the bytes populated (0 where the kernel lacks it: Linux < 5.14).
        SVM RAM is left as it is: QEMU does not write a zero page into it
        (`ram_handle_compressed` skips a page that reads as zero)."""
        done = 0
        for blk in self.cache.blocks.values():
            try:
                blk.mem.madvise(MADV_POPULATE_WRITE)
            except (OSError, ValueError):
                return done
            done += blk.size_bytes
        return done

    def pending(self) -> int:
        """Pages in the cache bitmap (PVM-sent, not yet flushed)."""
        return sum(bm.count for bm in self.bitmaps.values())

    def receive(self, records: Iterable[PageRecord], bypass_cache: bool = False) -> int:
        """Load PVM pages into the cache only; returns how many were loaded."""
        if not bypass_cache:
            if isinstance(records, PageBatch):
                if self._receive_batch(records):
                    self.pages_received += len(records)
                    return len(records)
                records = list(records)
            elif not isinstance(records, (list, tuple)):
                records = list(records)
            if self._receive_pages(records):
                self.pages_received += len(records)
                return len(records)
        count = 0
        for record in records:
            if bypass_cache:                               # bug B11 model
                self.svm_ram.apply_record(record, dirty=False)
                if record.block in self.diverged:
                    self.diverged[record.block].set(record.offset // PAGE_SIZE)
                count += 1
                continue
            blk = self.cache.block(record.block)
            index = record.offset // PAGE_SIZE
            if 0 <= index < blk.npages and not self.bitmaps[record.block].test(index):
                self._undo[(record.block, index)] = blk.page(index)     # first this checkpoint
            self.cache.apply_record(record, dirty=False)
            self.bitmaps[record.block].set(index)
            count += 1
        self.pages_received += count
        return count

    def _receive_pages(self, records) -> bool:
        """Fast path of `receive`: only full pages of one block, in range, aligned.

        Notes the undo entries of the pages first received this checkpoint (as
        `_receive_batch`), then writes the pages.  Returns False (nothing done)
        when the records do not fit it.
        """
        if not records:
            return False
        name = records[0].block
        blk = self.cache.blocks.get(name)
        if blk is None:
            return False
        size = blk.size_bytes
        offsets = []
        for rec in records:
            offset = rec.offset
            if rec.kind != KIND_PAGE or rec.block != name or offset % PAGE_SIZE \
                    or not 0 <= offset < size or len(rec.data) != PAGE_SIZE:
                return False
            offsets.append(offset)
        idx = np.asarray(offsets, dtype=np.int64) // PAGE_SIZE
        bitmap = self.bitmaps[name]
        fresh = idx[~bitmap.test_many(idx)]
        if len(fresh):
            self._note_undo(name, blk, unique_indices(fresh), 0)
        mem = blk.mem
        blk.before_write()
        for rec in records:
            offset = rec.offset
            mem[offset:offset + PAGE_SIZE] = rec.data
        blk.touched.set_many(idx)
        blk.stale.set_many(idx)
        bitmap.set_many(idx)
        return True

    def _receive_batch(self, batch: PageBatch) -> bool:
        """Fast path of `receive` for a PageBatch of ZERO/PAGE records (no per-page
        objects): per block, save the undo copies of the pages first received this
        checkpoint (pages never written in the cache need none: they were zero),
        then write each run's pages with one scatter.  False (nothing done) when the
        batch does not fit it (unknown block, XBZRLE, bad offsets).

        The bookkeeping (undo entries, the touched, stale and cache bitmaps) is done
        once per block for all its runs: a decoded checkpoint comes in runs of
        growing size (1, 256, 64, 512, 4096, then the rest, for 26,215 pages), each
        bitmap update costs a pass over the whole map, and a page in two runs is
        still noted once, with its contents from before the checkpoint."""
        blocks = self.cache.blocks
        for run in batch.runs:
            blk = blocks.get(run.block)
            if blk is None or run.xdata:
                return False
            kinds, offs = run.kinds, run.offsets
            is_page = kinds == CODE_PAGE
            if not (is_page | (kinds == CODE_ZERO)).all() or (offs % PAGE_SIZE).any() \
                    or int(offs.min()) < 0 or int(offs.max()) >= blk.size_bytes:
                return False
            if is_page.any() and (run.pages is None or len(run.pages) != len(offs)):
                return False
        groups: dict[str, list] = {}
        for run in batch.runs:
            groups.setdefault(run.block, []).append(run)
        left = len(batch)
        for name, runs in groups.items():
            blk = blocks[name]
            idxs = [run.offsets >> _PAGE_SHIFT for run in runs]    # (offsets >= 0)
            idx = idxs[0] if len(idxs) == 1 else np.concatenate(idxs)
            left -= len(idx)
            bitmap = self.bitmaps[name]
            fresh = idx[~bitmap.test_many(idx)]
            if len(fresh):
                if len(fresh) > 1 and not (fresh[1:] > fresh[:-1]).all():
                    fresh = unique_indices(fresh)      # (a run off the wire is ascending)
                if self._undo:
                    fresh = np.array([k for k in fresh.tolist() if (name, k) not in self._undo],
                                     dtype=np.int64)
                self._note_undo(name, blk, fresh, left)
            arr = blk.array()
            blk.before_write()
            for run, ridx in zip(runs, idxs, strict=True):
                is_page = run.kinds == CODE_PAGE
                if is_page.all():
                    _scatter(blk, arr, ridx, run.pages)
                    continue
                rows = np.flatnonzero(is_page)
                if len(rows):
                    arr[ridx[rows]] = run.pages[rows]
                zero = np.flatnonzero(~is_page)
                fills = run.fills
                arr[ridx[zero]] = 0 if fills is None else fills[zero][:, None]
            blk.touched.set_many(idx)
            blk.stale.set_many(idx)
            bitmap.set_many(idx)
        return True

    def _note_undo(self, name: str, blk, fresh: np.ndarray, hint: int) -> None:
        """Undo entries for the pages `fresh` of cache block `blk`, about to be first
        written this checkpoint: zero if the cache never held them, else lent by SVM
        RAM where it equals the cache, else copied (see the module docstring)."""
        was = blk.touched.test_many(fresh)
        if not was.all():
            self._undo_runs.append((name, fresh[~was], None))
        if not was.any():
            return
        old = fresh[was]
        svm = self.svm_ram.blocks[name]
        differs = svm.dirty.test_many(old) | self.diverged[name].test_many(old)
        if differs.any():
            own = old[differs]
            self._undo_runs.append((name, own, self._save_pages(blk, own, hint)))
            old = old[~differs]
        if len(old):
            self._undo_runs.append((name, old, svm.lend(old)))

    def _save_pages(self, blk, idx: np.ndarray, hint: int = 0) -> np.ndarray:
        """Copies of the pages `idx` of `blk` for the undo log, in the reused arena
        (a one-off buffer past UNDO_ARENA_MAX_PAGES).  `hint`: pages this receive may
        still save after these (the arena grows once for all of them)."""
        n, used, arena = len(idx), self._arena_used, self._arena
        if arena is None or used + n > len(arena):
            if used + n > UNDO_ARENA_MAX_PAGES:
                return blk.gather(idx)
            size = min(UNDO_ARENA_MAX_PAGES,
                       max(used + n + hint, 2 * len(arena) if arena is not None else 0))
            # earlier slices of the old arena stay alive through the undo log
            arena, used = np.empty((size, PAGE_SIZE), dtype=np.uint8), 0
            self._arena = arena
        out = arena[used:used + n]
        pagediff.gather_pages(blk.mem, idx, out, PAGE_SIZE)
        self._arena_used = used + n
        return out

    def _copy_pages(self, src, dst, idx: np.ndarray) -> None:
        """dst pages idx := src pages idx, each page hashed from its copy in the same
        pass (in C where it is built): both blocks' hashes of those pages are then
        fresh, so the digests after the flush need not read them again."""
        dst.before_write()
        hashes = pagediff.copy_pages_hashed(src.mem, dst.mem, idx, PAGE_HASH_WEIGHTS, PAGE_SIZE)
        dst.touched.set_many(idx)
        dst.set_hashes(idx, hashes)
        src.set_hashes(idx, hashes)

    def flush_set(self) -> dict[str, list[int]]:
        """The pages `flush` would copy: cache bitmap ∪ SVM dirty log (if included)."""
        out: dict[str, list[int]] = {}
        for name, bitmap in self.bitmaps.items():
            pages = set(bitmap.indices())
            if self.include_svm_dirty:
                pages.update(self.svm_ram.blocks[name].dirty.indices())
            if pages:
                out[name] = sorted(pages)
        return out

    def flush(self) -> int:
        """colo_flush_ram_cache: copy the flush set cache -> SVM RAM; returns its size."""
        copied = 0
        # the checkpoint commits: no undo, and SVM RAM's loans end before it is written
        self._undo.clear()
        self._undo_runs.clear()
        for name, bitmap in self.bitmaps.items():
            src = self.cache.blocks[name]
            dst = self.svm_ram.blocks[name]
            if self.include_svm_dirty:
                pages = bitmap.union_array(dst.dirty)
            else:
                pages = bitmap.index_array()
            if len(pages):
                self._copy_pages(src, dst, pages)
                copied += len(pages)
                diverged = self.diverged[name]
                if diverged.count:
                    diverged.clear_many(pages)      # equal again
            bitmap.clear_all()
            if self.include_svm_dirty:
                dst.dirty.clear_all()
        self._arena_used = 0
        self.pages_copied_total += copied
        self.last_flush_pages = copied
        self.flushes += 1
        return copied

    def discard(self) -> int:
        """Drop a partial checkpoint; SVM RAM is not touched. Returns pages dropped."""
        dropped = self.pending()
        for (name, index), data in self._undo.items():
            self.cache.blocks[name].put_page(index, data)
        self._undo.clear()
        for name, idx, old in self._undo_runs:
            blk = self.cache.blocks[name]
            if isinstance(old, RamPages) and not old.pinned:
                # SVM RAM still holds what the cache held: copy it back
                blk.before_write()
                pagediff.copy_pages(old.block.mem, blk.mem, idx, PAGE_SIZE)
                blk.touched.set_many(idx)
                blk.stale.set_many(idx)
                continue
            if isinstance(old, RamPages):
                old = old.gather()
            blk.put_pages(idx, old if old is not None
                          else np.zeros((len(idx), PAGE_SIZE), dtype=np.uint8))
        self._undo_runs.clear()
        self._arena_used = 0
        for bitmap in self.bitmaps.values():
            bitmap.clear_all()
        self.discards += 1
        return dropped

    def diff_from_ram(self) -> dict[str, list[int]]:
        """Pages where cache and SVM RAM differ (for tests and B11 detection)."""
        return self.cache.diff_pages(self.svm_ram)
