"""`colo tui`: the Textual front end (run_app) and its command-line options."""
from __future__ import annotations

import argparse
import sys


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
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default: 1)")
    p.add_argument("--transport", default="sim", choices=("sim", "tcp"),
                   help="sim: the deterministic simulator (default); tcp: two processes")
    p.add_argument("--attach", default=None, metavar="HOST:PORT",
                   help="attach to a running node's control socket")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="open a recording (*.colo.jsonl) and step through it")
    p.add_argument("--proxy", default=None, metavar="SPEC",
                   help="sit between two real QEMUs (not in the TUI yet)")


def _unavailable(args) -> str | None:
    if getattr(args, "transport", "sim") not in (None, "sim"):
        return "--transport tcp"
    if getattr(args, "attach", None):
        return "--attach"
    if getattr(args, "proxy", None):
        return "--proxy"
    return None


def run_app(args) -> int:
    what = _unavailable(args)
    if what:
        print(f"colo tui: {what} is not available in the TUI yet: it drives the deterministic "
              "simulator only (use --transport sim, the default, or the REPL/node commands "
              "for live peers)", file=sys.stderr)
        return 2
    from protocol.sim.config import SimConfig

    from .app import ColoApp
    from .control import Controller
    try:
        controller = Controller(SimConfig(dialect=getattr(args, "dialect", "qemu") or "qemu",
                                          mode=getattr(args, "mode", "periodic") or "periodic",
                                          seed=getattr(args, "seed", 1) or 1))
        replay = getattr(args, "replay", None)
        if replay:
            controller.load_replay(replay)
    except (ValueError, OSError) as exc:
        print(f"colo tui: {exc}", file=sys.stderr)
        return 2
    ColoApp(controller).run()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="colo tui")
    add_arguments(parser)
    return run_app(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
