"""The core subcommands: run, explore, decode, replay, bench, compare-modes."""
from __future__ import annotations

import json
import sys

from colo_tui.session.argtypes import (
    arbiter_ms,
    checkpoint_delay_ms,
    client_every_ms,
    fault_spec,
    fraction,
    int_in,
    link_bytes_per_ms,
    link_latency_ms,
    liveness_checkpoints,
    nonempty_path,
    nonneg_float,
    number_in,
    positive_checkpoint_delay_ms,
    positive_int,
    ram_mib,
    seed_int,
    workload_rate,
    workloads,
)
from colo_tui.session.words import plural
from protocol.core import dialects
from protocol.core.events import EventKind, ReprotectRefused
from protocol.errors import ColoError, DecodeError, OutputFileError, RecordingError


def add_parsers(sub) -> None:
    r = sub.add_parser("run", help="one headless simulated session")
    _session_options(r)
    r.add_argument("--checkpoints", type=positive_int, default=3, metavar="N")
    r.add_argument("--fault", action="append", default=[], metavar="SPEC", type=fault_spec,
                   help="KIND[=ARG]@POINT[#N], repeatable (see `colo faults`)")
    r.add_argument("--record", type=nonempty_path, metavar="FILE",
                   help="write the session as a recording")
    r.add_argument("--force", action="store_true",
                   help="overwrite an existing --record FILE (replaced when the run ends)")
    r.add_argument("--dump-wire", type=nonempty_path, metavar="DIR",
                   help="write each direction's raw bytes")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--events", action="store_true", help="print every event (text)")
    r.add_argument("--max-steps", type=int_in(1, 20_000_000), default=None, metavar="N",
                   help="stop after N simulation steps (default 2,000,000, about 400,000 "
                        "checkpoints); raise it on purpose for longer runs")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("explore", help="the fault matrix, or a swarm of seeded worlds")
    e.add_argument("--matrix", action="store_true", help="(the default) every case")
    e.add_argument("--dialect", action="append", choices=list(dialects.DIALECTS),
                   help="the matrix's cases of this dialect only (repeatable; default all)")
    e.add_argument("--guest", choices=["null", "model"], default=None,
                   help="the matrix's guest: model (the default) has RAM, devices, disk "
                        "and packets, so the guest-level invariants (flush set, "
                        "consistency, the survivor's state) have something to check; "
                        "null: the protocol alone, about 10x faster")
    e.add_argument("--json", action="store_true")
    from colo_tui.cli.swarm import add_swarm_options
    add_swarm_options(e)
    e.set_defaults(func=cmd_explore)

    d = sub.add_parser(
        "decode", help="decode a raw control byte stream to JSON lines",
        description="Decode one direction of a COLO connection to JSON lines. With "
                    f"--dialect qemu (the default): {dialects.QEMU_SCOPE}. The stream "
                    f"version decoded is QEMU {dialects.QEMU_STREAM_VERSION}'s.")
    d.add_argument("--dialect", choices=list(dialects.DIALECTS), default="qemu",
                   help="qemu: COLOMessage of 2.8 … 10.x, with the QEMU "
                        f"{dialects.QEMU_STREAM_VERSION} migration stream (default); "
                        "v11; prototype")
    d.add_argument("--from", dest="sender", choices=["primary", "secondary"], required=True)
    d.add_argument("--initial", action="store_true",
                   help="the primary's stream starts with the initial migration (QEVM …)")
    d.add_argument("file", type=nonempty_path, help="FILE or - for stdin")
    d.set_defaults(func=cmd_decode)

    p = sub.add_parser("replay", help="replay a recording")
    p.add_argument("file", type=nonempty_path)
    p.add_argument("--verify", action="store_true",
                   help="re-run and compare every event (what replay always does; kept "
                        "for scripts that spell it out)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)

    f = sub.add_parser("faults", help="list the fault grammar's kinds and points")
    f.set_defaults(func=cmd_faults)

    b = sub.add_parser("bench", help="benchmarks (ratios against same-run baselines)")
    b.add_argument("which", choices=["sim", "pagediff", "checkpoint", "engine", "tui", "goals"])
    b.add_argument("rest", nargs=argparse_REMAINDER())
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("compare-modes", help="periodic (Remus) against hybrid (COLO)")
    # (default None: the simulated comparison's options given with --real are refused
    # rather than ignored; cmd_compare_modes fills in the defaults)
    c.add_argument("--dialect", choices=list(dialects.DIALECTS), default=None,
                   help="the simulated comparison's dialect (default qemu; --real: the "
                        "real pair is QEMU 7.2, dialect qemu)")
    c.add_argument("--seed", type=seed_int, default=1)
    c.add_argument("--checkpoints", type=int_in(1, COMPARE_MAX_CHECKPOINTS), default=None,
                   metavar="N",
                   help=f"not with --real: the workload's length, N periodic checkpoint "
                        f"intervals of 1 s (1 … {COMPARE_MAX_CHECKPOINTS:,}, default 10): "
                        "both modes run it for the same time, so periodic commits N "
                        "checkpoints and hybrid as many as its timer and its mismatches "
                        "start (the guest model runs both sessions whole)")
    c.add_argument("--workload", default=None, choices=workloads(), metavar="NAME",
                   help="not with --real: the guest's workload (default toggle): "
                        "%(choices)s")
    c.add_argument("--divergence", type=fraction, default=None,
                   help="not with --real: fraction of the SVM's answers that differ "
                        "(0 … 1, default 0.02)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--real", action="store_true",
                   help="on the lab's real QEMU 7.2 pair (colo lab; root gives the tap "
                        "network): a hybrid phase, a periodic phase and a no-COLO baseline, "
                        "the same seeded echo workload in each")
    # (default None: given without --real, they are refused rather than ignored)
    c.add_argument("--seconds", type=number_in(1.0, 3600.0), default=None,
                   help="--real only: the length of each phase (default 30)")
    c.add_argument("--periodic-delay", type=positive_checkpoint_delay_ms, default=None,
                   metavar="MS",
                   help="--real only: x-checkpoint-delay of the periodic phase (default 2000)")
    c.add_argument("--probe-every", type=number_in(0.1, 3600.0), default=None, metavar="S",
                   help="--real only: mean seconds between the hybrid phase's mismatching "
                        "connections (seeded; default 3)")
    c.set_defaults(func=cmd_compare_modes)


def argparse_REMAINDER():  # noqa: N802 - keep argparse's name visible
    import argparse
    return argparse.REMAINDER


def _session_options(p) -> None:
    p.add_argument("--dialect", choices=list(dialects.DIALECTS), default="qemu")
    p.add_argument("--mode", choices=["periodic", "hybrid"], default="periodic")
    p.add_argument("--seed", type=seed_int, default=1)
    p.add_argument("--checkpoint-delay", type=checkpoint_delay_ms, metavar="MS", default=None,
                   help="x-checkpoint-delay (0 … 4294967295, a uint32 as in QEMU; the guest "
                        "model takes at most 3600000; default: the dialect's)")
    p.add_argument("--load-ms", type=nonneg_float, default=0.0,
                   help="time the SVM takes to load")
    p.add_argument("--guest", choices=["null", "model"], default="model",
                   help="model (the default, as in the TUI and the REPL): RAM, devices, "
                        "disk, packets; null: the control protocol only")
    p.add_argument("--ram-mib", type=ram_mib, default=16, help="1 … 65536")
    p.add_argument("--workload", default="toggle", choices=workloads(), metavar="NAME",
                   help="the guest model's workload: %(choices)s")
    p.add_argument("--no-arbiter", action="store_true",
                   help="no external manager: a silent peer hangs COLO forever (B13)")
    p.add_argument("--strict", action="store_true",
                   help="do not reproduce QEMU 7.2's quirks (COLO_EXIT reason on failover)")
    p.add_argument("--xbzrle", action="store_true", help="guest model: XBZRLE-encode pages")
    p.add_argument("--save-ms", type=nonneg_float, default=0.0,
                   help="qemu: the primary's device-state save time after the RAM part")
    p.add_argument("--jitter-ms", type=nonneg_float, default=0.0,
                   help="every timer fires up to this much late (seeded)")
    p.add_argument("--arbiter-ms", type=arbiter_ms, default=1000.0,
                   help="how long the arbiter takes to act (1 … 1000000000)")
    p.add_argument("--rate", type=workload_rate, default=None,
                   help="the workload's rate (0 … 1000000)")
    p.add_argument("--client-every-ms", type=client_every_ms, default=100.0,
                   help="guest model: a client request this often (0: none)")
    p.add_argument("--divergence", type=fraction, default=0.0,
                   help="guest model: fraction of the SVM's answers that differ")
    p.add_argument("--liveness-checkpoints", type=liveness_checkpoints, default=0,
                   metavar="N", help="after the last fault, N more checkpoints must commit "
                                     "(0 … 10,000)")
    p.add_argument("--latency-ms", type=link_latency_ms, default=0.05, metavar="MS",
                   help="the migration link's one-way latency (default %(default)s)")
    p.add_argument("--bytes-per-ms", type=link_bytes_per_ms, default=1.0e6, metavar="N",
                   help="the migration link's rate in bytes per ms (1 … 1000000000000000; "
                        "default 1000000: 1 GB/s; 12500: 100 Mbit/s)")


def _config(args):
    from protocol.sim.config import SimConfig
    return SimConfig(dialect=args.dialect, mode=args.mode, seed=args.seed,
                     checkpoints=getattr(args, "checkpoints", 3),
                     faults=list(getattr(args, "fault", []) or []),
                     checkpoint_delay_ms=args.checkpoint_delay, load_ms=args.load_ms,
                     guest=args.guest, ram_mib=args.ram_mib, workload=args.workload,
                     arbiter=not args.no_arbiter, faithful=not args.strict,
                     xbzrle=args.xbzrle, save_ms=args.save_ms, jitter_ms=args.jitter_ms,
                     arbiter_ms=args.arbiter_ms, rate=args.rate,
                     client_every_ms=args.client_every_ms, divergence=args.divergence,
                     liveness_checkpoints=args.liveness_checkpoints,
                     latency_ms=args.latency_ms, bytes_per_ms=args.bytes_per_ms)


#: compare-modes runs two whole model-guest sessions of this many checkpoints at most
COMPARE_MAX_CHECKPOINTS = 10_000
#: compare-modes options of --real alone: (attribute, option, default with --real)
COMPARE_REAL_ONLY = (("seconds", "--seconds", 30.0),
                     ("periodic_delay", "--periodic-delay", 2000),
                     ("probe_every", "--probe-every", 3.0))
#: compare-modes options of the simulated comparison alone: (attribute, option, default)
COMPARE_SIM_ONLY = (("checkpoints", "--checkpoints", 10),
                    ("workload", "--workload", "toggle"),
                    ("divergence", "--divergence", 0.02))
#: a run whose checkpoint target is above this keeps no events (it does not need them:
#: the invariants watch them as they pass; --record and --events stream them)
KEEP_EVENTS_MAX_CHECKPOINTS = 10_000
#: --json lists at most this many wire messages (the first ones) and counts the rest
WIRE_JSON_MAX = 10_000


def _wire_entry(e) -> dict:
    return {"dir": "P>S" if e.side == "primary" else "S>P",
            "msg": e.msg, "value": e.value, "hex": e.hex}


class _WireLog:
    """The first WIRE_JSON_MAX messages sent, and how many there were: O(1) memory."""

    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.total = 0

    def __call__(self, e) -> None:
        if e.kind is EventKind.SEND:
            self.total += 1
            if len(self.entries) < WIRE_JSON_MAX:
                self.entries.append(_wire_entry(e))


def session_summary(sim, wire_log: _WireLog | None = None) -> dict:
    from protocol.sim.link import P2S, S2P
    if wire_log is None:
        wire_log = _WireLog()
        for e in sim.events:
            wire_log(e)
    wire = wire_log.entries
    sides = {}
    for s, ep in sim.eps.items():
        sides[s] = {"running": sim.alive[s] and not sim.stalled[s] and ep.run_state == "running",
                    "alive": sim.alive[s], "run_state": ep.run_state,
                    "colo_status": ep.query_colo_status(),
                    "failover_state": ep.dialect.failover_name(ep.failover.state),
                    "checkpoint": ep.checkpoint, "state": ep.state, "error": ep.error}
    return {"dialect": sim.cfg.dialect, "mode": sim.cfg.mode, "seed": sim.cfg.seed,
            "faults": [str(f) for f in sim.faults],
            "checkpoints_committed": min(sim.eps["primary"].checkpoint,
                                         sim.eps["secondary"].checkpoint),
            "outcome": sim.outcome(), "premise_broken": sim.premise_broken,
            "sides": sides, "invariants": dict(sim.invariants.ok),
            "violations": sim.invariants.violations, "hang": sim.hung,
            "steps": sim.steps, "virtual_ms": round(sim.now, 3),
            "wire_bytes": {"P>S": len(sim.link.wire[P2S]), "S>P": len(sim.link.wire[S2P])},
            "wire": wire, "wire_messages": wire_log.total}


class _StopAtStep:
    """While a run steps: SIGINT, SIGTERM and SIGHUP end it at the next step boundary
    (`signum`), so a recording stops between steps, whole; a second SIGINT while a
    step still runs interrupts it (KeyboardInterrupt: the recording is then cut).
    Outside the main thread (no signals there) it does nothing."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.signum: int | None = None
        self.name = ""
        self._old: dict = {}

    def _on_signal(self, signum, _frame) -> None:
        import signal
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt       # asked twice: do not wait for the step
        if self.signum is None:
            self.signum, self.name = signum, signal.Signals(signum).name

    def __enter__(self) -> _StopAtStep:
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *_exc) -> None:
        import signal
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _committed(sim) -> int:
    return min(ep.checkpoint for ep in sim.eps.values())


def cmd_run(args) -> int:
    from pathlib import Path

    from protocol.record import format as rf
    from protocol.sim.core import Simulation
    from protocol.sim.link import P2S, S2P
    cfg = _config(args)
    max_steps = cfg.max_steps if args.max_steps is None else args.max_steps
    cfg.max_steps = max_steps + 1     # the bound below stops the run, not a "hang"
    writer = None
    sim = Simulation(cfg)                      # validates the faults before any file opens
    if args.record and (why := _beyond_recordings(cfg, sim)):
        print(f"colo run: error: --record: {why}", file=sys.stderr)
        return 2
    sim.keep_events = sim.target <= KEEP_EVENTS_MAX_CHECKPOINTS
    wire_log = _WireLog()
    sim.on_event = wire_log
    refused: dict[str, str] = {}        # plan steps that fired and could not run
    if any(f.kind == "reprotect" for f in sim.faults):
        sim.on_event = _chain(wire_log, lambda e: refused.setdefault(e.spec, e.why)
                              if e.__class__ is ReprotectRefused else None)
    try:
        if args.record:
            # (step: the file ends with a stop line rather than go beyond what readers
            # take, so every recording it writes reads back)
            writer = rf.Writer(args.record, rf.make_header(cfg),
                               [f"colo run {' '.join(sys.argv[2:])}".strip()],
                               force=args.force, step=lambda: sim.steps)
            sim.on_event = _chain(sim.on_event, writer.event)
        if args.events:
            sim.on_event = _chain(sim.on_event, lambda e: print(_event_line(e)))
        with _StopAtStep() as stop:
            sim.run_until(lambda _sim: stop.signum is not None, max_steps=max_steps)
        if writer and not sim.finished:
            writer.stop(sim.steps)   # cut at the step bound or a signal: replay stops here
        if stop.signum is not None:
            where = f"; the recording {args.record} holds it up to there" if writer else ""
            print(f"colo run: stopped by {stop.name} after {plural(sim.steps, 'step')} "
                  f"({plural(_committed(sim), 'checkpoint')} committed){where}",
                  file=sys.stderr)
            if writer:
                writer.close()
                if note := writer.beyond_reader_limits():
                    print(f"colo run: note: {note}", file=sys.stderr)
            return 128 + stop.signum
    except BrokenPipeError:
        raise                        # stdout's reader left (`| head`): main exits 0 quietly
    except OSError as exc:
        what = exc.filename or "the standard output"    # (the recording's errors name it)
        print(f"colo run: cannot write {what}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except OutputFileError as exc:
        print(f"colo run: --record: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if writer:
            writer.stop(sim.steps)     # replay stops where the run was interrupted
        raise
    finally:
        if writer:
            writer.close()
    note = writer.beyond_reader_limits() if writer else None
    if note:
        print(f"colo run: note: {note}", file=sys.stderr)
    if args.dump_wire:
        out = Path(args.dump_wire)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "primary_to_secondary.bin").write_bytes(bytes(sim.link.wire[P2S]))
            (out / "secondary_to_primary.bin").write_bytes(bytes(sim.link.wire[S2P]))
        except OSError as exc:
            why = exc.strerror
            if isinstance(exc, FileExistsError) or (out.exists() and not out.is_dir()):
                why = "not a directory (a file of that name exists; the wire goes into a " \
                      "directory, as two .bin files)"
            print(f"colo run: --dump-wire {args.dump_wire}: {why}", file=sys.stderr)
            return 1
    summary = session_summary(sim, wire_log)
    bounded = summary["stopped_at_step_bound"] = not sim.finished
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_summary(summary, sim)
    if bounded:
        print(f"colo run: stopped at the step bound ({plural(max_steps, 'step')}) after "
              f"{summary['checkpoints_committed']:,} of {plural(sim.target, 'checkpoint')}; "
              "raise it with --max-steps N", file=sys.stderr)
    else:                   # a finished run: the faults whose moment never came
        from colo_tui.present.faultnotes import fault_notes
        for text in fault_notes(sim.faults, sim.fired, failovers=sim.failovers,
                                committed=_committed(sim), refused=refused):
            print(f"colo run: note: {text}", file=sys.stderr)
    if not all(summary["invariants"].values()):
        path = args.record
        if not path and (not sim.keep_events or len(sim.events) > 200_000):
            path = ("(not written: a run this long keeps no events; rerun with "
                    "--record FILE)")
        elif not path:               # keep the evidence: the run as a replayable recording
            try:
                from colo_tui.session.lifecycle import new_recording_path
                path = str(new_recording_path(cfg, "colo-violation"))
                rf.write(path, rf.make_header(cfg), sim.events, sim.inputs,
                         comments=["an invariant broke in this run: "
                                   + "; ".join(v["text"] for v in sim.invariants.violations)])
            except OSError as exc:
                path = f"(not written: {exc.strerror})"
            except OutputFileError as exc:
                path = f"(not written: {exc})"
        print(f"invariant violated; reproduce with --seed {cfg.seed}; recording: {path}",
              file=sys.stderr)
        return 1
    return 1 if bounded else 0


def _beyond_recordings(cfg, sim) -> str | None:
    """Why a recording of this run could not be read back (a checkpoint target or a
    fault's #N beyond the readers' COLO_MAX_CHECKPOINTS), or None."""
    from protocol.record.schema import max_checkpoints
    cap = max_checkpoints()
    n = max([cfg.checkpoints, *(f.checkpoint for f in sim.faults)])
    if n <= cap:
        return None
    what = (f"--checkpoints {cfg.checkpoints:,}" if n == cfg.checkpoints
            else f"a fault at checkpoint #{n:,}")
    return (f"{what}: a recording holds a session of at most {cap:,} checkpoints, what "
            f"`colo replay` and the UIs read; run it without --record, or set "
            f"COLO_MAX_CHECKPOINTS={n} for the run and for its readers")


def _chain(a, b):
    if a is None:
        return b
    return lambda e: (a(e), b(e))


def _event_line(e) -> str:
    from colo_tui.present.sentences import sentence
    return f"{e.t_ms:12.3f} {e.seq:6d} {e.side:9s} {sentence(e)}"


def _death(sim, side: str) -> str:
    """How a dead side died, in words ('' if it lives)."""
    if sim.alive[side]:
        return ""
    ev = next((e for e in reversed(sim.events) if e.side == side and e.kind is EventKind.PROCESS),
              None)
    if ev is None:
        return "DEAD: its process is gone"
    why = ev.why
    return f"DEAD: {ev.what or 'gone'}" + (f" ({why})" if why else "")


def _so_far(sim, outcome: str) -> str:
    """An unfinished session's outcome in words: one stopped before COLO ran, with
    nothing gone wrong (no error, no death, no failover), is starting, not an error."""
    from protocol.core import failover as fo
    if outcome == "error" and not sim.hung and all(
            sim.alive[s] and sim.eps[s].error is None and sim.eps[s].failover.state == fo.NONE
            and not sim.eps[s].checkpoint for s in ("primary", "secondary")):
        return "starting, COLO not running yet"
    return outcome


def _print_summary(s: dict, sim=None) -> None:
    print(f"dialect {s['dialect']}  mode {s['mode']}  seed {s['seed']}  "
          f"faults {', '.join(s['faults']) or '-'}")
    outcome = s["outcome"]
    if s.get("stopped_at_step_bound"):
        so_far = outcome if sim is None else _so_far(sim, outcome)
        outcome = f"unfinished (stopped at the step bound; so far: {so_far})"
    print(f"outcome: {outcome}   checkpoints committed: {s['checkpoints_committed']}   "
          f"virtual time {s['virtual_ms']:.1f} ms   steps {s['steps']}")
    if sim is not None and s.get("stopped_at_step_bound"):
        print(f"The run was stopped at the step bound before it ended, with "
              f"{s['checkpoints_committed']:,} of {plural(sim.target, 'checkpoint')} "
              "committed.")
    elif sim is not None:
        from colo_tui.present.sentences import ending
        print(ending(sim.events, s["outcome"]))
    for side, d in s["sides"].items():
        cs = d["colo_status"]
        if sim is not None and not d["alive"]:
            print(f"  {side:9s} {_death(sim, side)}; it had committed checkpoint "
                  f"{d['checkpoint']}" + (f"; error: {d['error']}" if d["error"] else ""))
            continue
        print(f"  {side:9s} run={d['run_state']:13s} mode={cs['mode']:9s} "
              f"last-mode={cs['last-mode']:9s} reason={cs['reason']:10s} "
              f"failover={d['failover_state']:9s} {('error: ' + d['error']) if d['error'] else ''}")
    bad = [k for k, ok in s["invariants"].items() if not ok]
    print("invariants: " + ("all hold" if not bad else "VIOLATED: " + ", ".join(bad)))
    for v in s["violations"]:
        print(f"  {v['invariant']}: {v['text']}")


#: explore's options of the matrix alone, and of the swarm alone: (attribute, option)
EXPLORE_MATRIX_ONLY = (("dialect", "--dialect"), ("guest", "--guest"))
EXPLORE_SWARM_ONLY = (("seed", "--seed"), ("workers", "--workers"), ("cluster", "--cluster"),
                      ("time_budget", "--time-budget"), ("no_shrink", "--no-shrink"),
                      ("repro_dir", "--repro-dir"))


def _given(args, options) -> list[str]:
    return [opt for attr, opt in options if getattr(args, attr, None) not in (None, False)]


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def cmd_explore(args) -> int:
    from protocol.errors import UsageError
    if args.swarm is not None:
        # refused rather than ignored: every seed draws its own dialect, mode and guest
        if given := _given(args, EXPLORE_MATRIX_ONLY):
            raise UsageError(f"{_and(given)} {'is' if len(given) == 1 else 'are'} the "
                             "matrix's, not for --swarm (each seed draws its own dialect, "
                             "mode and guest)")
        if args.workers is not None and args.cluster is not None:
            raise UsageError("--workers K runs local processes; with --cluster the "
                             "cluster's workers run the seeds: give one of them")
        if args.seed is None:
            args.seed = 1
        if args.workers is None:
            args.workers = 1
        from colo_tui.cli.swarm import cmd_swarm
        return cmd_swarm(args)
    if given := _given(args, EXPLORE_SWARM_ONLY):
        raise UsageError(f"{_and(given)} {'needs' if len(given) == 1 else 'need'} "
                         "--swarm N (the matrix runs its fixed cases once, in this process)")
    if args.guest is None:
        args.guest = "model"
    from protocol.sim.explore import explore
    res = explore(args.dialect, guest=args.guest)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"cases {res['cases']}  violations {res['violations']}  hangs {res['hangs']}")
        for outcome, n in res["outcomes"].items():
            print(f"  {outcome:12s} {n}")
        for r in res["results"]:
            if r["violations"] or r["hang"]:
                why = [", ".join(r["violations"])] if r["violations"] else []
                if r["hang"]:
                    why.append(f"hang: {r['hang']}")
                print(f"  FAIL {r['dialect']} {r['mode']} {r['fault']}: {'; '.join(why)}")
    return 1 if res["violations"] or res["hangs"] else 0


def cmd_decode(args) -> int:
    from protocol.core import messages as m
    from protocol.core.codec import Decoder
    from protocol.record.infile import STREAM_FILE, input_refusal
    if args.initial and args.sender != "primary":
        print("colo decode: error: --initial applies to the primary's stream (--from "
              "primary): the initial migration (QEVM …) goes from the primary to the "
              "secondary, never back", file=sys.stderr)
        return 2
    d = dialects.get(args.dialect)
    if args.file != "-" and (why := input_refusal(
            args.file, f"{STREAM_FILE}; or - to read standard input, which may be a pipe: "
                       f"colo decode … - < {args.file}")):
        print(f"colo decode: error: {why}", file=sys.stderr)
        return 1
    try:
        fh = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"colo decode: error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    # a message the other side sends is an error here (the endpoints let their role
    # machine report it, as QEMU does)
    # no initial migration before the stream (a mid-session capture, `colo run --dialect
    # v11 --dump-wire`): its RAM parts name RAMBlocks no block table announced
    unannounced = None if args.initial else _unannounced_ram()
    dec = Decoder(d, args.sender, expect_initial=args.initial, check_direction=True,
                  ram_ctx=unannounced, keep_records=unannounced is None)
    offset, head = 0, b""
    try:
        with fh:
            while True:
                try:
                    chunk = fh.read1(1 << 16)     # what has arrived: a pipe is live
                except OSError as exc:            # (EIO: a bad disk, a hung-up terminal)
                    print(f"colo decode: error: cannot read {args.file}: {exc.strerror or exc}",
                          file=sys.stderr)
                    return 1
                if not chunk:
                    break
                head = (head + chunk)[:4] if len(head) < 4 else head
                dec.feed(chunk)
                for item in dec.items():
                    if isinstance(item, m.RamChunk):
                        continue        # counted in the RamPart that ends the part
                    print(json.dumps(_item_json(item, m, offset)))
                    offset = dec.bytes_consumed
    except DecodeError as exc:
        hint = ""
        if head == b"QEVM" and not args.initial and dec.bytes_consumed == 0:
            hint = (" (the stream starts with QEVM, a migration stream's magic: give "
                    "--initial for a primary's stream that starts with the initial migration)")
        elif dec.bytes_consumed == 0 and d.senders.get(
                d.names.get(exc.offending)) not in (None, "none", args.sender):
            other = "secondary" if args.sender == "primary" else "primary"
            hint = f" (the first message is the {other}'s: give --from {other}?)"
        print(f"colo decode: error: at byte {dec.bytes_consumed}: {exc}{hint}", file=sys.stderr)
        return 1
    if cut := stream_end_error(dec):
        print(f"colo decode: error: {cut}", file=sys.stderr)
        return 1
    if unannounced is not None and unannounced.blocks:
        print(f"colo decode: note: no initial migration announced the RAMBlocks this "
              f"stream's RAM parts name ({', '.join(unannounced.blocks)}): they were taken "
              "as named, their sizes unknown, so page offsets were not checked against "
              "them", file=sys.stderr)
    return 0


#: a RAM part of a stream without its initial migration holds at most this much: the
#: largest guest RAM the tool runs (--ram-mib 65536) and its devices' (vga.vram …)
UNANNOUNCED_RAM_BYTES = (65536 + 1024) << 20


def _unannounced_ram():
    """A RAM context for a stream whose initial migration is not in it: a RAMBlock a RAM
    part names is learned as it comes (QEMU's receiver takes the table from the initial
    stream; `colo decode` without --initial has none), a part bounded by
    UNANNOUNCED_RAM_BYTES of pages."""
    from protocol.migration.stream import RamContext

    class _Learned(dict):
        def get(self, name, default=None):
            if name not in self:
                self[name] = 1 << 63          # its used_length is unknown: any offset
            return dict.__getitem__(self, name)

    class _Unannounced(RamContext):
        @property
        def mem_size(self) -> int:
            return UNANNOUNCED_RAM_BYTES

    return _Unannounced(blocks=_Learned())


def stream_end_error(dec) -> str | None:
    """Where and how a stream that ends now is cut ('at byte N: stream ended in the
    middle of …'; `colo decode` and `colo respond` say it alike), or None when it ends
    between messages.  Closes the decoder."""
    try:
        dec.close()
    except DecodeError as exc:
        return f"at byte {dec.bytes_consumed}: {exc}"
    return None


def _item_json(item, m, offset: int) -> dict:
    if isinstance(item, m.Message):
        return {"offset": offset, "type": "message", "msg": item.name, "id": item.msg_id,
                "value": item.value, "hex": item.raw.hex()}
    if isinstance(item, m.RamPart):
        return {"offset": offset, "type": "ram", "bytes": item.size_bytes,
                "pages": item.page_count(), "by_kind": item.kind_counts()}
    if isinstance(item, m.StateBlob):
        return {"offset": offset, "type": "device-state", "bytes": len(item.data)}
    summary = item.summary
    return {"offset": offset, "type": "initial", "bytes": item.size_bytes,
            "machine": getattr(summary, "machine", None),
            "enable_colo": getattr(summary, "enable_colo", None),
            "blocks": [list(b) for b in getattr(summary, "blocks", [])]}


def _other_build(header: dict) -> str:
    """A note for a recording another build wrote: the simulator may have changed
    since, so a divergence can be the tool's change rather than the session's."""
    from protocol import TOOL
    tool = header.get("tool")
    if not tool or tool == TOOL:
        return ""
    return (f"\n  (recorded by {tool}; this is {TOOL}: the simulator may have changed "
            "since, so the difference can be the tool's rather than the session's)")


def cmd_replay(args) -> int:
    from protocol.record import format as rf
    from protocol.record.replay import verify
    rec = rf.read(args.file)
    if not rec.events:           # a bad file (exit 1), not a replay that agrees with nothing
        cut = f" (it was cut: {rec.cut})" if rec.cut else ""
        raise RecordingError(f"{args.file}: nothing to replay: the recording holds no "
                             f"events{cut}")
    res = verify(rec)
    cut = f" The recording was cut ({res.cut}): compared only what it holds." if res.cut \
        else ""
    if rec.imported:
        from protocol.record.playback import Playback
        pb = Playback(rec)
        pb.run()
        out = {"file": args.file, "identical": None, "imported": True, "consistent": res.ok,
               "events": pb.steps, "checkpoints_committed": pb.side("primary").checkpoint,
               "ended": pb.ended, "cut": res.cut, "first_difference": res.first_difference}
        if args.json:
            print(json.dumps(out, indent=1))
        elif res.ok:
            source = rec.header.get("source")
            # `colo import` writes source "import"; a live session writes its own name
            origin = (f"recorded from a live session ({source})"
                      if source and source != "import" else "imported from a real session")
            print(f"{args.file}: {origin}, so it cannot be re-simulated; "
                  f"its events agree with each other; it plays back "
                  f"{plural(pb.steps, 'event')} "
                  f"({plural(out['checkpoints_committed'], 'checkpoint')}, ended: "
                  f"{pb.ended or 'cleanly'}). Step through it with `colo tui --replay` or "
                  f"the REPL's `replay`.{cut}")
        else:
            diff = res.first_difference
            print(f"{args.file}: INCONSISTENT at event {diff['seq']}: {diff['why']}\n"
                  f"  recorded: {json.dumps(diff['recorded'])}")
        return 0 if res.ok else 1
    summary = session_summary(res.sim)
    finished = bool(res.sim.finished)
    out = {"file": args.file, "identical": res.ok, "events": res.events,
           "first_difference": res.first_difference, "outcome": summary["outcome"],
           "finished": finished,
           "checkpoints_committed": summary["checkpoints_committed"], "cut": res.cut,
           "recorded_by": rec.header.get("tool")}
    if args.json:
        print(json.dumps(out, indent=1))
    elif res.ok:
        # a session recorded before its end (a UI quit mid-run, a step bound) is not
        # called done: its outcome is the one so far
        outcome = summary["outcome"] if finished else \
            f"unfinished at step {res.sim.steps} (so far: {_so_far(res.sim, summary['outcome'])})"
        print(f"{args.file}: replayed {plural(res.events, 'event')} identically; outcome "
              f"{outcome}, {plural(summary['checkpoints_committed'], 'checkpoint')}{cut}")
    else:
        diff = res.first_difference
        why = f" ({diff['why']})" if diff.get("why") else ""
        print(f"{args.file}: DIVERGES at event {diff['seq']}{why}:\n  recorded: "
              f"{json.dumps(diff['recorded'])}\n  replayed: {json.dumps(diff['replayed'])}"
              + (f"\n {cut}" if cut else "") + _other_build(rec.header))
    return 0 if res.ok else 1


def cmd_faults(_args) -> int:
    from protocol.core import faults
    print("KIND[=ARG]@POINT[#N]   (N: the checkpoint, default 1)\n\nkinds:")
    for k, (arg, text) in faults.KINDS.items():
        print(f"  {k + ('=' + arg.upper() if arg else ''):22s} {text}")
    print("points: " + ", ".join(faults.POINTS))
    print(f"colo lab only: {'|'.join(faults.CHANNEL_KINDS)}@"
          f"{'|'.join(faults.CHANNEL_POINTS)}#N  (a colo-compare channel; N: its Nth TCP "
          "packet carrying data once the lab's client traffic starts; corrupt: "
          f"{faults.CHANNEL_HELP['corrupt']})")
    print(f"colo lab --pair-fault: {'|'.join(faults.PAIR_KINDS)}@MESSAGE#N (the Nth such "
          f"COLO message in the primary's trace), partition=MS@MESSAGE#N (no byte "
          "crosses between the QEMUs for MS ms: migration, mirror, compare-in), "
          f"close@{faults.NBD_POINT}#N (the secondary's NBD server stops after the Nth "
          "checkpoint-request)")
    return 0


def cmd_bench(args) -> int:
    import importlib
    target = {"sim": "protocol.bench.sim", "pagediff": "protocol.bench.pagediff",
              "checkpoint": "protocol.bench.checkpoint",
              "engine": "protocol.bench.engine", "tui": "colo_tui.cli.bench_tui",
              "goals": "colo_tui.cli.bench_goals"}[args.which]
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:     # a UI toolkit (textual for `bench tui`) only
        if exc.name not in ("textual", "prompt_toolkit", "uvloop"):
            raise
        print(f"colo bench {args.which}: not available ({exc})", file=sys.stderr)
        return 2
    return int(module.main(args.rest) or 0)


def cmd_compare_modes(args) -> int:
    from protocol.errors import UsageError
    given = [opt for attr, opt, _ in COMPARE_REAL_ONLY if getattr(args, attr) is not None]
    if given and not args.real:
        raise UsageError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} "
                         "--real (the real QEMU pair's phases; the simulated comparison "
                         "runs --checkpoints N per mode)")
    given = [opt for attr, opt, _ in COMPARE_SIM_ONLY if getattr(args, attr) is not None]
    if given and args.real:
        raise UsageError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} not "
                         "for --real (the simulated comparison's; the real QEMU pair runs "
                         "its echo workload for --seconds S per phase)")
    if args.real and args.dialect not in (None, "qemu"):
        raise UsageError(f"--dialect {args.dialect} is not for --real (the real pair is "
                         "QEMU 7.2: dialect qemu)")
    for attr, _opt, default in COMPARE_REAL_ONLY + COMPARE_SIM_ONLY:
        if getattr(args, attr) is None:
            setattr(args, attr, default)
    if args.dialect is None:
        args.dialect = "qemu"
    if args.real:
        from colo_tui.lab.modes import cmd_real
        return cmd_real(args)
    from protocol.sim.compare import compare_modes
    try:
        res = compare_modes(dialect=args.dialect, seed=args.seed,
                            checkpoints=args.checkpoints, workload=args.workload,
                            divergence=args.divergence)
    except ColoError as exc:
        print(f"colo compare-modes: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    from colo_tui.present.sentences import plain
    keys = [k for k in res["periodic"] if k != "mode"]
    rows = [("", "periodic (Remus)", "hybrid (COLO)")]
    rows += [(k.replace("_", " ").replace(" ms", " (ms)"), plain(res["periodic"][k]),
              plain(res["hybrid"][k])) for k in keys]
    # each column as wide as its widest cell, two spaces apart: a long value
    # ("colo-compare 3742, timer 8034") no longer runs into its neighbour
    label_w = max(len(r[0]) for r in rows)
    value_w = [max(len(r[i]) for r in rows) + 2 for i in (1, 2)]
    for label, periodic, hybrid in rows:
        print(f"{label:{label_w}s}{periodic:>{value_w[0]}s}{hybrid:>{value_w[1]}s}".rstrip())
    return 0
