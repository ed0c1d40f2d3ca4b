"""`colo tui`: the Textual front end (run_app) and its command-line options."""
from __future__ import annotations

import argparse
import os
import sys

from colo_tui.session import exitcodes
from colo_tui.session.argtypes import (
    QmpPair,
    add_guest_argument,
    fault_spec,
    host_port,
    nonempty_path,
    qmp_address,
    retype,
    seed_int,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tui", help="the interactive Textual testbed (the default)",
                              description="Watch and drive a COLO pair: ladder, sides, "
                                          "failover, faults, time travel.")
    add_arguments(p)
    p.set_defaults(func=run_app)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dialect", default="qemu", choices=("qemu", "v11", "prototype"),
                   help="control-message dialect (default: qemu: COLOMessage of QEMU "
                        "2.8 … 10.x; its migration stream and guest model are QEMU "
                        "7.2's)")
    p.add_argument("--mode", default="periodic", choices=("periodic", "hybrid"),
                   help="COLO mode (default: periodic)")
    p.add_argument("--seed", type=seed_int, default=1, help="simulation seed (default: 1)")
    add_guest_argument(p)
    p.add_argument("--attach", nargs=2, type=qmp_address, action=QmpPair, default=None,
                   metavar=("QMP_PRIMARY", "QMP_SECONDARY"),
                   help="watch and drive two running `colo node` processes (or QEMUs) "
                        "through their QMP sockets (unix:PATH, tcp:HOST:PORT or HOST:PORT); "
                        "the primary's checkpoints are counted from the attach on, one per "
                        "QMP STOP then RESUME while in COLO (QMP counts none)")
    p.add_argument("--replay", type=nonempty_path, default=None, metavar="FILE",
                   help="open a recording (*.colo.jsonl) and step through it")
    p.add_argument("--record-dir", type=nonempty_path, default=None, metavar="DIR",
                   help="where `r` writes recordings (default: the user's data directory, "
                        "e.g. ~/.local/share/colo-testbed/recordings; or $COLO_RECORDINGS_DIR)")
    from colo_tui.session.options import add_live_arguments
    add_live_arguments(p)
    retype(p, "--proxy", host_port)     # refused up front, as a usage error
    retype(p, "--peer", host_port)
    retype(p, "--fault", fault_spec)
    from colo_tui.session.options import add_session_arguments
    add_session_arguments(p)


def has_terminal() -> bool:
    """Whether stdin and stdout are a terminal (a headless harness replaces this)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def run_app(args) -> int:
    """`colo tui`.  The cyclic garbage collector does not run from here until the
    first frame is painted: start-up (Textual's import, the app's, its first
    layout) makes next to no cyclic garbage, and the collector's passes over the
    growing heap of new modules cost several ms of it."""
    import gc
    if not gc.isenabled():
        return _run_app(args, None)
    gc.disable()
    try:
        return _run_app(args, gc.enable)
    finally:
        gc.enable()


def _run_app(args, after_first_frame) -> int:
    import dataclasses

    from colo_tui.session.options import config_from, wants_live
    from colo_tui.tui.app import ColoApp
    from protocol.errors import is_user_error

    def tune():               # checkpoint-sized buffers reused, not re-faulted; a calmer GC
        from protocol.drivers.memtune import tune_process
        tune_process()

    try:
        config = config_from(args)
        from protocol.sim.config import check_checkpoint_delay
        check_checkpoint_delay(config.checkpoint_delay_ms, config.guest)
        if config.faults:       # checked now, before the terminal is taken; the other
            # settings were checked by their argument types, and whatever else
            # building the session refuses ends the app with the same message
            from protocol.sim.core import Simulation
            Simulation(dataclasses.replace(config, guest="null"))
        controller, rec = None, None
        live, replay = wants_live(args), getattr(args, "replay", None)
        if live or replay:                   # built now (the simulator's: after a frame)
            tune()
        if live:
            from colo_tui.session.live import make_live
            controller = make_live(args, config)
        if controller is None and replay:
            from colo_tui.session.control import Controller
            controller = Controller(config)
            rec = controller.load_replay(replay)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"colo tui: error: {exitcodes.error_text(exc)}", file=sys.stderr)
        return exitcodes.code_for(exc)
    if not has_terminal():
        print("colo tui: error: the TUI needs a terminal on stdin and stdout (for a "
              "script: colo repl -f FILE, or colo run)", file=sys.stderr)
        if controller is not None:
            controller.close()
        return exitcodes.USAGE
    from colo_tui.session import config_file
    from colo_tui.session.lifecycle import SessionGuard
    user_config = config_file.load(binding_ids={b.id for b in ColoApp.BINDINGS if b.id})
    saved = []

    def start():   # the simulator's session (and its guest model), after the first frame
        tune()
        from colo_tui.session.control import Controller
        return Controller(config)

    guard = SessionGuard(controller, report=saved.append)
    app = ColoApp(controller, record_dir=getattr(args, "record_dir", None),
                  user_config=user_config, start=None if controller is not None else start,
                  on_start=lambda c: setattr(guard, "controller", c),
                  after_first_frame=after_first_frame)
    if rec is not None and rec.cut:       # said before the first step, as `colo replay` does
        from colo_tui.commands.handlers import cut_note
        app.bridge.notice = "⚠ " + cut_note(rec).strip()
    guard.on_signal = app.end_on_signal
    with guard:
        app.run()
    for path in saved:                 # after the terminal is restored: the user sees it
        _say(f"colo tui: recording saved: {path}")
    if saved and (note := getattr(guard.controller, "recording_note", None)):
        _say(f"colo tui: note: {note}")
    if guard.signalled is not None:
        return 128 + guard.signalled
    return app.return_code or 0


def _say(text: str) -> None:
    """A line on stderr, unless the terminal has gone (closed under the app): then
    nobody is there to read it, and the output is dropped.  Printed to the closed
    terminal, it raised, and the app that had ended cleanly on the SIGHUP exited 1
    ('lost sys.stderr'), not 129."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        devnull = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
        sys.stdout = sys.stderr = devnull


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="colo tui")
    add_arguments(parser)
    return run_app(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
