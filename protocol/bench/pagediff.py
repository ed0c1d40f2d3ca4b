"""Benchmark of the page-diff core (`colo bench pagediff`).

Every figure is the median of R interleaved rounds (baseline and twin timed back
to back in each round) and is reported with its baseline and a `ratio`:

* changed_pages vs a whole-buffer `==` of two *equal* buffers of the same size
  (memcmp bandwidth; `==` of the changed buffers would stop at the first change);
* zero_pages vs numpy ``~a.reshape(-1, 4096).any(1)``;
* scatter_pages vs numpy fancy-index assignment ``ram2d[idx] = pages2d`` on the
  same RAM buffer;
  for those three, ratio = baseline time / twin time (> 1: the twin is faster);
* XBZRLE encode (limit 4096, as QEMU migrates) and decode throughput in GB/s of
  4 KiB pages, one Python call per page, vs QEMU's own C figures quoted for this
  kind of machine; ratio = twin GB/s / QEMU GB/s.  Decode twice: into a new
  page (`xbzrle_decode`) and in place (`xbzrle_decode_into`, QEMU's way).  Twice: streaming N distinct
  pages (every call reads 8 KiB from DRAM: memory-bound on this machine), and
  cache-hot, cycling through 32 page pairs (256 KiB, in L2) — QEMU's quoted
  12 GB/s for clustered changes reads 24 GB/s of pages, which only a cache gives,
  so the cache-hot rows are the like-for-like comparison.

The pure-Python twin runs on a smaller buffer (--py-size-mib, default 64) and
fewer XBZRLE pages, with its baselines measured at that same size.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable

from protocol.argtypes import int_in
from protocol.core.grammar import SEED_MAX

PAGE = 4096
MIB = 1 << 20
CHANGED_PCTS = (0, 1, 10, 100)
ZERO_PCTS = (0, 50, 100)
SCATTER_PCTS = (1, 10, 50)
# QEMU migration/xbzrle.c, GB/s on this machine kind (given; not measured here).
QEMU_ENCODE = {"1%": 3.65, "10%": 0.554, "50%": 0.190, "10% clustered": 12.0}
QEMU_DECODE = {"1%": 8.7, "10%": 2.15, "50%": 0.59}
HOT_PAGES = 32           # the cache-hot XBZRLE working set: 32 pairs of pages, 256 KiB
GOALS = {"changed_pages": 0.95, "zero_pages": 1.5, "scatter_pages": 1.0}


def _each(f, pairs) -> None:
    for e, o, *_ in pairs:
        f(e, o)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _figure(kind: str, ours: list[float], base: list[float], unit: str, goal=None) -> dict:
    value, baseline = statistics.median(ours), statistics.median(base)
    ratio = baseline / value if unit == "s" else value / baseline
    out = {"kind": kind, "value": value, "baseline": baseline, "ratio": ratio, "unit": unit}
    if goal is not None:
        out["goal"] = goal
        out["meets_goal"] = ratio >= goal
    return out


def bench_buffers(mod, np, size: int, rounds: int, rng, tag: str) -> dict[str, dict]:
    """changed_pages, zero_pages and scatter_pages of twin `mod` on `size` bytes."""
    figs: dict[str, dict] = {}
    npages = size // PAGE
    old = rng.bytes(size)
    new = bytearray(old)
    view = np.frombuffer(new, dtype=np.uint8)

    # changed_pages: one flipped byte at a random offset in each changed page
    times = {p: ([], []) for p in CHANGED_PCTS}
    for _ in range(rounds):
        for pct in CHANGED_PCTS:
            k = npages * pct // 100
            pos = rng.choice(npages, k, replace=False) * PAGE + rng.integers(0, PAGE, k)
            base = _timed(lambda: old == new)       # equal here: a full memcmp
            view[pos] ^= 0x5A
            got: list[int] = []
            times[pct][0].append(_timed(lambda got=got: got.extend(mod.changed_pages(old, new))))
            times[pct][1].append(base)
            assert len(got) == k, (len(got), k)
            view[pos] ^= 0x5A
    for pct, (ours, base) in times.items():
        figs[f"{tag}.changed_pages.{pct}%"] = _figure(
            "changed_pages", ours, base, "s", GOALS["changed_pages"])

    # zero_pages: pct % of the pages are zero, the rest random
    ztimes = {p: ([], []) for p in ZERO_PCTS}
    pages2d = view.reshape(-1, PAGE)
    for pct in ZERO_PCTS:
        pages2d[:] = np.frombuffer(old, dtype=np.uint8).reshape(-1, PAGE)
        pages2d[:, 0] |= 1                            # no page is zero by chance
        k = npages * pct // 100
        pages2d[rng.choice(npages, k, replace=False)] = 0
        for _ in range(rounds):
            res: list = []
            ztimes[pct][1].append(_timed(lambda res=res: res.append(~pages2d.any(1))))
            ztimes[pct][0].append(_timed(lambda res=res: res.append(mod.zero_pages(new))))
            assert len(res[1]) == k == int(res[0].sum())
    for pct, (ours, base) in ztimes.items():
        figs[f"{tag}.zero_pages.{pct}%zero"] = _figure(
            "zero_pages", ours, base, "s", GOALS["zero_pages"])

    # scatter_pages: pct % of the pages, in random order, into the same RAM buffer
    stimes = {p: ([], []) for p in SCATTER_PCTS}
    ram2d = view.reshape(-1, PAGE)
    for pct in SCATTER_PCTS:
        k = npages * pct // 100
        idx = rng.choice(npages, k, replace=False).astype(np.int64)
        src = rng.integers(0, 256, (k, PAGE), dtype=np.uint8)
        for _ in range(rounds):
            stimes[pct][1].append(_timed(lambda idx=idx, src=src: ram2d.__setitem__(idx, src)))
            stimes[pct][0].append(_timed(lambda idx=idx, src=src: mod.scatter_pages(new, idx, src)))
        assert bytes(ram2d[idx[-1]]) == bytes(src[-1])
        del src
    for pct, (ours, base) in stimes.items():
        figs[f"{tag}.scatter_pages.{pct}%"] = _figure(
            "scatter_pages", ours, base, "s", GOALS["scatter_pages"])

    return figs


def _xbzrle_pages(np, rng, n: int, scenario: str) -> tuple[list[bytes], list[bytes]]:
    old = rng.integers(0, 256, (n, PAGE), dtype=np.uint8)
    delta = rng.integers(1, 256, (n, PAGE), dtype=np.uint8)     # nonzero: a real change
    if scenario.endswith("clustered"):
        run = PAGE * int(scenario.split("%")[0]) // 100
        starts = rng.integers(0, PAGE - run + 1, n)
        mask = np.zeros((n, PAGE), dtype=bool)
        cols = np.arange(PAGE)
        mask[(cols >= starts[:, None]) & (cols < starts[:, None] + run)] = True
    else:
        mask = rng.random((n, PAGE)) < int(scenario.rstrip("%")) / 100
    new = np.where(mask, old ^ delta, old)
    return [bytes(p) for p in old], [bytes(p) for p in new]


def bench_xbzrle(mod, np, npages: int, rounds: int, rng, tag: str) -> dict[str, dict]:
    figs: dict[str, dict] = {}
    for scenario, qemu_enc in QEMU_ENCODE.items():
        old, new = _xbzrle_pages(np, rng, npages, scenario)
        enc = [mod.xbzrle_encode(o, n, 3 * PAGE + 4) for o, n in zip(old, new, strict=True)]
        for o, n, e in zip(old[:64], new[:64], enc[:64], strict=True):
            assert mod.xbzrle_decode(e, o) == n
        encode, decode = mod.xbzrle_encode, mod.xbzrle_decode
        pairs, triples = list(zip(old, new, strict=True)), list(zip(enc, old, strict=True))
        hot = max(1, npages // HOT_PAGES)
        sets = (("", pairs, triples),
                (" hot", pairs[:HOT_PAGES] * hot, triples[:HOT_PAGES] * hot))
        into = mod.xbzrle_decode_into
        for suffix, p_set, t_set in sets:
            enc_t, dec_t, into_t = [], [], []
            set_gb = len(p_set) * PAGE / 1e9
            # decode in place, as QEMU does: into a page that holds the old contents
            # (decoding the same delta again gives the same page, so rounds may repeat)
            pages = {id(o): bytearray(o) for _, o in t_set}
            i_set = [(e, pages[id(o)]) for e, o in t_set]
            for _ in range(rounds):
                enc_t.append(_timed(lambda f=encode, p=p_set: [f(o, n) for o, n in p]))
                # each decoded page is dropped at once: keeping 8192 fresh pages
                # alive would time the kernel's page faults instead
                dec_t.append(_timed(lambda f=decode, p=t_set: _each(f, p)))
                into_t.append(_timed(lambda f=into, p=i_set: _each(f, p)))
            figs[f"{tag}.xbzrle_encode.{scenario}{suffix}"] = _figure(
                "xbzrle_encode", [set_gb / t for t in enc_t], [qemu_enc] * rounds, "GB/s")
            if scenario in QEMU_DECODE:
                base = [QEMU_DECODE[scenario]] * rounds
                figs[f"{tag}.xbzrle_decode.{scenario}{suffix}"] = _figure(
                    "xbzrle_decode", [set_gb / t for t in dec_t], base, "GB/s")
                figs[f"{tag}.xbzrle_decode_into.{scenario}{suffix}"] = _figure(
                    "xbzrle_decode_into", [set_gb / t for t in into_t], base, "GB/s")
        none = sum(mod.xbzrle_encode(o, n) is None for o, n in pairs[:512])
        figs[f"{tag}.xbzrle_encode.{scenario}"]["overflow_share"] = none / min(npages, 512)
    return figs


def _table(result: dict) -> str:
    lines = [f"page-diff benchmark: C twin {result['size_mib']} MiB, py twin "
             f"{result['py_size_mib']} MiB, {result['rounds']} rounds (medians), "
             f"pagediff.IMPLEMENTATION={result['implementation']}"]
    if result.get("load_error"):
        lines.append(f"LOAD_ERROR: {result['load_error']}")
    lines.append(f"{'figure':<34} {'twin':>12} {'baseline':>12} {'ratio':>7}  goal")
    for name, f in result["figures"].items():
        if f["unit"] == "s":
            val, base = f"{f['value'] * 1e3:9.2f} ms", f"{f['baseline'] * 1e3:9.2f} ms"
        else:
            val, base = f"{f['value']:7.3f} GB/s", f"{f['baseline']:7.3f} GB/s"
        goal = ""
        if "goal" in f:
            goal = f">= {f['goal']}  {'ok' if f['meets_goal'] else 'MISSED'}"
        elif "overflow_share" in f:
            goal = f"(None for {f['overflow_share']:.0%} of pages)"
        lines.append(f"{name:<34} {val:>12} {base:>12} {f['ratio']:6.2f}x  {goal}")
    lines.append("baselines: changed_pages = `a == b` of two equal buffers; zero_pages = numpy "
                 "~a.reshape(-1,4096).any(1); scatter_pages = numpy ram2d[idx] = pages2d; "
                 "xbzrle = QEMU C figures quoted for this machine kind (not run here); "
                 "'hot' rows cycle through 32 page pairs (in cache), as QEMU's figures must.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="colo bench pagediff", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size-mib", type=int_in(1, 65536), default=1024, help="C twin buffer size")
    parser.add_argument("--py-size-mib", type=int_in(1, 65536), default=64, help="pure-Python twin size")
    parser.add_argument("--rounds", type=int_in(1, 1000), default=5, help="interleaved rounds (median)")
    parser.add_argument("--xbzrle-pages", type=int_in(1, 1 << 24), default=8192, help="pages per XBZRLE case")
    parser.add_argument("--seed", type=int_in(0, SEED_MAX), default=1)
    parser.add_argument("--no-py", action="store_true", help="skip the pure-Python twin")
    args = parser.parse_args(argv)
    try:
        import numpy as np
    except ImportError:
        print("colo bench pagediff needs numpy (pip install 'colo-testbed[dev]')", file=sys.stderr)
        return 2
    from protocol.guest import _pagediff_py, pagediff

    rng = np.random.default_rng(args.seed)
    twins = [("py", _pagediff_py, args.py_size_mib, max(args.xbzrle_pages // 32, 64))]
    if pagediff.IMPLEMENTATION == "c":
        from protocol.guest import _pagediff_c
        twins.insert(0, ("c", _pagediff_c, args.size_mib, args.xbzrle_pages))
    if args.no_py:
        twins = [t for t in twins if t[0] != "py"]
    result: dict = {"size_mib": args.size_mib, "py_size_mib": args.py_size_mib,
                    "rounds": args.rounds, "xbzrle_pages": {t[0]: t[3] for t in twins},
                    "implementation": pagediff.IMPLEMENTATION,
                    "load_error": pagediff.LOAD_ERROR, "figures": {}}
    gc.disable()
    try:
        for tag, mod, size_mib, xpages in twins:
            result["figures"].update(
                bench_buffers(mod, np, size_mib * MIB, args.rounds, rng, tag))
            gc.collect()
            result["figures"].update(bench_xbzrle(mod, np, xpages, args.rounds, rng, tag))
            gc.collect()
    finally:
        gc.enable()
    print(json.dumps(result, indent=1) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
