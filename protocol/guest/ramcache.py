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
* `receive(..., bypass_cache=True)` models bug B11 (multifd writes guest RAM
  directly, the cache goes stale).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..pages import KIND_PAGE, PAGE_SIZE, PageRecord
from .ram import Bitmap, Ram


class RamCache:
    def __init__(self, svm_ram: Ram, include_svm_dirty: bool = True) -> None:
        self.svm_ram = svm_ram
        self.include_svm_dirty = include_svm_dirty
        self.cache = svm_ram.clone()                       # initial sync: cache == RAM
        self.bitmaps = {name: Bitmap(blk.npages) for name, blk in svm_ram.blocks.items()}
        self._undo: dict[tuple[str, int], bytes] = {}      # pre-checkpoint cache pages
        svm_ram.clear_dirty()                              # start the SVM's dirty log
        self.pages_received = 0
        self.pages_copied_total = 0
        self.last_flush_pages = 0
        self.flushes = 0
        self.discards = 0

    def pending(self) -> int:
        """Pages in the cache bitmap (PVM-sent, not yet flushed)."""
        return sum(bm.count for bm in self.bitmaps.values())

    def receive(self, records: Iterable[PageRecord], bypass_cache: bool = False) -> int:
        """Load PVM pages into the cache only; returns how many were loaded."""
        if not bypass_cache:
            if not isinstance(records, (list, tuple)):
                records = list(records)
            if self._receive_pages(records):
                self.pages_received += len(records)
                return len(records)
        count = 0
        for record in records:
            if bypass_cache:                               # bug B11 model
                self.svm_ram.apply_record(record, dirty=False)
                count += 1
                continue
            blk = self.cache.block(record.block)
            index = record.offset // PAGE_SIZE
            key = (record.block, index)
            if key not in self._undo and 0 <= index < blk.npages:
                self._undo[key] = blk.page(index)
            self.cache.apply_record(record, dirty=False)
            self.bitmaps[record.block].set(index)
            count += 1
        self.pages_received += count
        return count

    def _receive_pages(self, records) -> bool:
        """Fast path of `receive`: only full pages of one block, in range, aligned.

        Saves the undo copies in one gather, then writes the pages.  Returns
        False (nothing done) when the records do not fit it.
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
            fresh = np.unique(fresh)
            saved = [k for k in fresh.tolist() if (name, k) not in self._undo]
            if saved:
                old = blk.gather(saved)
                old.flags.writeable = False
                view = memoryview(old).cast("B")
                for k, index in enumerate(saved):
                    self._undo[(name, index)] = view[k * PAGE_SIZE:(k + 1) * PAGE_SIZE]
        mem = blk.mem
        for rec in records:
            offset = rec.offset
            mem[offset:offset + PAGE_SIZE] = rec.data
        blk.touched.set_many(idx)
        blk.stale.set_many(idx)
        bitmap.set_many(idx)
        return True

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
        for name, pages in self.flush_set().items():
            src = self.cache.blocks[name]
            dst = self.svm_ram.blocks[name]
            dst.put_pages(pages, src.gather(pages))
            copied += len(pages)
            self.bitmaps[name].clear_all()
            if self.include_svm_dirty:
                dst.dirty.clear_all()
        self._undo.clear()
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
        for bitmap in self.bitmaps.values():
            bitmap.clear_all()
        self.discards += 1
        return dropped

    def diff_from_ram(self) -> dict[str, list[int]]:
        """Pages where cache and SVM RAM differ (for tests and B11 detection)."""
        return self.cache.diff_pages(self.svm_ram)
