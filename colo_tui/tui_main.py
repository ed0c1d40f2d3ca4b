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
    p.add_argument("--guest", default="model", choices=("model", "null"),
                   help="model (default): RAM, devices, disk and packets, so the heat map "
                        "and the buffered packets show; null: the control protocol alone")
    p.add_argument("--transport", default="sim", choices=("sim", "tcp"),
                   help="sim: the deterministic simulator (default); tcp: the two endpoints "
                        "over a real loopback TCP connection, through the uvloop engine")
    p.add_argument("--attach", nargs=2, default=None, metavar=("QMP_PRIMARY", "QMP_SECONDARY"),
                   help="watch and drive two running `colo node` processes (or QEMUs) "
                        "through their QMP sockets (unix:PATH or tcp:HOST:PORT)")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="open a recording (*.colo.jsonl) and step through it")
    p.add_argument("--proxy", nargs=2, default=None, metavar=("LISTEN", "CONNECT"),
                   help="sit between a real COLO primary and secondary (HOST:PORT each) "
                        "and show what crosses, decoded live")
    p.add_argument("--peer", default=None, metavar="LISTEN",
                   help="be the secondary of a real QEMU primary: listen on HOST:PORT "
                        "(its `migrate tcp:HOST:PORT` target), mirror the guest's RAM "
                        "and answer every checkpoint")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="with --proxy: inject this fault (KIND[=ARG]@POINT[#N])")


def make_live(args, config):
    """The live controller for --transport tcp / --proxy / --attach / --peer, or None."""
    from .live import LiveController
    from .live_sources import PeerFeed, ProxyFeed, QmpFeed, TcpPair
    if getattr(args, "peer", None):
        return LiveController(PeerFeed(config, args.peer))
    if getattr(args, "attach", None):
        return LiveController(QmpFeed(config, *args.attach))
    if getattr(args, "proxy", None):
        listen, connect = args.proxy
        return LiveController(ProxyFeed(config, listen, connect,
                                        getattr(args, "fault", None) or []))
    if getattr(args, "transport", "sim") == "tcp":
        return LiveController(TcpPair(config))
    return None


def run_app(args) -> int:
    from protocol.errors import ColoError
    from protocol.sim.config import SimConfig

    from .app import ColoApp
    from .control import Controller
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
        print(f"colo tui: {exc}", file=sys.stderr)
        return 2
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
