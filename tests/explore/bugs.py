"""Injected COLO bugs, of the kinds QEMU's COLO really had (PROTOCOL.md §13).

Each bug is a function `inject(monkeypatch)` that breaks the code the way the
real bug did.  The swarm must catch each one by an invariant, a hang or a
crash -- never only by a replay difference.  `EXPECTED` names what should
catch it (any failure counts for the score; the name documents the intent).
"""
from __future__ import annotations

import numpy as np

from protocol.core import failover as fo
from protocol.core import messages as m
from protocol.core import primary as prim
from protocol.core import secondary as sec
from protocol.guest import disk, model, net, pagediff, ramcache
from protocol.guest import ram as ram_mod
from protocol.migration.pages import KIND_PAGE, PAGE_SIZE, PageBatch, PageRecord


def flush_whole_cache(mp):
    """B6: the secondary flushes every page the cache ever held, not the dirty set."""
    orig = ramcache.RamCache.flush

    def flush(self):
        for name, bitmap in self.bitmaps.items():
            touched = self.cache.blocks[name].touched.index_array()
            bitmap.set_many(touched)
        return orig(self)
    mp.setattr(ramcache.RamCache, "flush", flush)


def flush_misses_svm_dirty(mp):
    """The flush copies the PVM's pages but not the pages the SVM dirtied (7.2 before
    colo_bitmap_find_dirty counted them): the SVM keeps its own divergent writes."""
    orig = ramcache.RamCache.flush

    def flush(self):
        keep, self.include_svm_dirty = self.include_svm_dirty, False
        try:
            return orig(self)
        finally:
            self.include_svm_dirty = keep
            for blk in self.svm_ram.blocks.values():
                blk.dirty.clear_all()
    mp.setattr(ramcache.RamCache, "flush", flush)


def checkpoint_id_uint8(mp):
    """A checkpoint counter kept in 8 bits: wraps after 255 checkpoints."""
    orig = prim.PrimaryMachine._on_checkpoint

    def on_checkpoint(self, item):
        nxt = orig(self, item)
        self.in_flight &= 0xFF
        return nxt
    mp.setattr(prim.PrimaryMachine, "_on_checkpoint", on_checkpoint)


def secondary_id_off_by_one(mp):
    """The secondary numbers the checkpoint it loads one ahead after its first."""
    orig = sec.SecondaryMachine._on_request

    def on_request(self, msg):
        nxt = orig(self, msg)
        if self.checkpoint >= 1:
            self.in_flight = self.checkpoint + 2
        return nxt
    mp.setattr(sec.SecondaryMachine, "_on_request", on_request)


def vmstate_size_without_eof(mp):
    """vmstate-size counts the device sections but not the trailing QEMU_VM_EOF byte."""
    def send_blob(self, blob):
        self.send(m.VMSTATE_SIZE, len(blob) - 1)
        self.send_payload("blob", "device-state", blob)
    mp.setattr(prim.PrimaryMachine, "_send_blob", send_blob)


def release_at_reply(mp):
    """Output commit broken: buffered output leaves at checkpoint-reply, before the SVM
    has the checkpoint."""
    orig = prim.PrimaryMachine._on_reply

    def on_reply(self, msg):
        if self.failover.state == fo.NONE:
            self._release()
        return orig(self, msg)
    mp.setattr(prim.PrimaryMachine, "_on_reply", on_reply)


def failover_during_load_no_relaunch(mp):
    """A failover that meets a load in progress takes over at once (no relaunch): the
    checkpoint being loaded is lost although the primary already released its output."""
    def do_failover(self):
        self.vmstate_loading = False
        self._blob = b""
        self.in_flight = 0
        self.guest.discard_cache()
        self.guest.take_over()
        self.emit("action", name="take-over", why="(bug) no relaunch")
        self.cancel_timer("load")
        self.finish_failover(fo.REASON_REQUEST)
    mp.setattr(sec.SecondaryMachine, "do_failover", do_failover)


def compare_releases_mismatch(mp):
    """colo-compare compares only the packet length, not its bytes."""
    def _compare(self, conn, now_ms):
        released = []
        while conn.primary and conn.secondary:
            pkt = conn.primary.popleft()
            match = next((s for s in conn.secondary if len(s.payload) == len(pkt.payload)),
                         None)
            if match is None:
                conn.primary.appendleft(pkt)
                self._notify(now_ms, "mismatch")
                break
            conn.secondary.remove(match)
            released.append(pkt)
            self.matched += 1
        return released
    mp.setattr(net.ColoCompare, "_compare", _compare)


