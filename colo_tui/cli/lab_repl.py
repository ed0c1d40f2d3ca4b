"""`colo repl --lab`: the REPL on a real QEMU 7.2 COLO pair (colo_tui/lab), through
the one session interface, as `colo repl --transport tcp` is on the testbed's own
peers.  `step`, `run [N | until EVENT]`, `status`, `show`, `kill`, `stall`,
`heartbeat`, `failover`, `checkpoint`, `set checkpoint-delay`, `fault SPEC` (on a
compare channel) and `record start FILE` act on, or read from, the real QEMUs; a script
(`-f SCRIPT` or stdin) makes an experiment on real QEMU repeatable.

It lives in the CLI layer: the REPL and the lab are independent packages, and
this wires one to the other (the REPL asks `args.live_source(args)` for its
source before it builds a simulation)."""
from __future__ import annotations

import argparse

from protocol.errors import UsageError

#: the lab's first x-checkpoint-delay when --checkpoint-delay is not given (`colo lab`'s)
DEFAULT_DELAY_MS = 10_000


def wrap(parser) -> None:
    from colo_tui.cli.lab_tui import _seconds
    from colo_tui.session.argtypes import retype
    g = parser.add_argument_group("a real QEMU 7.2 pair (--lab)")
    g.add_argument("--lab", action="store_true",
                   help="run the commands on a real QEMU 7.2 COLO pair on loopback (a "
                        "Linux guest, colo-compare, block replication; needs what `colo "
                        "lab` needs): step and run wait for its events; kill, stall, "
                        "heartbeat, failover, checkpoint, set checkpoint-delay and "
                        "compare-channel faults (e.g. corrupt@primary-in#1) act on it once "
                        "COLO runs: begin a script with `run until verdict`, which waits "
                        "for that")
    g.add_argument("--net", choices=("user", "tap", "auto"), default="auto",
                   help="with --lab: the guests' network, as `colo lab --net` (default auto)")
    g.add_argument("--client-every", type=_seconds, default=0.5, metavar="SECONDS",
                   help="with --lab: the echo client's pace (default 0.5)")
    retype(parser, "--fault", _sim_or_lab_fault)
    parser.set_defaults(live_source=lab_source)


def _sim_or_lab_fault(text: str) -> str:
    """A fault spec of the simulation's grammar, or of the lab's compare channels
    (which one applies is known once --lab is read: lab_source checks again)."""
    from colo_tui.lab.cli import lab_fault
    from colo_tui.session.argtypes import fault_spec
    try:
        return fault_spec(text)
    except argparse.ArgumentTypeError as sim_error:
        try:
            lab_fault(text)
        except argparse.ArgumentTypeError:
            raise sim_error from None
        return text


def lab_source(args):
    """The lab's live source for `colo repl --lab`, or None without --lab.
    UsageError for options the lab cannot take."""
    if not getattr(args, "lab", False):
        return None
    clash = [name for name, given in (
        ("--transport tcp", getattr(args, "transport", "sim") == "tcp"),
        ("--proxy", getattr(args, "proxy", None)), ("--peer", getattr(args, "peer", None)),
        ("--attach", getattr(args, "attach", None))) if given]
    if clash:
        raise UsageError(f"--lab runs its own QEMU pair: it does not go with "
                         f"{', '.join(clash)}")
    from protocol.core import dialects
    if dialects.get(args.dialect) is not dialects.QEMU:     # what the lab's QEMU speaks
        raise UsageError(f"--lab is QEMU 7.2: it speaks --dialect qemu, not {args.dialect!r}")
    from colo_tui.lab import procs
    from colo_tui.lab.cli import lab_fault, resolve_net
    from colo_tui.lab.feed import LabSettings, lab_feed
    faults = []
    for spec in args.fault:
        try:
            faults.append(lab_fault(spec))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--fault {exc}") from None
    net = resolve_net(args.net, None)
    procs.install()       # the QEMUs die with the REPL, whatever ends it
    return lab_feed(LabSettings(
        checkpoint_delay_ms=args.checkpoint_delay or DEFAULT_DELAY_MS, net=net,
        faults=faults, client_every_s=args.client_every))
