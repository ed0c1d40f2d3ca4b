"""`colo lab` in a terminal: the Textual app on the live pair (colo_tui/lab/feed.py),
through the one session interface, like `colo tui` on any other live source.

`colo lab --headless` (scripts, tests) and a `colo lab` whose stdin or stdout is
not a terminal keep colo_tui/lab/cli.py's own behaviour."""
from __future__ import annotations

import sys
from pathlib import Path


def wrap(parser) -> None:
    """Route `colo lab` through here (the lab package cannot import the TUI)."""
    from colo_tui.lab import cli as lab_cli
    parser.set_defaults(func=run_lab, headless_func=lab_cli.cmd_lab)
    parser.add_argument("--client-every", type=_seconds, default=0.5, metavar="SECONDS",
                        help="in the TUI: the echo client's pace, one request every "
                             "SECONDS (default 0.5)")


def _seconds(text: str) -> float:
    from colo_tui.session.argtypes import nonneg_float
    value = nonneg_float(text)
    if not 0.05 <= value <= 60:
        import argparse
        raise argparse.ArgumentTypeError(f"{text}: between 0.05 and 60 seconds")
    return value


#: a live pair sends tens of events a second (packets, verdicts, QMP events): the view
#: follows at this many steps a second, so it keeps up without spinning
LAB_STEPS_PER_S = 500


def lab_app(controller, **kw):
    """The Textual app on a lab session (real or, in tests, the fake)."""
    from colo_tui.tui.app import ColoApp
    from colo_tui.tui.bridge import SPEEDS
    app = ColoApp(controller, **kw)
    app.bridge.speed_index = SPEEDS.index(LAB_STEPS_PER_S)
    return app


def run_lab(args) -> int:
    # --pair-fault is a scripted experiment that prints JSON, in a terminal too (it used
    # to open the TUI there, the fault never armed)
    if (args.headless or args.pair_fault is not None
            or not (sys.stdin.isatty() and sys.stdout.isatty())):
        return args.headless_func(args)
    if args.failover:
        print("colo lab: error: --failover needs --headless (in the TUI: kill the primary, "
              "then `failover secondary`, keys k and x)", file=sys.stderr)
        return 2
    from colo_tui.lab.cli import checked_net
    net = checked_net(args)
    if net is None:
        return 2
    from colo_tui.lab import procs
    from colo_tui.lab.feed import LabSettings, lab_feed
    from colo_tui.session import config_file
    from colo_tui.session.lifecycle import SessionGuard
    from colo_tui.session.live import live_controller
    from colo_tui.tui.app import ColoApp
    procs.install()       # the QEMUs die with the lab, whatever ends it
    feed = lab_feed(LabSettings(checkpoint_delay_ms=args.checkpoint_delay, net=net,
                                faults=list(args.fault), client_every_s=args.client_every,
                                keep=args.keep,
                                capture=Path(args.capture) if args.capture else None))
    controller = live_controller(feed)
    user_config = config_file.load(binding_ids={b.id for b in ColoApp.BINDINGS if b.id})
    app = lab_app(controller, user_config=user_config)
    saved: list[str] = []
    with SessionGuard(controller, on_signal=app.end_on_signal, report=saved.append) as guard:
        app.run()
    for path in saved:
        print(f"colo lab: recording saved: {path}", file=sys.stderr)
    if saved and (note := getattr(controller, "recording_note", None)):
        print(f"colo lab: note: {note}", file=sys.stderr)
    if args.keep and feed.work is not None:
        print(f"colo lab: work directory kept: {feed.work}", file=sys.stderr)
    if feed.error:
        print(f"colo lab: error: {feed.error}", file=sys.stderr)
    if guard.signalled is not None:
        return 128 + guard.signalled
    return app.return_code or (1 if feed.error else 0)
