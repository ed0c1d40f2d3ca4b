"""`colo lab`: a real QEMU 7.2 COLO pair with a Linux guest, colo-compare and
block replication, on loopback (see colo_tui/lab/pair.py for the setup).

    colo lab --headless --json     start, drive client traffic, print one JSON object, stop
    colo lab                       the TUI on the live pair (status lines until ctrl+c
                                   when stdin/stdout is not a terminal)

The lab's relay decodes the colo-compare chardev channels (mirror, primary-in,
compare-in, compare-out) and marks the mismatches that forced a checkpoint;
--fault drops, delays, corrupts or duplicates a packet on one of them.  As
root the guest network is a bridge in the lab's own network namespace, so a
client's connection survives --failover.

Exit codes: 0 ok; 1 the lab could not start or run (the reason on stderr);
2 usage.  Every QEMU the lab starts stops with it (ctrl+c, SIGTERM, a crash).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from colo_tui.session.argtypes import (
    int_in,
    nonempty_path,
    nonneg_int,
    number_in,
    positive_checkpoint_delay_ms,
)

#: --probes: each is a connection colo-compare must force a checkpoint for, in turn
MAX_PROBES = 1000


def add_parser(subparsers):
    p = subparsers.add_parser("lab", help="a real QEMU COLO pair (Linux guest, colo-compare, "
                              "block replication) on loopback",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--headless", action="store_true",
                   help="run the scripted session and exit, instead of opening the TUI on "
                        "the live pair (without a terminal: status lines until ctrl+c)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--checkpoint-delay", type=positive_checkpoint_delay_ms, default=10000,
                   metavar="MS",
                   help="x-checkpoint-delay, the periodic checkpoint interval (default "
                        "10000: a shorter gap is a checkpoint colo-compare forced)")
    p.add_argument("--load", type=number_in(0.0, 3600.0), default=8.0, metavar="SECONDS",
                   help="echo-client traffic through the primary's netdev (0 … 3600, "
                        "default 8)")
    p.add_argument("--probes", type=int_in(0, MAX_PROBES), default=3, metavar="N",
                   help="connections to the guest's random service, one after another, "
                        f"each a real colo-compare mismatch (0 … {MAX_PROBES}, default 3)")
    p.add_argument("--failover", action="store_true",
                   help="at the end, SIGKILL the primary during echo traffic, fail over "
                        "to the secondary and report what the client saw")
    p.add_argument("--fault", action="append", default=[], type=lab_fault, metavar="SPEC",
                   help="a fault on a colo-compare channel: drop|delay=MS|corrupt|duplicate"
                        "@primary-in|compare-in|compare-out|mirror#N, N the Nth TCP "
                        "packet carrying data on that channel once client traffic starts "
                        "(repeatable; `colo faults` for the grammar)")
    p.add_argument("--pair-fault", type=pair_fault, metavar="SPEC",
                   help="instead of the scripted session: a fault on the pair itself, "
                        "kill-|stall-|heartbeat-primary|secondary@MESSAGE#N, "
                        "partition=MS@MESSAGE#N (the migration connection and the crossing "
                        "compare channels cut for MS ms) or close@nbd#N, "
                        "with an echo client running; prints what QEMU and the client did "
                        "as JSON (`colo faults`)")
    p.add_argument("--packets", type=nonneg_int, default=200, metavar="N",
                   help="packet events listed in --json (default 200; all of them go to "
                        "compare-channels.jsonl in the work directory, see --keep)")
    p.add_argument("--net", choices=("user", "tap", "auto"), default="auto",
                   help="the guest network: tap = both QEMUs' taps on a bridge in a "
                        "network namespace of the lab's own, the client inside it (root; "
                        "a client's connection can survive a failover); user = QEMU's "
                        "user-mode network with host port forwards; auto (default): tap "
                        "when root, else user")
    p.add_argument("--capture", type=nonempty_path, metavar="FILE",
                   help="record the migration connection and every compare channel "
                        "with dumpcap into FILE (pcap; a new file), for `colo import`")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (images, serial consoles, QEMU traces)")
    p.set_defaults(func=cmd_lab)
    return p


def pair_fault(text: str):
    """colo_tui.lab.pairfaults.pair_fault, imported when the option is given (the
    parser of every command is built at start-up)."""
    from colo_tui.lab import pairfaults
    return pairfaults.pair_fault(text)


def lab_fault(text: str):
    """A fault spec on a compare channel, checked at parse time (exit 2)."""
    from protocol.core import faults
    from protocol.errors import UsageError
    try:
        f = faults.parse(text, channels=True)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if f.point not in faults.CHANNEL_POINTS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the lab takes faults on its compare channels "
            f"({', '.join(faults.CHANNEL_POINTS)}) only")
    return f


def resolve_net(net: str, capture) -> str:
    """The network the lab runs on (auto: tap when a namespace can be built), after
    refusing an existing capture file; UsageError names what is wrong."""
    import os

    from protocol.errors import UsageError
    if capture is not None and os.path.lexists(capture):
        raise UsageError(f"--capture {capture}: the file exists (give a new name)")
    if net != "user":
        from colo_tui.lab.netns import unavailable
        why = unavailable()
        if why and net == "tap":
            raise UsageError(f"--net tap: {why}")
        net = "user" if why else "tap"
    return net


def checked_net(args) -> str | None:
    """`resolve_net` for `colo lab`: None (said on stderr) for a usage error."""
    from protocol.errors import UsageError
    try:
        return resolve_net(args.net, args.capture)
    except UsageError as exc:
        print(f"colo lab: error: {exc}", file=sys.stderr)
        return None


def _pair_fault_stopped(fault, signum: int, work, said: list) -> int:
    """The one line a --pair-fault run stopped by a signal ends with (as `colo run`
    says 'stopped by SIGINT after …'): what was stopped, what is kept; 128 + signum.
    By then the session's finally blocks have stopped both QEMUs (and the relays)."""
    import signal
    kept = (f"the work directory is kept: {work}" if work is not None else
            "its temporary work directory is removed")
    print(f"colo lab: --pair-fault {fault} stopped by {signal.Signals(signum).name} before "
          f"its report: both QEMUs are stopped, {kept}", file=sys.stderr, flush=True)
    said.append(True)
    return 128 + signum


