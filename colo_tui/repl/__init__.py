"""`colo repl`: a prompt-toolkit REPL over the command registry.

prompt_toolkit is imported only when an interactive session starts, so
registering the subcommand (``add_parser``) costs nothing.
"""
from __future__ import annotations

from colo_tui.session.argtypes import (
    QmpPair,
    add_guest_argument,
    fault_spec,
    host_port,
    path_of,
    qmp_address,
    retype,
    seed_int,
)


def add_arguments(p) -> None:
    p.add_argument("-f", "--file", type=path_of("the script's file name"), metavar="SCRIPT",
                   default=None,
                   help="run the commands in SCRIPT (no prompts); exit non-zero at the "
                        "first failing line")
    p.add_argument("--dialect", default="qemu", help="qemu (default), v11 or prototype")
    p.add_argument("--mode", default="periodic", help="periodic (default) or hybrid")
    p.add_argument("--seed", type=seed_int, default=1, help="simulation seed (default 1)")
    add_guest_argument(p)
    p.add_argument("--attach", nargs=2, type=qmp_address, action=QmpPair, default=None,
                   metavar=("QMP_PRIMARY", "QMP_SECONDARY"),
                   help="drive two live `colo node` processes (or QEMUs) through their QMP "
                        "sockets (unix:PATH, tcp:HOST:PORT or HOST:PORT) instead of a "
                        "simulation. QMP counts no checkpoints: the primary's are counted "
                        "from the attach on, one per STOP then RESUME while in COLO (QEMU "
                        "7.2 stops the VM for each checkpoint; so does `colo node`), so "
                        "`run N` ends after N")
    from colo_tui.session.options import add_live_arguments
    add_live_arguments(p)
    retype(p, "--proxy", host_port)     # refused up front, as a usage error
    retype(p, "--peer", host_port)
    retype(p, "--fault", fault_spec)
    from colo_tui.session.options import add_session_arguments
    add_session_arguments(p)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "repl", help="interactive command line (also scripts: -f SCRIPT or stdin)",
        description="A REPL over the simulated COLO session. Tab completes commands, "
                    "messages, fault specs and files; Ctrl-R searches the history. "
                    "With -f SCRIPT or piped stdin, runs the commands and exits non-zero "
                    "at the first error.")
    add_arguments(p)
    p.set_defaults(func=run_repl)
    return p


def run_repl(args) -> int:
    from colo_tui.repl.session import run_repl as _run
    return _run(args)
