"""Benchmark of the Textual app (a benchmark, not a timed test).

1. Start-up, headless: wall time from process start (the parent's clock just
   before it spawns the interpreter) to the first painted screen (the first
   compositor update handed to the display), for `colo tui` as a user starts it
   (the `colo` entry point, default options, config file and all) against a
   minimal Textual app (one Static) measured the same way: a fresh process per
   run, both run headless by the same patch of `App.run` (made when textual.app
   is first imported, so `colo` imports in its own order, as at a user's
   start), medians of N runs, interleaved.  Target: ratio <= 1.2.  Both load
   their modules from cached bytecode, as users' do (pip byte-compiles Textual
   when it installs it; Python writes colo's own .pyc at its first start): the
   children write and read it in a bytecode cache of the benchmark's own
   (PYTHONPYCACHEPREFIX, a temporary directory, filled by the warm-up runs),
   whatever PYTHONDONTWRITEBYTECODE says.  Without that, an environment that
   sets it had colo compile its ~100 KB of source at every start while Textual
   loaded its installed .pyc (about 10 ms of the difference), and the figure
   depended on whether a __pycache__ happened to exist in the source tree.
   Also reported: construct-to-first-frame inside one warm process (imports
   paid already), the old in-process figure.
2. Cost at full speed: simulation steps/s of the Controller alone vs the
   Controller driven by the app running headless at full speed.  Target: the
   app keeps >= 80 % of the bare rate (updates coalesce: one repaint per tick).

    python -m colo_tui.cli.bench_tui [--json] [--runs N] [--seconds S]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

from colo_tui.session.argtypes import int_in, number_in

#: a session that outlasts the full-speed window (beyond the interactive bound: the
#: benchmark's controllers are built with max_checkpoints=None)
BIG = dict(checkpoints=1_000_000, checkpoint_delay_ms=10)
#: --runs: each run starts two processes (colo tui and a minimal app), then paints both
#: apps in this process
MAX_RUNS = 100
#: --seconds: the full-speed window, measured three times bare and three with the app
SECONDS = (0.1, 600.0)


def _config():
    from protocol.sim.config import SimConfig
    return SimConfig(**BIG)


#: run in a fresh interpreter: make `App.run` headless, write the monotonic time of
#: the first frame to fd 1 (below Textual's capture of sys.stdout), exit at once.
#: `App.run` is patched when textual.app is first imported, by whoever imports it, so
#: `colo` starts in its own order, as a user's does (its entry point and options
#: first, then Textual from the app's module), not after Textual was loaded for it
_CHILD = r"""
import os, sys, time
from importlib.machinery import PathFinder
def patch(App):
    _run = App.run
    def run(self, *args, **kwargs):
        display, seen = self._display, []
        def hook(screen, renderable):
            if renderable is not None and not self._batch_count and not seen:
                seen.append(time.monotonic())
                os.write(1, b"PAINT %r\n" % seen[0])
            display(screen, renderable)
        self._display = hook
        async def pilot(p):
            for _ in range(2000):
                if seen:
                    break
                await p.pause(0.001)
            self.exit()
        kwargs.update(headless=True, size=(80, 24), auto_pilot=pilot)
        return _run(self, *args, **kwargs)
    App.run = run
class PatchOnImport:
    def find_spec(self, name, path, target=None):
        if name != "textual.app":
            return None
        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module
        def exec_and_patch(module):
            exec_module(module)
            patch(module.App)
        spec.loader.exec_module = exec_and_patch
        return spec
sys.meta_path.insert(0, PatchOnImport())
if sys.argv[1] == "minimal":
    from textual.app import App
    from textual.widgets import Static
    class Minimal(App):
        def compose(self):
            yield Static("hello")
    Minimal().run()
else:
    import colo_tui.cli.tui
    colo_tui.cli.tui.has_terminal = lambda: True      # headless: no terminal needed
    from colo_tui.cli.main import main
    sys.exit(main(["tui"]))