def dirty_log_cleared_before_sync(mp):
    """The dirty log of the second RAM block is cleared before the bitmap sync reads it:
    the VGA pages written since the last checkpoint are never sent."""
    orig = model.Guest.collect_dirty_pages

    def collect(self):
        blocks = list(self.ram.blocks.values())
        if len(blocks) > 1:
            blocks[1].dirty.clear_all()
        return orig(self)
    mp.setattr(model.Guest, "collect_dirty_pages", collect)


def page_offset_32bit(mp):
    """B7: page index << TARGET_PAGE_BITS computed in 32 bits: a page above 4 GiB lands
    4 GiB lower in the secondary's cache."""
    orig = ramcache.RamCache.receive

    def receive(self, records, bypass_cache=False):
        if isinstance(records, PageBatch):
            for run in records.runs:
                run.offsets = run.offsets & np.int64(0xFFFFFFFF)
        else:
            records = [PageRecord(r.block, r.offset & 0xFFFFFFFF, r.kind, r.data, r.fill)
                       for r in records]
        return orig(self, records, bypass_cache)
    mp.setattr(ramcache.RamCache, "receive", receive)


def multifd_bypasses_cache(mp):
    """B11: pages arrive straight in SVM RAM (multifd), not in the RAM cache."""
    def cache_pages(self, records):
        self._cache().receive(records, bypass_cache=True)
    mp.setattr(model.Guest, "cache_pages", cache_pages)


def svm_resumes_before_flush(mp):
    """The SVM is restarted before its RAM cache is flushed and the devices are loaded."""
    orig = sec.SecondaryMachine._on_load_done

    def on_load_done(self, item):
        if self.mode == "hybrid":
            self.start_vm("(bug) resume first")
        return orig(self, item)
    mp.setattr(sec.SecondaryMachine, "_on_load_done", on_load_done)


def partial_checkpoint_flushed_on_failover(mp):
    """Failover mid-checkpoint flushes the partly received checkpoint into SVM RAM
    instead of discarding it."""
    orig = sec.SecondaryMachine.do_failover

    def do_failover(self):
        if not self.vmstate_loading and self.in_flight:
            self.guest.flush_cache()
        return orig(self)
    mp.setattr(sec.SecondaryMachine, "do_failover", do_failover)


def filter_buffer_keeps_released(mp):
    """filter-buffer sends its queue at a release but does not dequeue it."""
    def release(self, now_ms):
        out = list(self.queue)
        self.released_total += len(out)
        return out
    mp.setattr(net.FilterBuffer, "release", release)


def dirty_sync_before_stop(mp):
    """The PVM syncs its dirty log when the checkpoint begins and stops only at the
    reply: writes in between escape the checkpoint."""
    orig_cp, orig_reply = prim.PrimaryMachine._on_checkpoint, prim.PrimaryMachine._on_reply

    def on_checkpoint(self, item):
        self._early_pages = self.guest.collect_dirty_pages()
        return orig_cp(self, item)

    def on_reply(self, msg):
        early, self._early_pages = getattr(self, "_early_pages", None), None
        if early is None:
            return orig_reply(self, msg)
        self.guest.collect_dirty_pages = lambda: early     # the stale sync is what is sent
        try:
            return orig_reply(self, msg)
        finally:
            del self.guest.collect_dirty_pages
    mp.setattr(prim.PrimaryMachine, "_on_checkpoint", on_checkpoint)
    mp.setattr(prim.PrimaryMachine, "_on_reply", on_reply)


def relaunch_skips_load(mp):
    """The relaunch path takes over as soon as the load timer ends without flushing the
    cache or loading the devices, yet commits the checkpoint."""
    orig = sec.SecondaryMachine._on_load_done

    def on_load_done(self, item):
        if self.failover.state == fo.RELAUNCH:
            self.guest.discard_cache()
            self._blob = b""
            self.vmstate_loading = False
            self.checkpoint, self.in_flight = self.in_flight, 0
            self.emit("checkpoint", n=self.checkpoint, phase="commit", loaded_sent=False)
            return None          # the table enters IDLE, then the deferred failover runs
        return orig(self, item)
    mp.setattr(sec.SecondaryMachine, "_on_load_done", on_load_done)


def failover_drops_buffered_output(mp):
    """Primary failover removes filter-buffer without flushing it: the packets it held
    (answers the client is owed) are lost."""
    def disable(self, now_ms):
        self.queue.clear()
        self.enabled = False
        return []
    mp.setattr(net.FilterBuffer, "disable", disable)


