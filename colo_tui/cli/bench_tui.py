"""Benchmark of the Textual app (a benchmark, not a timed test).

1. First paint, headless: time from constructing the app to its first
   frame (the first compositor update given to the display), COLO app vs a minimal Textual app, medians of N runs
   measured in the same process.  Target: ratio <= 1.2.
2. Cost at full speed: simulation steps/s of the Controller alone vs the
   Controller driven by the app running headless at full speed.  Target: the
   app keeps >= 80 % of the bare rate (updates coalesce: one repaint per tick).

    python -m colo_tui.cli.bench_tui [--json] [--runs N] [--seconds S]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from protocol.sim.config import SimConfig

BIG = dict(checkpoints=1_000_000, checkpoint_delay_ms=10)


def _config() -> SimConfig:
    return SimConfig(**BIG)


async def _first_paint(make_app) -> float:
    """Seconds from constructing the app to its first frame (the first compositor
    update handed to the display; headless, so nothing is written)."""
    t0 = time.perf_counter()
    app = make_app()
    first: list[float] = []
    display = app._display

    def hook(screen, renderable) -> None:
        if renderable is not None and not app._batch_count and not first:
            first.append(time.perf_counter())
        display(screen, renderable)

    app._display = hook

    async def pilot(p) -> None:
        for _ in range(200):
            if first:
                break
            await p.pause(0.001)
        await p.pause()              # let lazily mounted parts finish before leaving
        app.exit()

    await app.run_async(headless=True, size=(80, 24), auto_pilot=pilot)
    return first[0] - t0


def _minimal_app():
    from textual.app import App
    from textual.widgets import Static

    class Minimal(App):
        def compose(self):
            yield Static("hello")

    return Minimal()


def _colo_app():
    from colo_tui.session.control import Controller
    from colo_tui.tui.app import ColoApp
    return ColoApp(Controller(_config()))


def first_paint(runs: int) -> dict:
    asyncio.run(_first_paint(_minimal_app))          # warm imports for both
    asyncio.run(_first_paint(_colo_app))
    base, colo = [], []
    for _ in range(runs):
        base.append(asyncio.run(_first_paint(_minimal_app)))
        colo.append(asyncio.run(_first_paint(_colo_app)))
    b, c = statistics.median(base), statistics.median(colo)
    return {"minimal_ms": round(b * 1000, 2), "colo_ms": round(c * 1000, 2),
            "ratio": round(c / b, 3), "target": 1.2, "runs": runs}


def bare_rate(seconds: float) -> float:
    from colo_tui.session.control import Controller
    c = Controller(_config())
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c.step(50)
    return c.steps / (time.perf_counter() - t0)


async def _app_rate(seconds: float) -> float:
    from colo_tui.session.control import Controller
    from colo_tui.tui.app import ColoApp
    from colo_tui.tui.bridge import SPEEDS
    app = ColoApp(Controller(_config()))
    result = {}

    async def pilot(p) -> None:
        await p.pause()
        app.bridge.speed_index = SPEEDS.index(0)
        start_steps, t0 = app.controller.steps, time.perf_counter()
        app.bridge.toggle_run()
        await asyncio.sleep(seconds)
        result["rate"] = (app.controller.steps - start_steps) / (time.perf_counter() - t0)
        app.exit()

    await app.run_async(headless=True, size=(120, 40), auto_pilot=pilot)
    return result["rate"]


def full_speed(seconds: float, rounds: int = 3) -> dict:
    bares, apps = [], []
    for _ in range(rounds):                 # interleaved: a noisy machine hits both
        bares.append(bare_rate(seconds))
        apps.append(asyncio.run(_app_rate(seconds)))
    bare, with_app = statistics.median(bares), statistics.median(apps)
    return {"bare_steps_per_s": round(bare), "app_steps_per_s": round(with_app),
            "kept": round(with_app / bare, 3), "target": 0.8}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m colo_tui.cli.bench_tui")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--runs", type=int, default=7, help="first-paint runs (median)")
    ap.add_argument("--seconds", type=float, default=2.0, help="full-speed window")
    args = ap.parse_args(argv)
    from protocol.drivers.memtune import tune_process
    tune_process()           # as `colo` does (python -m runs come here directly)
    out = {"first_paint": first_paint(args.runs), "full_speed": full_speed(args.seconds)}
    out["ok"] = (out["first_paint"]["ratio"] <= 1.2 and out["full_speed"]["kept"] >= 0.8)
    if args.json:
        print(json.dumps(out))
    else:
        fp, fs = out["first_paint"], out["full_speed"]
        print(f"first paint: colo {fp['colo_ms']} ms vs minimal {fp['minimal_ms']} ms "
              f"-> ratio {fp['ratio']} (target <= 1.2)")
        print(f"full speed: bare {fs['bare_steps_per_s']} steps/s, with the app "
              f"{fs['app_steps_per_s']} steps/s -> kept {fs['kept']:.0%} (target >= 80 %)")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
