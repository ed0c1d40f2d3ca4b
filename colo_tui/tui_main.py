"""`colo tui`: the Textual front end (run_app) and its command-line options."""
from __future__ import annotations

import argparse
import sys

from . import exitcodes
from .argtypes import add_guest_argument, fault_spec, host_port, retype, seed_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tui", help="the interactive Textual testbed (the default)",
                              description="Watch and drive a COLO pair: ladder, sides, "
                                          "failover, faults, time travel.")
    add_arguments(p)
    p.set_defaults(func=run_app)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dialect", default="qemu", choices=("qemu", "v11", "prototype"),
                   help="control-message dialect (default: qemu)")
    p.add_argument("--mode", default="periodic", choices=("periodic", "hybrid"),
                   help="COLO mode (default: periodic)")
    p.add_argument("--seed", type=seed_int, default=1, help="simulation seed (default: 1)")
    add_guest_argument(p)
    p.add_argument("--attach", nargs=2, default=None, metavar=("QMP_PRIMARY", "QMP_SECONDARY"),
                   help="watch and drive two running `colo node` processes (or QEMUs) "
                        "through their QMP sockets (unix:PATH or tcp:HOST:PORT)")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="open a recording (*.colo.jsonl) and step through it")
    from .live import add_live_arguments
    add_live_arguments(p)
    retype(p, "--proxy", host_port)     # refused up front, as a usage error
    retype(p, "--peer", host_port)
    retype(p, "--fault", fault_spec)


def run_app(args) -> int:
    from protocol.errors import ColoError
    from protocol.sim.config import SimConfig

    from .app import ColoApp
    from .control import Controller
    from .live import make_live
    try:
        config = SimConfig(dialect=getattr(args, "dialect", "qemu") or "qemu",
                           mode=getattr(args, "mode", "periodic") or "periodic",
                           seed=getattr(args, "seed", 1) or 1,
                           guest=getattr(args, "guest", "model") or "model")
        controller = make_live(args, config)
        if controller is None:
            controller = Controller(config)
            replay = getattr(args, "replay", None)
            if replay:
                controller.load_replay(replay)
    except (ValueError, OSError, ColoError) as exc:
        print(f"colo tui: error: {exitcodes.error_text(exc)}", file=sys.stderr)
        return exitcodes.code_for(exc)
    try:
        ColoApp(controller).run()
    finally:
        close = getattr(controller, "close", None)
        if close is not None:
            close()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="colo tui")
    add_arguments(parser)
    return run_app(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
