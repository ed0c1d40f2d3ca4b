"""Per-stage timing of a simulated checkpoint (for `protocol.bench.checkpoint`).

`StageClock` wraps, for one simulation and only while it is installed, the
calls that make up a checkpoint's page path and sums their wall time:

* scan:    the primary's dirty scan (`collect_dirty_pages`; zero pages found in place)
* encode:  `encode_ram_part` (the pages copied from PVM RAM into the wire image,
           hashed in the same pass)
* receive: `RamPartReader.feed` (the secondary decodes the RAM part)
* cache:   the RAM cache's `receive` (wire image -> RAM cache, undo log)
* flush:   the RAM cache's `flush` (RAM cache -> SVM RAM, hashed)
* digest:  the consistency digests the invariants take (PVM at its stop, SVM after
           its commit)
* checks:  the simulator's watch around the secondary's `cache_pages` and
           `flush_cache` (`protocol.sim.guestwatch`: the pages handed to the cache
           noted, the flush set computed before the flush and checked against the
           page hashes after it): invariant 9's check, not the protocol's work

Each stage counts its own time only: a timed call made inside another (a digest
inside a watched call, the cache's `flush` inside the watched `flush_cache`) is
taken out of the outer one's sum, so the stages never count a moment twice.
"send" is the rest (`other` = the checkpoint's time minus these): the simulated
link hands the wire image over by reference (no socket, no copy), so what
remains is the simulator and the state machines.  Instance attributes and one
module attribute are patched; `uninstall` restores them.
"""
from __future__ import annotations

import time

STAGES = ("scan", "encode", "receive", "cache", "flush", "digest", "checks")


class StageClock:
    def __init__(self, sim) -> None:
        self.sim = sim
        self.totals = dict.fromkeys(STAGES, 0.0)
        self._undo: list = []
        #: time spent in timed calls nested in the one running, one entry per level
        self._inner: list[float] = []

    def reset(self) -> dict[str, float]:
        """The sums so far (seconds), then start again from zero."""
        out = dict(self.totals)
        self.totals = dict.fromkeys(STAGES, 0.0)
        return out

    def _timed(self, stage: str, fn):
        clock, inner = time.perf_counter, self._inner

        def timed(*args, **kwargs):
            inner.append(0.0)
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - t0
                nested = inner.pop()
                self.totals[stage] += spent - nested
                if inner:
                    inner[-1] += spent
        return timed

    def _patch(self, owner, name: str, stage: str) -> None:
        had = name in vars(owner)
        old = vars(owner).get(name)
        setattr(owner, name, self._timed(stage, getattr(owner, name)))
        self._undo.append((owner, name, had, old))

    def install(self) -> StageClock:
        from protocol.migration import stream, streamdecode
        pri, sec = self.sim.guests["primary"], self.sim.guests["secondary"]
        self._patch(pri, "collect_dirty_pages", "scan")
        self._patch(stream, "encode_ram_part", "encode")
        self._patch(streamdecode.RamPartReader, "feed", "receive")
        if sec.cache is not None:
            # the cache's own work; the watch the simulator wraps around it is "checks"
            self._patch(sec.cache, "receive", "cache")
            self._patch(sec.cache, "flush", "flush")
            self._patch(sec, "cache_pages", "checks")
            self._patch(sec, "flush_cache", "checks")
        else:       # (no cache yet: the secondary's calls whole)
            self._patch(sec, "cache_pages", "cache")
            self._patch(sec, "flush_cache", "flush")
        self._patch(pri, "digest", "digest")
        self._patch(sec, "digest", "digest")
        return self

    def uninstall(self) -> None:
        for owner, name, had, old in reversed(self._undo):
            if had:
                setattr(owner, name, old)
            else:
                delattr(owner, name)
        self._undo.clear()
