"""The simulated session's settings, shared by `colo tui` and `colo repl`.

What `colo run` can set, the interactive UIs can set too: on the command line
here, and during a session with the registry's `set` command (which restarts
the session, as a changed setting makes another session).  An interactive
session is long by default (`INTERACTIVE_CHECKPOINTS`): it does not end after
three checkpoints.
"""
from __future__ import annotations

import argparse

from colo_tui.session.argtypes import (
    arbiter_ms,
    checkpoint_delay_ms,
    fraction,
    nonneg_float,
)
from protocol.argtypes import int_in

INTERACTIVE_CHECKPOINTS = 100
#: the longest interactive session: it keeps every event, for time travel, the log and
#: the ladder (about 150 KB a checkpoint with the guest model: 1.5 GB at this length);
#: `colo run` runs longer sessions without keeping them
INTERACTIVE_MAX_CHECKPOINTS = 10_000
LENGTH_BOUND_TEXT = (f"an interactive session keeps every event (time travel, the log): "
                     f"at most {INTERACTIVE_MAX_CHECKPOINTS:,} checkpoints; `colo run` runs "
                     "longer sessions")


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    """The live-session options the TUI and the REPL share (light: parsing `--help`
    must not load the live machinery)."""
    p.add_argument("--transport", default="sim", choices=("sim", "tcp"),
                   help="sim: the deterministic simulator (default); tcp: the two endpoints "
                        "over a real loopback TCP connection, through the uvloop engine")
    p.add_argument("--proxy", nargs=2, default=None, metavar=("LISTEN", "CONNECT"),
                   help="sit between a real COLO primary and secondary (HOST:PORT each) "
                        "and show what crosses, decoded live")
    p.add_argument("--peer", default=None, metavar="LISTEN",
                   help="be the secondary of a real QEMU primary: listen on HOST:PORT "
                        "(its `migrate tcp:HOST:PORT` target), mirror the guest's RAM "
                        "and answer every checkpoint")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="arm this fault (KIND[=ARG]@POINT[#N]; repeatable): in the "
                        "simulator, or with --proxy on the live traffic")


def add_session_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session settings (the simulator)")
    g.add_argument("--checkpoints", type=int_in(1, INTERACTIVE_MAX_CHECKPOINTS),
                   default=INTERACTIVE_CHECKPOINTS, metavar="N",
                   help="the session's length in checkpoints (default "
                        f"{INTERACTIVE_CHECKPOINTS}, at most {INTERACTIVE_MAX_CHECKPOINTS:,}: "
                        "the session keeps every event; `colo run` goes further)")
    g.add_argument("--checkpoint-delay", type=checkpoint_delay_ms, default=None, metavar="MS",
                   help="x-checkpoint-delay (0 … 4294967295, a uint32 as in QEMU; the guest "
                        "model takes at most 3600000; default: the dialect's)")
    g.add_argument("--load-ms", type=nonneg_float, default=0.0, metavar="MS",
                   help="time the SVM takes to load a checkpoint")
    g.add_argument("--no-arbiter", action="store_true",
                   help="no external manager: a silent peer hangs COLO forever (B13)")
    g.add_argument("--arbiter-ms", type=arbiter_ms, default=1000.0, metavar="MS",
                   help="how long the external manager waits before it fences (1 … 1000000000, "
                        "default 1000)")
    g.add_argument("--divergence", type=fraction, default=0.0, metavar="X",
                   help="hybrid mode: the fraction of SVM answers that differ from the PVM's")
    g.add_argument("--svm-output-lost", action="store_true",
                   help="hybrid mode: the SVM's answers never reach colo-compare")
    g.add_argument("--xbzrle", action="store_true",
                   help="send changed pages XBZRLE-encoded (guest model)")
    g.add_argument("--strict", action="store_true",
                   help="do not reproduce QEMU 7.2's quirks")


def wants_live(args) -> bool:
    """The options ask for a live session (real peers), not the simulator."""
    get = lambda name, default=None: getattr(args, name, default)   # noqa: E731
    return bool(get("proxy") or get("peer") or get("attach")
                or get("transport", "sim") == "tcp")


def config_from(args):
    """The SimConfig the options describe (faults from --fault; dialect, mode, seed and
    guest from the UI's own options)."""
    from protocol.sim.config import SimConfig
    get = lambda name, default=None: getattr(args, name, default)   # noqa: E731
    live = wants_live(args)
    if live and get("fault") and not get("proxy"):
        raise ValueError("--fault arms a fault in the simulator or, with --proxy, on live "
                         "traffic; a --transport tcp, --peer or --attach session has no "
                         "fault plan (inject faults with `colo proxy --fault`)")
    return SimConfig(
        dialect=get("dialect") or "qemu", mode=get("mode") or "periodic",
        seed=1 if get("seed") is None else int(get("seed")),
        guest=get("guest") or "model",
        checkpoints=get("checkpoints") or INTERACTIVE_CHECKPOINTS,
        faults=[] if live else list(get("fault") or []),
        checkpoint_delay_ms=get("checkpoint_delay"), load_ms=get("load_ms") or 0.0,
        arbiter=not get("no_arbiter"), arbiter_ms=get("arbiter_ms", 1000.0),
        divergence=get("divergence") or 0.0, svm_output_lost=bool(get("svm_output_lost")),
        xbzrle=bool(get("xbzrle")), faithful=not get("strict"))


#: `set NAME VALUE` in the REPL and the palette: (SimConfig field, argument kind, help)
SETTINGS = {
    "checkpoints": ("checkpoints", "length", "the session's length in checkpoints"),
    "load-ms": ("load_ms", "ms", "time the SVM takes to load a checkpoint"),
    "arbiter": ("arbiter", "onoff", "the external manager on or off"),
    "arbiter-ms": ("arbiter_ms", "arbiter-ms", "how long the external manager waits"),
    "divergence": ("divergence", "fraction", "hybrid: fraction of SVM answers that differ"),
    "svm-output-lost": ("svm_output_lost", "onoff", "hybrid: the SVM's answers are lost"),
    "xbzrle": ("xbzrle", "onoff", "XBZRLE page encoding"),
}
