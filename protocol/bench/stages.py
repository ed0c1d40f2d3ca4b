"""Per-stage timing of a simulated checkpoint (for `protocol.bench.checkpoint`).

`StageClock` wraps, for one simulation and only while it is installed, the
calls that make up a checkpoint's page path and sums their wall time:

* scan:    the primary's dirty scan (`collect_dirty_pages`; zero pages found in place)
* encode:  `encode_ram_part` (the pages copied from PVM RAM into the wire image,
           hashed in the same pass)
* receive: `RamPartReader.feed` (the secondary decodes the RAM part)
* cache:   the secondary's `cache_pages` (wire image -> RAM cache, undo log)
* flush:   the secondary's `flush_cache` (RAM cache -> SVM RAM, hashed)
* digest:  the consistency digests the invariants take (PVM at its stop, SVM after
           its commit)

"send" is the rest (`other` = the checkpoint's time minus these): the simulated
link hands the wire image over by reference (no socket, no copy), so what
remains is the simulator and the state machines.  Instance attributes and one
module attribute are patched; `uninstall` restores them.
"""
from __future__ import annotations

import time

STAGES = ("scan", "encode", "receive", "cache", "flush", "digest")


class StageClock:
    def __init__(self, sim) -> None:
        self.sim = sim
        self.totals = dict.fromkeys(STAGES, 0.0)
        self._undo: list = []

    def reset(self) -> dict[str, float]:
        """The sums so far (seconds), then start again from zero."""
        out = dict(self.totals)
        self.totals = dict.fromkeys(STAGES, 0.0)
        return out

    def _timed(self, stage: str, fn):
        clock, totals = time.perf_counter, self.totals

        def timed(*args, **kwargs):
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[stage] += clock() - t0
        del totals
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
