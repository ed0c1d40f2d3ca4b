"""CLI glue for ``colo node primary|secondary`` and ``colo bench engine``.

    colo node secondary --listen 127.0.0.1:7101 --qmp unix:/tmp/s.qmp
    colo node primary --connect 127.0.0.1:7101 --qmp unix:/tmp/p.qmp --checkpoint-delay 100

Also runnable as ``python -m colo_tui.cli.node node secondary …``.  Bad
arguments → one line on stderr and exit 2; a port in use, a refused
connection or a guest too big to map → one line and exit 1 (the exit codes of
colo_tui.session.exitcodes, as `colo run`'s); never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from colo_tui.session.argtypes import (
    checkpoint_delay_ms,
    host_port,
    nonempty_path,
    nonneg_int,
    positive_int,
    ram_mib,
    seed_int,
    workloads,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"colo: error: {message}\n")


def _qmp(text: str) -> str:
    from protocol.drivers.qmp import parse_address
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--qmp", type=_qmp, help="QMP control socket: unix:PATH or tcp:HOST:PORT")
    from protocol.core.dialects import QEMU_STREAM_VERSION
    p.add_argument("--dialect", choices=("qemu", "v11", "prototype"), default="qemu",
                   help="control-message dialect (default: qemu: COLOMessage of QEMU "
                        f"2.8 … 10.x; its migration stream and guest are QEMU "
                        f"{QEMU_STREAM_VERSION}'s)")
    p.add_argument("--mode", choices=("periodic", "hybrid"), default=None,
                   help="hybrid: the SVM runs between checkpoints, as in every QEMU "
                        "release (QMP RESUME when COLO starts, STOP/RESUME around each "
                        "checkpoint, query-status \"running\"); periodic: the Remus-style "
                        "mode of the v11 series (the model's SVM waits paused between "
                        "checkpoints; its QMP still shows 7.2's run states). "
                        "Default: hybrid for the qemu dialect, periodic for v11 and "
                        "prototype; both sides must agree")
    p.add_argument("--checkpoint-delay", type=checkpoint_delay_ms, metavar="MS",
                   help="x-checkpoint-delay (default: the dialect's)")
    p.add_argument("--checkpoints", type=positive_int, metavar="N",
                   help="exit after N committed checkpoints (default: run until told)")
    p.add_argument("--guest", choices=("null", "model", "mirror"), default="null",
                   help="null: the protocol alone; model: the testbed's guest model; "
                        "mirror (secondary, qemu): keep the RAM a real QEMU primary sends")
    p.add_argument("--ram-mib", type=ram_mib, default=16, metavar="MIB",
                   help="the model guest's RAM, 1 … 65536 (default 16)")
    p.add_argument("--workload", default="toggle", choices=workloads(), metavar="NAME",
                   help="the guest's workload (model, --template): %(choices)s")
    p.add_argument("--seed", type=seed_int, default=1)
    p.add_argument("--load-ms", type=nonneg_int, default=0,
                   help="how long the secondary takes to load a checkpoint")
    p.add_argument("--save-ms", type=nonneg_int, default=0,
                   help="primary, qemu dialect: how long it takes to save the device "
                        "state after the RAM part (QEMU's separate write; with --nagle: its "
                        "first stall); keep it below --heartbeat-ms")
    p.add_argument("--record", type=nonempty_path, metavar="FILE",
                   help="write the event stream (JSON Lines)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --record FILE")
    p.add_argument("--log-json", action="store_true", help="log JSON lines, not text")
    p.add_argument("--heartbeat-ms", type=positive_int, metavar="T",
                   help="beyond QEMU: fail over after T ms of peer silence (default off)")
    p.add_argument("--progress-timeout-ms", type=nonneg_int, metavar="T", default=60000,
                   help="beyond QEMU: end COLO with an error when the peer completes no "
                        "record, message or 64 KiB for T ms inside the initial migration, a "
                        "RAM part or a blob (default 60000; 0: wait forever, as QEMU)")
    p.add_argument("--close-on-error", action="store_true",
                   help="beyond QEMU: close the COLO connection when COLO fails")
    p.add_argument("--nagle", action="store_true",
                   help="write as QEMU does: Nagle on, one write per message or payload")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own loop")
    p.set_defaults(_colo_run=run_node, func=run_node)


def add_parsers(subparsers) -> None:
    """Register ``node`` (``primary``, ``secondary``) on the main CLI."""
    node = subparsers.add_parser("node", help="run one COLO role in this process")
    roles = node.add_subparsers(dest="role", metavar="{primary,secondary}")
    roles.required = True
    sec = roles.add_parser("secondary", help="listen for the primary")
    sec.add_argument("--listen", type=host_port, required=True, metavar="HOST:PORT")
    _common(sec)
    pri = roles.add_parser("primary", help="connect to the secondary and start COLO")
    pri.add_argument("--connect", type=host_port, required=True, metavar="HOST:PORT")
    pri.add_argument("--template", type=nonempty_path, metavar="FILE", nargs="?", const="",
                     help="feed a real QEMU 7.2 secondary: the guest template's RAM layout, "
                          "initial migration and device blobs, RAM pages from the model "
                          "(FILE omitted: the default template; make one with `colo "
                          "template CAPTURE`)")
    pri.add_argument("--mutate", metavar="NAME",
                     help="with --template: malform checkpoint --mutate-at's RAM part or "
                          "device blob (see `colo fuzz-secondary --list`)")
    pri.add_argument("--mutate-at", type=positive_int, default=1, metavar="N")
    _common(pri)


def run_node(args) -> int:
    from colo_tui.session import exitcodes
    from colo_tui.session.argtypes import record_target_refused
    from protocol.drivers.node import Node, NodeError
    from protocol.errors import ColoError
    if (refused := record_target_refused(args)) is not None:
        return refused
    if args.mode is None:
        from protocol.core import dialects
        args.mode = dialects.get(args.dialect).release_mode
    try:
        guest_obj = _template_guest(args)
        node = Node(args.role, dialect=args.dialect, mode=args.mode,
                    listen=getattr(args, "listen", None), connect=getattr(args, "connect", None),
                    qmp=args.qmp, checkpoint_delay_ms=args.checkpoint_delay,
                    checkpoints=args.checkpoints, guest=args.guest, ram_mib=args.ram_mib,
                    workload=args.workload, seed=args.seed, record=args.record,
                    log_json=args.log_json, heartbeat_ms=args.heartbeat_ms, nagle=args.nagle,
                    uvloop=False if args.no_uvloop else None, load_ms=args.load_ms,
                    save_ms=args.save_ms, progress_timeout_ms=args.progress_timeout_ms,
                    close_on_error=args.close_on_error, guest_obj=guest_obj)
    except NodeError as exc:
        print(f"colo: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, ColoError) as exc:
        # as `colo run` exits: 2 for a bad option, 1 for a guest it cannot map
        print(f"colo: error: {exc}", file=sys.stderr)
        return exitcodes.code_for(exc)
    try:
        return node.run()
    except NodeError as exc:
        print(f"colo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _template_guest(args):
    """The TemplateGuest of ``--template`` (None without it)."""
    tpl_path = getattr(args, "template", None)
    if tpl_path is None:
        if getattr(args, "mutate", None):
            raise ValueError("--mutate needs --template")
        return None
    from protocol.core import dialects
    if not dialects.get(args.dialect).real_qemu:
        raise ValueError("--template feeds a real QEMU 7.2 secondary: it needs --dialect qemu")
    from protocol.errors import ColoError
    from protocol.guest.template import TemplateError, TemplateGuest
    from protocol.record.template_source import load_template
    try:
        template = load_template(tpl_path or None)
    except TemplateError as exc:
        # a file it cannot use (missing, a directory, not a template) is a failure, 1,
        # as colo fuzz-secondary's --template (2323082) and every command's input file:
        # TemplateError is a ValueError, which exited 2, the usage error's code
        raise ColoError(str(exc)) from None
    return TemplateGuest(template, seed=args.seed,
                         workload=args.workload, mode=args.mode, mutate=args.mutate,
                         mutate_at=args.mutate_at)


def run_bench_engine(argv) -> int:
    from protocol.bench.engine import main
    return main(list(argv) if argv is not None else None)


def main(argv=None) -> int:
    parser = _Parser(prog="colo")
    sub = parser.add_subparsers(dest="command", metavar="{node,bench}")
    sub.required = True
    add_parsers(sub)
    bench = sub.add_parser("bench", help="benchmarks")
    bench.add_argument("what", choices=("engine",))
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return run_bench_engine(args.rest)
    return args._colo_run(args)


if __name__ == "__main__":
    sys.exit(main())
