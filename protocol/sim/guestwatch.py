"""The invariants that watch the guests themselves (DESIGN.md §5, 1 and 8-11).

Events say *that* the secondary flushed its cache or that colo-compare
released a packet; they do not say which pages or which bytes.  `GuestWatch`
wraps a few methods of the model guests of one simulation (instance
attributes, the classes are untouched) and checks, at the moment they happen:

* flush set: the pages flushed are exactly (PVM-sent ∪ SVM-dirtied): every one
  of them equals the cache afterwards, and the count is that union's size,
  not fewer, not the whole cache (B6); and the flush comes only after the whole
  checkpoint arrived (vmstate-received);
* consistency before the SVM resumes: at the end of a load, before the SVM runs
  again (hybrid), its RAM, devices and disk equal the PVM's at its stop;
* whole survivor: a secondary taking over in periodic mode (it did not run
  since its last load) holds exactly the checkpoint it last committed; in
  hybrid mode (it ran since, on its own), one that takes over while stopped for
  a checkpoint it never loaded still holds, as the take-over begins, what it
  stopped with: its last checkpoint and its own run (RAM read back raw,
  devices, the disk it sees and its own writes on it, the active disk), nothing
  of the checkpoint that broke off;
* compare honesty: a packet released as a match had an identical SVM packet
  (same connection, same bytes) that no other match used;
* dirty log: when the PVM stops for a checkpoint, no guest write is left in its
  dirty log (a write between the sync and the stop would escape the checkpoint);
* the PVM stays stopped: it resumes only when its checkpoint is committed
  (vmstate-loaded), or as the survivor of a failover;
* discard keeps SVM RAM: dropping a partly received checkpoint restores the RAM
  cache and never writes SVM RAM (the pages it received are read back raw, not
  through the page-hash cache, which a raw write would leave stale);
* take-over keeps the view: a side taking over sees, until it runs again, the
  RAM, devices and disk it saw just before (the secondary's block replication
  commits active over hidden over its disk: what the SVM saw);
* client history at the take-over: a side taking over holds, as it starts to run
  alone, every request whose answer the client saw (before it takes in the
  mirrored requests queued for it, which would hide a lost checkpoint);
* output covered: a PVM packet the output buffer (filter-buffer, or colo-compare
  at a checkpoint) -- or anything else but a colo-compare match -- lets out while
  COLO runs was made before the PVM stopped for
  a checkpoint whose release point (the dialect's ``release_after`` message) the
  primary has passed: nothing made after that stop leaves with it, nothing
  leaves before it (colo-compare's matches are compare honesty's; a primary
  taking over sends what it holds as the survivor).

The sets it keeps are bounded by one checkpoint's pages and packets.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from protocol.guest.disk import disk_digest
from protocol.guest.ramcache import unique_indices
from protocol.migration.pages import PAGE_SIZE, PageBatch

#: the primary's states once COLO has ended for it (it runs alone from then on)
_ENDED = frozenset(("DONE", "ERROR", "SHUTDOWN"))
#: how packets the output buffer held reach the client (ClientLog's ``via``)
_HELD = frozenset(("filter-buffer", "compare-checkpoint"))


def _held_by(guest) -> dict[str, str]:
    """What a VM holds, for a comparison: RAM (read back raw), devices, the disk it sees
    and, on a secondary, its own writes on it (the active disk, which only a whole
    checkpoint drops and only a failover commits)."""
    held = {"RAM": guest.ram.digest(raw=True), "devices": guest.devices.digest(),
            "disk": guest.disk.digest()}
    active = getattr(guest.disk, "active", None)
    if active is not None:
        held["own disk writes (active disk)"] = disk_digest(active)
    return held


def _page_indices(records) -> dict[str, np.ndarray]:
    """{block: page indices} of the records handed to the cache (any record kind)."""
    out: dict[str, list] = {}
    if isinstance(records, PageBatch):
        for run in records.runs:
            out.setdefault(run.block, []).append(run.offsets // PAGE_SIZE)
    else:
        by: dict[str, list[int]] = {}
        for rec in records:
            by.setdefault(rec.block, []).append(rec.offset // PAGE_SIZE)
        for name, idx in by.items():
            out.setdefault(name, []).append(np.asarray(idx, dtype=np.int64))
    return {k: np.concatenate(v) for k, v in out.items()}


class GuestWatch:
    def __init__(self, inv, sim) -> None:
        self.inv = inv
        self.sim = sim
        self.primary = sim.guests["primary"]
        self.secondary = sim.guests["secondary"]
        self.sent: dict[str, list[np.ndarray]] = {}
        self.svm_packets: Counter = Counter()
        self._took_over = False
        self.pvm_packets: set = set()      # every packet the PVM produced (its keys)
        self._took_over_from: dict[str, tuple] = {}   # role -> what it saw (take_over)
        #: hybrid: (checkpoint, what the SVM held) as it stopped for that checkpoint,
        #: until it runs again
        self._svm_stop: tuple[int, dict] | None = None
        # output covered: the last PVM packet number so far, that number at the PVM's
        # latest stop, and at the stop before the latest release point (what it covers:
        # nothing yet), with that checkpoint's number (for the text)
        mach = sim.eps["primary"].machine
        self._pvm_seq = self.primary.last_packet_seq()
        self._stop_seq = self._pvm_seq
        self._covered_seq, self._covered_n = -1, None
        self._wrap()
        self._wrap_release_point(mach, sim.dialect.release_after)
        self._wrap_take_over("primary", self.primary)
        self._wrap_take_over("secondary", self.secondary)

    # -- installing ---------------------------------------------------------------
    _WRAPPED = {"secondary": ("cache_pages", "flush_cache", "discard_cache", "start",
                              "load_initial", "take_over", "stop"),
                "primary": ("_emit", "svm_packet", "release_output", "take_over", "start",
                            "stop")}

    def unwrap(self) -> None:
        """Take the watchers off (a re-protect builds a new pair and a new watch): the
        class's own methods show through again."""
        for role, guest in (("secondary", self.secondary), ("primary", self.primary)):
            for name in self._WRAPPED[role]:
                guest.__dict__.pop(name, None)
        self.primary.client_log.__dict__.pop("record", None)
        if self.secondary.cache is not None:
            self.secondary.cache.__dict__.pop("discard", None)

    def _wrap(self) -> None:
        sec, pri = self.secondary, self.primary
        cache_pages, flush, discard, start = (sec.cache_pages, sec.flush_cache,
                                              sec.discard_cache, sec.start)

        def watched_cache_pages(records):
            for name, idx in _page_indices(records).items():
                self.sent.setdefault(name, []).append(idx)
            return cache_pages(records)

        def watched_flush():
            self._check_whole_before_flush()
            expected = self._expected_flush()
            copied = flush()
            self._check_flush(expected, copied)
            self.sent.clear()
            return copied

        def watched_discard():
            try:
                return discard()        # (checked against the pages it received)
            finally:
                self.sent.clear()

        def watched_start():
            self._before_svm_runs()
            self._svm_stop = None
            return start()

        sec_stop, sec_mach = sec.stop, self.sim.eps["secondary"].machine

        def watched_sec_stop():
            if sec.running and sec_mach.in_flight and not sec.failed_over:
                self._svm_stop = (sec_mach.in_flight, _held_by(sec))
            return sec_stop()
        if self.sim.cfg.mode == "hybrid":      # (periodic: the SVM never runs in COLO)
            sec.stop = watched_sec_stop

        load_initial = sec.load_initial

        def watched_load_initial(summary):
            out = load_initial(summary)
            self.inv.check_initial()
            return out

        cache = sec.cache
        if cache is not None:        # also the discard inside the secondary's take_over
            cache_discard = cache.discard

            def watched_cache_discard():
                before = self._svm_pages_raw()
                out = cache_discard()
                self._check_svm_kept(before)
                return out
            cache.discard = watched_cache_discard

        sec.cache_pages, sec.flush_cache = watched_cache_pages, watched_flush
        sec.load_initial = watched_load_initial
        sec.discard_cache, sec.start = watched_discard, watched_start

        emit = pri._emit

        def watched_emit(pkt):
            self.pvm_packets.add(pkt.key)
            self._pvm_seq = pkt.seq
            out = emit(pkt)
            self._check_mismatch_notified(pkt.conn)
            return out
        pri._emit = watched_emit

        svm_packet, release, log = pri.svm_packet, pri.release_output, pri.client_log
        record = log.record

        def watched_svm_packet(pkt):
            if pri.compare is not None and pri.compare.active and not pri.failed_over:
                self.svm_packets[(pkt.conn, pkt.payload)] += 1
            out = svm_packet(pkt)
            self._check_mismatch_notified(pkt.conn)
            return out

        def watched_release():
            out = release()
            self.svm_packets.clear()       # a checkpoint drops every queued SVM packet
            return out

        def watched_record(packets, now_ms, via):
            if via == "compare-match":
                self._check_matches(packets)
            elif packets and "primary" not in self._took_over_from and not pri.failed_over:
                # the output buffer's release, or any other way PVM output leaves while
                # COLO runs (a timeout, an interval flush): only what a checkpoint covers
                self._check_covered(packets, via)
            return record(packets, now_ms, via)

        pri.svm_packet, pri.release_output, log.record = (watched_svm_packet, watched_release,
                                                          watched_record)
        pri_start = pri.start

        def watched_pri_start():
            self._check_pvm_resume()
            return pri_start()
        pri.start = watched_pri_start
        pri_stop = pri.stop

        def watched_pri_stop():
            self._stop_seq = self._pvm_seq     # what a checkpoint taken now holds
            return pri_stop()
        pri.stop = watched_pri_stop

    # -- flush set ------------------------------------------------------------------
    def _expected_flush(self) -> dict[str, np.ndarray]:
        cache = self.secondary.cache
        out = {}
        for name, blk in self.secondary.ram.blocks.items():
            parts = list(self.sent.get(name, ()))
            if cache is not None and cache.include_svm_dirty and blk.dirty.count:
                parts.append(blk.dirty.index_array())
            if parts:
                out[name] = unique_indices(np.concatenate(parts))
        return out

    def _check_whole_before_flush(self) -> None:
        """The RAM cache is flushed only once the whole checkpoint is in (the
        secondary sent vmstate-received and is loading it): the flush itself, not its
        ``flush-cache`` event (which a flush moved elsewhere need not emit)."""
        mach = self.sim.eps["secondary"].machine
        n = mach.in_flight
        # (the machine's own flag: the vmstate-received event reaches the checks only
        # after the input that also flushes)
        if n and not getattr(mach, "vmstate_loading", True):
            self.inv.fail("whole_checkpoint", f"checkpoint {n}: the secondary flushed its "
                          "RAM cache before the whole checkpoint arrived (no vmstate-received "
                          "for it yet)")

    def _check_flush(self, expected: dict[str, np.ndarray], copied: int) -> None:
        cache = self.secondary.cache
        want = sum(len(v) for v in expected.values())
        n = self.sim.eps["secondary"].in_flight
        for name, idx in expected.items():
            ram_h = self.secondary.ram.blocks[name].hashes()[idx]
            cache_h = cache.cache.blocks[name].hashes()[idx]
            bad = idx[ram_h != cache_h]
            if len(bad):
                self.inv.fail("flush_set", f"checkpoint {n}: after the flush {len(bad)} of the "
                              f"{want} pages PVM-sent ∪ SVM-dirtied still differ from the "
                              f"RAM cache ({name} page {int(bad[0]):#x} first): the flush "
                              "missed them")
                return
        if copied != want:
            self.inv.fail("flush_set", f"checkpoint {n}: the flush copied {copied} pages, "
                          f"but PVM-sent ∪ SVM-dirtied has {want}"
                          + (" (the whole cache?)" if copied > want else ""))

    # -- output covered -------------------------------------------------------------------
    def _wrap_release_point(self, mach, point: str) -> None:
        """As the primary's machine takes the release-point message (before its handler
        runs: a release in the handler comes after the message), the checkpoint in
        flight is safe at the secondary: what the PVM made up to its latest stop (the
        one for that checkpoint) may leave.  Numbering is monotonic_checkpoints'
        business: the stop, not the checkpoint id, says what is covered.  Not undone
        by `unwrap`: a re-protect replaces the machine itself."""
        dispatch = mach._dispatch

        def watched_dispatch(kind, item=None):
            if kind == point and mach.accepts(kind):
                self._covered_seq, self._covered_n = self._stop_seq, mach.in_flight
            return dispatch(kind, item)
        mach._dispatch = watched_dispatch

    def _check_covered(self, packets, via: str) -> None:
        late = [p for p in packets if p.side == "primary" and p.seq > self._covered_seq]
        if not late:
            return
        p = late[0]
        who = "the output buffer" if via in _HELD else f"{via} (not a checkpoint's release)"
        point = self.sim.dialect.release_after
        if self._covered_n is None:
            why = (f"before any checkpoint's {point} came: no checkpoint the secondary "
                   "holds covers it")
        else:
            why = (f"after the PVM stopped for checkpoint {self._covered_n}, the last one "
                   f"whose {point} came: no checkpoint the secondary holds covers it")
        self.inv.fail("output_covered", f"{who} released {len(late)} PVM "
                      f"packet(s) (first: {p.seq}, the answer to request {p.req_id}, made "
                      f"at {p.created_ms} ms) made {why}")

    # -- the PVM stays stopped ------------------------------------------------------------
    def _check_pvm_resume(self) -> None:
        """The PVM resumes only once its checkpoint is committed (vmstate-loaded), or as
        the survivor of a failover: running earlier, it changes state the checkpoint in
        flight no longer carries, which the SVM then never gets."""
        mach = self.sim.eps["primary"].machine
        if mach.in_flight and not self.primary.failed_over and mach.state not in _ENDED:
            self.inv.fail("pvm_stopped", f"checkpoint {mach.in_flight}: the PVM resumed in "
                          f"state {mach.state}, before vmstate-loaded committed it")

    # -- discard keeps SVM RAM ---------------------------------------------------------
    def _svm_pages_raw(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{block: (pages received this checkpoint, their SVM RAM hashes read raw)}."""
        out = {}
        for name, parts in self.sent.items():
            blk = self.secondary.ram.blocks.get(name)
            if blk is None or not parts:
                continue
            idx = unique_indices(np.concatenate(parts))
            out[name] = (idx, blk.read_hashes(idx))
        return out

    def _check_svm_kept(self, before: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        n = self.sim.eps["secondary"].in_flight
        for name, (idx, hashes) in before.items():
            bad = idx[self.secondary.ram.blocks[name].read_hashes(idx) != hashes]
            if len(bad):
                self.inv.fail("discard_keeps_svm", f"checkpoint {n}: discarding the partly "
                              f"received checkpoint wrote {len(bad)} page(s) of SVM RAM "
                              f"({name} page {int(bad[0]):#x} first): only the RAM cache "
                              "may change")
                return

    # -- take-over keeps the view -------------------------------------------------------
    def _wrap_take_over(self, role: str, guest) -> None:
        """What `guest` sees is noted as it starts to take over, and compared at the
        `start()` that ends the take-over (before the VM runs: what it does then is its
        own business)."""
        take_over, start = guest.take_over, guest.start

        def watched_take_over():
            if role == "secondary" and self._svm_stop is not None:
                self._check_svm_kept_since_stop()
            self._took_over_from[role] = (guest.disk.view(), guest.ram.digest(raw=True),
                                          guest.devices.digest())
            try:
                return take_over()
            finally:
                self._took_over_from.pop(role, None)

        def watched_start():
            seen = self._took_over_from.pop(role, None)
            if seen is not None:
                self._check_view_kept(role, guest, seen)
                self._check_history_held(role, guest)
            return start()
        guest.take_over, guest.start = watched_take_over, watched_start

    def _check_view_kept(self, role: str, guest, seen: tuple) -> None:
        disk, ram, devices = seen
        now = guest.disk.view()
        changed = sorted(s for s in disk.keys() | now.keys() if disk.get(s) != now.get(s))
        what = []
        if changed:
            what.append(f"{len(changed)} disk sector(s) (sector {changed[0]} first)")
        if guest.ram.digest(raw=True) != ram:
            what.append("its RAM")
        if guest.devices.digest() != devices:
            what.append("its devices")
        if what:
            self.inv.fail("takeover_keeps_view", f"the {role} took over and what it sees "
                          f"changed under it: {', '.join(what)}")

    # -- client history at the take-over ---------------------------------------------
    def _check_history_held(self, role: str, guest) -> None:
        """The survivor, as it starts to run alone, holds every request whose answer
        the client saw: what it takes over with accounts for all the output released.
        (At the end of the run it is too late to tell: the survivor has by then taken
        in the mirrored requests queued for it and answered them again.)  A peer that
        took over too, or an operator's failover while the peer lived, is a split
        brain: one_active_vm's business."""
        peer = self.secondary if role == "primary" else self.primary
        if peer.failed_over or self.sim.premise_broken:
            return
        rel = guest.first_unheld_answer()
        if rel is not None:
            pkt = rel.packet
            self.inv.fail("client_history", f"the {role} takes over holding requests up "
                          f"to {guest.devices.last_rx_id}, but the client already saw the "
                          f"answer to request {pkt.req_id} (from the {pkt.side}, via "
                          f"{rel.via}, at {rel.t_ms} ms): output released that the "
                          "survivor's state does not account for")

    # -- before the SVM runs --------------------------------------------------------
    def _before_svm_runs(self) -> None:
        sim, ep = self.sim, self.sim.eps["secondary"]
        if self.secondary.failed_over:
            if not self._took_over:       # a relaunch commits and takes over at once
                self.inv.check_consistency(ep.checkpoint)
            if sim.cfg.mode == "periodic" and not self._took_over:
                self.inv.check_survivor(ep.checkpoint)
            self._took_over = True            # later start()s find it running already
        elif ep.state == "LOADING" and ep.in_flight:
            self.inv.check_consistency(ep.in_flight)

    def _check_svm_kept_since_stop(self) -> None:
        """Hybrid: the SVM stopped for checkpoint n and takes over without having loaded
        it (a relaunch loads it, and resumes the SVM, first): as the take-over begins
        it holds what it stopped with -- checkpoint n-1 and its own run since."""
        n, before = self._svm_stop
        committed = self.sim.eps["secondary"].checkpoint
        if committed >= n:
            return
        now = _held_by(self.secondary)
        bad = [k for k, v in before.items() if now[k] != v]
        if bad:
            self.inv.fail("whole_survivor", f"the secondary takes over while stopped for "
                          f"checkpoint {n}, which it never loaded, but its "
                          f"{', '.join(bad)} changed since it stopped: it no longer holds "
                          f"checkpoint {committed} and its own run")

    # -- compare honesty -------------------------------------------------------------
    def _check_matches(self, packets) -> None:
        for pkt in packets:
            key = (pkt.conn, pkt.payload)
            if self.svm_packets[key] > 0:
                self.svm_packets[key] -= 1
                continue
            self.inv.fail("compare_honesty", f"colo-compare released PVM packet {pkt.seq} "
                          f"(answer to request {pkt.req_id}) as a match, but no SVM packet "
                          "with the same bytes on that connection was waiting")
            return

    def _check_mismatch_notified(self, conn_id: int) -> None:
        """A PVM packet at the head of its queue with SVM packets waiting and none equal
        to it is a mismatch: colo-compare must have asked for a checkpoint."""
        compare = self.primary.compare
        if compare is None or not compare.active or compare.checkpoint_needed:
            return
        conn = compare.conns.get(conn_id)
        if conn is None or not conn.primary or not conn.secondary:
            return
        head = conn.primary[0]
        if all(s.payload != head.payload for s in conn.secondary):
            self.inv.fail("compare_honesty", f"colo-compare holds PVM packet {head.seq} "
                          f"(request {head.req_id}) against {len(conn.secondary)} different "
                          "SVM packet(s) without asking for a checkpoint")

    # -- output not lost ----------------------------------------------------------------
    def check_primary_output(self) -> None:
        """A primary that took over (it is the survivor) sent every packet it produced:
        the held ones when buffering stopped, the later ones directly (colo-compare's
        "queue size too big" drops excepted, as QEMU drops them)."""
        pri = self.primary
        if not pri.failed_over or not self.sim.alive["primary"]:
            return
        released = {r.packet.key for r in pri.client_log.released}
        dropped = {p.key for p in pri.compare.dropped} if pri.compare is not None else set()
        lost = self.pvm_packets - released - dropped
        if lost:
            first = min(lost)
            self.inv.fail("client_history", f"the surviving primary never sent {len(lost)} "
                          f"packet(s) it produced (first: {first}): output lost at failover")

    # -- dirty log ------------------------------------------------------------------
    def check_pvm_stopped(self, n: int) -> None:
        left = self.primary.ram.dirty_count()
        if left:
            self.inv.fail("dirty_log", f"checkpoint {n}: the PVM stopped with {left} page(s) "
                          "still in its dirty log: guest writes after the dirty sync "
                          "escaped the checkpoint")