"""


def _child_env(bytecode_cache: str | None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    if bytecode_cache is not None:       # cached bytecode for both apps (see the top)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = bytecode_cache
    return env


def _start_to_paint(which: str, timeout: float = 60.0,
                    bytecode_cache: str | None = None) -> float:
    """Seconds from just before spawning `python -c _CHILD which` to its first frame
    (with `bytecode_cache`: the child writes and reads its .pyc there)."""
    env = _child_env(bytecode_cache)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, which], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    try:
        line = b""
        deadline = t0 + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                raise RuntimeError(f"bench tui: the {which} app painted nothing in {timeout} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                err = proc.stderr.read().decode(errors="replace")[-800:]
                raise RuntimeError(f"bench tui: the {which} app ended before painting: {err}")
            line += chunk
        painted = float(line.split(b"PAINT ", 1)[1].split()[0])
        proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return painted - t0


def startup(runs: int) -> dict:
    """Process start to first painted screen, `colo tui` vs a minimal Textual app,
    both from cached bytecode."""
    with tempfile.TemporaryDirectory(prefix="colo-bench-pyc-") as cache:
        _start_to_paint("minimal", bytecode_cache=cache)   # warm the page cache for
        _start_to_paint("colo", bytecode_cache=cache)      # both, and fill the cache
        base, colo = [], []
        for _ in range(runs):                      # interleaved: noise hits both
            base.append(_start_to_paint("minimal", bytecode_cache=cache))
            colo.append(_start_to_paint("colo", bytecode_cache=cache))
    b, c = statistics.median(base), statistics.median(colo)
    return {"minimal_ms": round(b * 1000, 2), "colo_ms": round(c * 1000, 2),
            "ratio": round(c / b, 3), "target": 1.2, "runs": runs,
            "bytecode": "cached",
            "minimal_all_ms": [round(x * 1000, 1) for x in base],
            "colo_all_ms": [round(x * 1000, 1) for x in colo]}


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
    return ColoApp(Controller(_config(), max_checkpoints=None))


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
    c = Controller(_config(), max_checkpoints=None)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c.step(50)
    return c.steps / (time.perf_counter() - t0)


async def _app_rate(seconds: float) -> float:
    from colo_tui.session.control import Controller
    from colo_tui.tui.app import ColoApp
    from colo_tui.tui.bridge import SPEEDS
    app = ColoApp(Controller(_config(), max_checkpoints=None))
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
    ap = argparse.ArgumentParser(prog="colo bench tui")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    # (a median of no runs, or steps per second over no time, is no figure)
    ap.add_argument("--runs", type=int_in(1, MAX_RUNS), default=7,
                    help=f"start-up and first-paint runs (median; 1 … {MAX_RUNS}, default 7)")
    ap.add_argument("--seconds", type=number_in(*SECONDS), default=2.0,
                    help=f"full-speed window ({SECONDS[0]:g} … {SECONDS[1]:g} s, default 2)")
    args = ap.parse_args(argv)
    from protocol.drivers.memtune import tune_process
    tune_process()           # as `colo` does (python -m runs come here directly)
    out = {"startup": startup(args.runs), "first_paint": first_paint(args.runs),
           "full_speed": full_speed(args.seconds)}
    out["ok"] = (out["startup"]["ratio"] <= 1.2 and out["full_speed"]["kept"] >= 0.8)
    if args.json:
        print(json.dumps(out))
    else:
        fp, fs, su = out["first_paint"], out["full_speed"], out["startup"]
        print(f"start-up (process start to first painted screen): colo tui {su['colo_ms']} ms "
              f"vs minimal Textual app {su['minimal_ms']} ms -> ratio {su['ratio']} "
              "(target <= 1.2)")
        print(f"first paint in a warm process (construct to first frame): colo "
              f"{fp['colo_ms']} ms vs minimal {fp['minimal_ms']} ms -> ratio {fp['ratio']}")
        print(f"full speed: bare {fs['bare_steps_per_s']} steps/s, with the app "
              f"{fs['app_steps_per_s']} steps/s -> kept {fs['kept']:.0%} (target >= 80 %)")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