def mismatch_not_notified(mp):
    """colo-compare finds a mismatch but its notification never reaches the COLO thread
    (the notify chardev path): no checkpoint until the 3 s stale scan."""
    orig = net.ColoCompare._notify

    def notify(self, now_ms, reason):
        if reason != "mismatch":
            orig(self, now_ms, reason)
    mp.setattr(net.ColoCompare, "_notify", notify)



def discard_undo_into_svm(mp):
    """Dropping a partly received checkpoint copies the undo the wrong way round: the
    pages SVM RAM lent to the undo log are overwritten with the partial checkpoint's
    (a swapped memcpy; the page-hash cache never learns of the raw write)."""
    class Swapped:
        def __getattr__(self, name):
            return getattr(pagediff, name)

        @staticmethod
        def copy_pages(src, dst, idx, page_size):
            return pagediff.copy_pages(dst, src, idx, page_size)
    mp.setattr(ramcache, "pagediff", Swapped())


def failover_commit_hidden_wins(mp):
    """The secondary's block replication commits its layers in the wrong order at
    failover: the hidden disk (the COW backup of forwarded writes) over the active one,
    so sectors the SVM wrote since its last checkpoint go back to older data."""
    def failover_commit(self):
        self.base.update(self.active)
        self.base.update(self.hidden)
        self.hidden.clear()
        self.active.clear()
        self.replicating = False
    mp.setattr(disk.SecondaryDisk, "failover_commit", failover_commit)


def flush_before_blob(mp):
    """The secondary flushes its RAM cache into SVM RAM as soon as the RAM part is in,
    before the device state (and vmstate-received): a checkpoint that then breaks off
    has already overwritten the SVM's last whole one."""
    orig = sec.SecondaryMachine._on_ram

    def on_ram(self, part):
        out = orig(self, part)
        self.pages_flushed_total += self.guest.flush_cache()
        return out
    mp.setattr(sec.SecondaryMachine, "_on_ram", on_ram)


def pvm_resumes_at_received(mp):
    """The primary resumes its VM at vmstate-received, before the secondary has
    loaded (and acknowledged) the checkpoint: the PVM runs ahead of a checkpoint
    that may still be lost."""
    orig = prim.PrimaryMachine._on_received

    def on_received(self, msg):
        out = orig(self, msg)
        self.start_vm("resumed early")
        return out
    mp.setattr(prim.PrimaryMachine, "_on_received", on_received)


