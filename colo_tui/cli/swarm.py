"""`colo explore --swarm N`: seeded worlds on local processes or a Dask cluster."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from colo_tui.session.argtypes import int_in, nonempty_path, nonneg_float, seed_int
from colo_tui.session.words import plural
from protocol.sim.cluster import CONNECT_TIMEOUT_S

#: local worker processes at most (each is a Python process with its own simulator)
MAX_WORKERS = 256
#: seeds in one swarm at most: about 11 h on one worker (~40 ms a seed), and every
#: seed's result (~3.5 KB) is kept for the report; --time-budget ends one sooner
MAX_SWARM = 1_000_000

MAX_SHRUNK = 3          # distinct failures shrunk per run (each costs up to ~150 runs)


def add_swarm_options(e) -> None:
    e.add_argument("--swarm", type=int_in(1, MAX_SWARM), metavar="N", default=None,
                   help=f"run N seeded worlds, 1 … {MAX_SWARM:,} (each seed draws config, "
                        "timing and faults)")
    # (default None: given without --swarm, they are refused rather than ignored;
    # cmd_explore fills in 1 and 1)
    e.add_argument("--seed", type=seed_int, default=None,
                   help="--swarm: the first seed, default 1 (seeds S … S+N-1; each is a "
                        "`colo run --seed`)")
    e.add_argument("--workers", type=int_in(1, MAX_WORKERS), default=None, metavar="K",
                   help=f"--swarm: local worker processes, 1 … {MAX_WORKERS}, default 1 "
                        "(same results for any K)")
    e.add_argument("--cluster", metavar="ADDRESS",
                   help="run on the dask.distributed scheduler at ADDRESS (tcp://host:8786); "
                        f"it must answer within {CONNECT_TIMEOUT_S:g} s")
    e.add_argument("--time-budget", type=nonneg_float, metavar="SEC", default=None,
                   help="stop handing out seeds after SEC seconds; the seeds running then "
                        "finish, so it ends about one seed's run later (under a second for "
                        "99%% of seeds, a few seconds for the slowest); shrinking the "
                        "failures found comes after it (--no-shrink)")
    e.add_argument("--no-shrink", action="store_true",
                   help="report failing seeds without shrinking them")
    e.add_argument("--repro-dir", type=nonempty_path, default=None, metavar="DIR",
                   help="where shrunk reproducers are written (default: the recordings "
                        "directory, $COLO_RECORDINGS_DIR or the user's data directory)")


def _progress(total: int):
    """A progress bar on stderr when it is a terminal (else nothing)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    bar = Progress("swarm", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("seeds", total=total)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
    return bar, update


def cmd_swarm(args) -> int:
    from protocol.errors import ColoError
    from protocol.sim import runner
    if args.matrix:
        print("colo explore: --swarm and --matrix are different explorations; "
              "give one of them", file=sys.stderr)
        return 2
    from protocol.core.grammar import SEED_MAX
    if args.seed + args.swarm - 1 > SEED_MAX:
        # each seed is one `colo run --seed`: a failure found past the last one
        # could not be replayed
        print(f"colo explore: --seed {args.seed} --swarm {args.swarm} runs seeds up to "
              f"{args.seed + args.swarm - 1}, past the last seed {SEED_MAX} (2^64 - 1): "
              f"start at {SEED_MAX - args.swarm + 1} at most", file=sys.stderr)
        return 2
    if args.time_budget is not None and args.time_budget <= 0:
        print("colo explore: --time-budget must be > 0 seconds", file=sys.stderr)
        return 2
    if args.repro_dir is None:
        from colo_tui.session.lifecycle import recordings_dir
        try:
            repro = recordings_dir()
        except OSError as exc:
            print(f"colo explore: the recordings directory: {exc.strerror}; "
                  "give --repro-dir DIR", file=sys.stderr)
            return 2
        args.repro_dir = str(repro)
    repro = Path(args.repro_dir)
    if not args.no_shrink and not repro.is_dir():
        why = "not a directory" if repro.exists() else "no such directory (create it first)"
        print(f"colo explore: --repro-dir {args.repro_dir}: {why}", file=sys.stderr)
        return 2
    from colo_tui.cli.core import _StopAtStep
    bar, update = _progress(args.swarm)
    seeds = range(args.seed, args.seed + args.swarm)
    # ctrl+c, SIGTERM, SIGHUP: no further seed starts (a local pool's chunks in flight
    # are dropped) and the report covers the seeds that completed; a second ctrl+c
    # does not wait for the seed running in this process
    with _StopAtStep() as stop:
        try:
            if bar is not None:
                bar.start()
            report = runner.run(seeds, workers=args.workers, cluster=args.cluster,
                                time_budget_s=args.time_budget, progress=update,
                                stop=lambda: stop.signum is not None)
        except ColoError as exc:
            print(f"colo explore: {exc}", file=sys.stderr)
            return 1
        finally:
            if bar is not None:
                bar.stop()
    report.pop("results")
    report["interrupted"] = stop.name or None
    if stop.signum is not None:
        report["shrunk"] = []
        print(f"colo explore: stopped by {stop.name}: {report['seeds']:,} of "
              f"{plural(args.swarm, 'seed')} ran" + ("" if args.no_shrink or not report["failures"]
                                             else "; the failures were not shrunk"),
              file=sys.stderr)
    else:
        report["shrunk"] = [] if args.no_shrink else _shrink_failures(report, repro)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(report)
    if stop.signum is not None:
        return 128 + stop.signum
    return 1 if report["violations"] or report["hangs"] or report["crashes"] else 0


def _shrink_failures(report: dict, repro: Path) -> list[dict]:
    from protocol.sim.config import SimConfig
    from protocol.sim.shrink import shrink, write_repro
    out, seen = [], set()
    for f in report["failures"]:
        if f["failure"] in seen or len(out) >= MAX_SHRUNK:
            continue
        seen.add(f["failure"])
        res = shrink(SimConfig.from_dict(f["config"]), f["failure"])
        path = repro / f"colo-swarm-seed{f['seed']}-{f['failure']}.colo.jsonl"
        try:
            written = write_repro(res["config"], str(path), f["failure"])
        except OSError as exc:
            written = {"recording": f"(not written: {exc.strerror})",
                       "command": "", "text": ""}
            from protocol.sim.shrink import run_command
            written["command"] = run_command(res["config"])
        out.append({"seed": f["seed"], "failure": f["failure"], "shrunk": res["shrunk"],
                    "tried": res["tried"], "faults": res["config"].faults, **written})
    return out


def _print_report(r: dict) -> None:
    rate = f"  {r['seeds_per_s']} seeds/s" if r.get("seeds_per_s") else ""
    print(f"seeds {r['seeds']}  checkpoints {r['checkpoints']}  violations {r['violations']}"
          f"  hangs {r['hangs']}  crashes {r['crashes']}  ({r['elapsed_s']} s, "
          f"workers {r['workers']}{rate})"
          + (f"  [stopped by {r['interrupted']}]" if r.get("interrupted")
             else "  [time budget spent]" if r["budget_stopped"] else ""))
    for outcome, n in r["outcomes"].items():
        print(f"  {outcome:20s} {n}")
    for name, n in r["violations_by_invariant"].items():
        print(f"  violated {name:20s} {n}")
    cov = r["coverage"]
    print(f"coverage: {len(cov['state_input'])} (state, input) pairs, "
          f"{len(cov['faults'])} (point, kind) faults hit")
    for f in r["failures"][:10]:
        print(f"  FAIL seed {f['seed']}: {f['failure']}: {f['text']}")
    for s in r["shrunk"]:
        print(f"shrunk seed {s['seed']} ({s['failure']}, {plural(s['tried'], 'run')}): "
              f"{s['recording']}\n  {s['command']}")