def cmd_lab(args) -> int:
    from colo_tui.lab import procs
    procs.install()
    say = (lambda s: print(f"lab: {s}", file=sys.stderr, flush=True)) if not args.json \
        else None
    hold = None
    if not args.headless and args.failover:
        print("colo lab: error: --failover needs --headless", file=sys.stderr)
        return 2
    if not args.headless:
        say = say or (lambda s: print(f"lab: {s}", file=sys.stderr, flush=True))

        async def hold(pair):  # status lines until ctrl+c / SIGTERM
            say("status lines, as stdin/stdout is not a terminal (in one, `colo lab` "
                "opens the TUI); ctrl+c stops the lab")
            while True:
                st = await pair.status()
                say(f"checkpoints {pair.checkpoints()} "
                    f"compare {pair.miscompares()} "
                    f"frames {dict(sorted((n, r.n) for n, r in pair.relays.items()))} "
                    + " ".join(f"{k}={v.get('colo', {}).get('mode', 'dead')}/"
                               f"{v.get('status', '-')}" for k, v in st.items()))
                await asyncio.sleep(2)
    net = checked_net(args)
    if net is None:
        return 2
    work = None
    if args.keep:       # named on stderr however the lab ends (the report may never come)
        from colo_tui.lab import workdir
        work = workdir.make(True)
    said: list[bool] = []       # the work directory was named already (a stop's line)
    try:
        return _lab(args, net, say, hold, work, said)
    finally:
        if work is not None and not said:
            print(f"colo lab: work directory kept: {work}", file=sys.stderr)


def _lab(args, net: str, say, hold, work, said: list) -> int:
    from colo_tui.lab.run import run
    from protocol.errors import ColoError
    if args.pair_fault is not None:
        import signal

        from colo_tui.lab import pairfaults
        try:
            rep = pairfaults.run(args.pair_fault, net, args.keep, work=work)
        except (ColoError, OSError) as exc:
            print(f"colo lab: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return _pair_fault_stopped(args.pair_fault, signal.SIGINT, work, said)
        except SystemExit as exc:   # SIGTERM / SIGHUP: 128 + N (the lab's handlers)
            if not isinstance(exc.code, int) or exc.code <= 128:
                raise
            return _pair_fault_stopped(args.pair_fault, exc.code - 128, work, said)
        print(json.dumps(rep, indent=1))
        return 0
    try:
        rep = run(args.checkpoint_delay, args.load, args.probes, args.keep, say, hold,
                  fail_over=args.failover, faults=args.fault, max_events=args.packets,
                  net=net, capture=args.capture, work=work)
    except KeyboardInterrupt:
        print("lab: stopped", file=sys.stderr)
        return 130
    except (ColoError, OSError) as exc:
        print(f"colo lab: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rep))
    else:
        t = rep["traffic"]
        print(f"COLO reached in {rep['colo_s']} s, guest service after "
              f"{rep['guest_ready_s']} s more; {t['requests']} echo requests in "
              f"{t['seconds']} s ({t['per_second']}/s, {t['error'] or 'no error'}); "
              f"{rep['checkpoints']} checkpoints, forced gaps (ms) "
              f"{rep['forced_checkpoint_gaps_ms']}")
        cc = rep["compare_channels"]
        print("compare channels: " + ", ".join(
            f"{k} {v['frames']} frames ({v['data']} with data)"
            for k, v in sorted(cc["frames"].items()))
            + f"; verdicts {cc['verdicts']}; checkpoints forced by a mismatch "
              f"{cc['forced_checkpoints']}")
        for ev in cc["faults_fired"]:
            print(f"fault {ev['fault']}: {ev['channel']} packet {ev['n']} "
                  f"{ev.get('flow', '')} seq={ev.get('seq')} sent {ev['copies_sent']}x")
    return 0 if rep["ok"] else 1