def xbzrle_cache_stale_after_fallback(mp):
    """The primary updates its XBZRLE page cache only when it sends a delta: after a
    full-page fallback (delta too big) the cache keeps the older page, while the
    secondary's holds the full page it received, so the next delta decodes wrong."""
    orig = ram_mod.Ram.collect_dirty

    def collect_dirty(self, xbzrle=False):
        if not xbzrle:
            return orig(self, xbzrle)
        before = {name: dict(blk.xbzrle_cache) for name, blk in self.blocks.items()}
        records = orig(self, xbzrle)
        for rec in records:
            old = before[rec.block].get(rec.offset // PAGE_SIZE)
            if rec.kind == KIND_PAGE and old is not None:
                self.blocks[rec.block].xbzrle_cache[rec.offset // PAGE_SIZE] = old
        return records
    mp.setattr(ram_mod.Ram, "collect_dirty", collect_dirty)


def filter_buffer_interval_timer(mp):
    """v11 patch 34's default filter-buffer left with its interval timer (patch 35 is
    what let COLO set interval=0): besides COLO's release after each checkpoint it
    flushes its queue every interval (100 ms here, at the first packet after it),
    sending answers no checkpoint the secondary holds covers."""
    orig = net.FilterBuffer.send

    def send(self, pkt, now_ms):
        out = orig(self, pkt, now_ms)
        due = getattr(self, "_interval_due", None)
        if due is None or now_ms < due:
            if due is None:
                self._interval_due = now_ms + 100
            return out
        self._interval_due = now_ms + 100
        return out + (self.release(now_ms) if self.enabled else [])
    mp.setattr(net.FilterBuffer, "send", send)


def pvm_resumed_before_release(mp):
    """After vmstate-loaded (the v11 and prototype release point) the primary resumes
    the PVM first and flushes its output buffer after: the answers the PVM gives at
    once (to requests that queued while it was stopped) leave with the checkpoint's."""
    orig = prim.PrimaryMachine._on_loaded

    def on_loaded(self, msg):
        if self.dialect.release_after != m.VMSTATE_LOADED:
            return orig(self, msg)
        release = self._release
        self._release = lambda: None
        try:
            out = orig(self, msg)
        finally:
            del self._release
        release()
        return out
    mp.setattr(prim.PrimaryMachine, "_on_loaded", on_loaded)


def flush_copies_one_page_per_run(mp):
    """colo_flush_ram_cache copies each run of flagged pages it finds with
    memcpy(dst, src, TARGET_PAGE_SIZE) -- one page, not TARGET_PAGE_SIZE * num -- yet
    clears the whole run's bits: the rest of every run keeps the SVM's old contents.
    (The model's flush copies and hashes in one pass; this copy hashes what it read,
    the cache's pages, so the page-hash cache believes the whole run arrived.)"""
    class OnePagePerRun:
        def __getattr__(self, name):
            return getattr(pagediff, name)

        @staticmethod
        def copy_pages_hashed(src, dst, idx, weights, page_size):
            idx = np.asarray(idx, dtype=np.int64)
            hashes = pagediff.hash_pages(src, idx, weights, page_size)
            if len(idx):
                starts = idx[np.r_[True, idx[1:] != idx[:-1] + 1]]
                pagediff.copy_pages(src, dst, starts, page_size)
            return hashes
    mp.setattr(ramcache, "pagediff", OnePagePerRun())


def secondary_disk_checkpoint_at_request(mp):
    """The secondary does its replication checkpoint where the primary does its own,
    as the transaction starts (after stopping its VM), not after the load: the active
    and hidden disks are emptied while the checkpoint can still break off, and a
    secondary that then takes over sees the PVM's disk under its own RAM and devices."""
    orig = sec.SecondaryMachine._on_request

    def on_request(self, msg):
        out = orig(self, msg)
        self.guest.replication_checkpoint()
        return out
    mp.setattr(sec.SecondaryMachine, "_on_request", on_request)


def release_when_sent(mp):
    """The primary releases its buffered output as soon as it has written the whole
    checkpoint to the channel (RAM, vmstate-size, the device state), not when the
    secondary acknowledges it: a primary that dies before the bytes are in leaves a
    secondary without the checkpoint whose answers the client already has."""
    orig = prim.PrimaryMachine._send_blob

    def send_blob(self, blob):
        orig(self, blob)
        self._release()
    mp.setattr(prim.PrimaryMachine, "_send_blob", send_blob)


BUGS = {
    "flush_whole_cache": flush_whole_cache,
    "flush_misses_svm_dirty": flush_misses_svm_dirty,
    "checkpoint_id_uint8": checkpoint_id_uint8,
    "secondary_id_off_by_one": secondary_id_off_by_one,
    "vmstate_size_without_eof": vmstate_size_without_eof,
    "release_at_reply": release_at_reply,
    "failover_during_load_no_relaunch": failover_during_load_no_relaunch,
    "compare_releases_mismatch": compare_releases_mismatch,
    "dirty_log_cleared_before_sync": dirty_log_cleared_before_sync,
    "page_offset_32bit": page_offset_32bit,
    "multifd_bypasses_cache": multifd_bypasses_cache,
    "svm_resumes_before_flush": svm_resumes_before_flush,
    "partial_checkpoint_flushed_on_failover": partial_checkpoint_flushed_on_failover,
    "filter_buffer_keeps_released": filter_buffer_keeps_released,
    "dirty_sync_before_stop": dirty_sync_before_stop,
    "relaunch_skips_load": relaunch_skips_load,
    "failover_drops_buffered_output": failover_drops_buffered_output,
    "mismatch_not_notified": mismatch_not_notified,
    "discard_undo_into_svm": discard_undo_into_svm,
    "failover_commit_hidden_wins": failover_commit_hidden_wins,
    "flush_before_blob": flush_before_blob,
    "pvm_resumes_at_received": pvm_resumes_at_received,
    "xbzrle_cache_stale_after_fallback": xbzrle_cache_stale_after_fallback,
    "filter_buffer_interval_timer": filter_buffer_interval_timer,
    "pvm_resumed_before_release": pvm_resumed_before_release,
    "flush_copies_one_page_per_run": flush_copies_one_page_per_run,
    "secondary_disk_checkpoint_at_request": secondary_disk_checkpoint_at_request,
    "release_when_sent": release_when_sent,
}
