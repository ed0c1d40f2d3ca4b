"""`colo`: the one console script.  Imports UI toolkits lazily, per subcommand.

Exit codes (colo_tui.session.exitcodes, the same in every front end): 0 success; 1 a
failure the command reports (a broken invariant, bad bytes, a bad file); 2 a
usage error; 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys

from colo_tui.session import exitcodes
from protocol import TOOL
from protocol.errors import ColoError

VERSION = TOOL

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser(tui_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line; with `tui_only`, `colo tui`'s alone (the same parser
    for it, without importing every other subcommand's module: a faster start)."""
    p = _Parser(prog="colo", description="COLO testbed: QEMU's COLO checkpoint protocol, "
                "simulated, over TCP, and against real QEMU.")
    p.add_argument("--version", action="version", version=VERSION)
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    if tui_only:
        from colo_tui.cli import tui as tui_main
        tui_main.add_parser(sub)
        return p
    from colo_tui.cli import core as cli_core
    cli_core.add_parsers(sub)
    # subcommands whose parser lives in another module (none imports a toolkit at import)
    from colo_tui import repl
    from colo_tui.cli import export
    from colo_tui.cli import learn as learn_main
    from colo_tui.cli import node as cli_node
    from colo_tui.cli import qemu as cli_qemu
    from colo_tui.cli import template as cli_template
    from colo_tui.cli import tui as tui_main
    from colo_tui.lab import cli as lab_cli
    tui_main.add_parser(sub)
    from colo_tui.cli import lab_repl
    lab_repl.wrap(repl.add_parser(sub))
    learn_main.add_parser(sub)
    export.add_parser(sub)
    cli_node.add_parsers(sub)
    cli_qemu.add_parsers(sub)
    cli_template.add_parsers(sub)
    from colo_tui.cli import lab_tui
    lab_tui.wrap(lab_cli.add_parser(sub))
    return p


#: the commands whose failure to write their standard output (a full disk, a dead
#: terminal) is one line and exit 1: they write nothing else without naming the file
STDOUT_ERROR_COMMANDS = ("run", "explore", "compare-modes", "faults", "learn", "replay",
                         "decode", "respond", "export")


class _Tracked:
    """The standard output (or its binary buffer) for the STDOUT_ERROR_COMMANDS: passes
    everything through, and marks the OSError its own write or flush raised, so that
    main names the standard output for that error only.  An OSError without a file name
    comes from elsewhere too (EIO reading an input, ENOSPC from a semaphore): it was
    reported as 'cannot write the standard output'."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, data):
        try:
            return self._stream.write(data)
        except OSError as exc:
            exc.colo_stdout = True
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            exc.colo_stdout = True
            raise

    @property
    def buffer(self):
        return _Tracked(self._stream.buffer)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _stdout_failed(exc: OSError, argv: list[str]) -> bool:
    import errno
    return (bool(argv) and argv[0] in STDOUT_ERROR_COMMANDS
            and getattr(exc, "colo_stdout", False)
            and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:         # no need to build every subcommand's parser
        try:
            print(VERSION)
            sys.stdout.flush()
        except BrokenPipeError:
            return exitcodes.quiet_broken_pipe()
        return exitcodes.OK
    if not argv:
        argv = ["tui"]
    parser = build_parser(tui_only=argv[0] == "tui")
    stdout = sys.stdout
    if argv[0] in STDOUT_ERROR_COMMANDS:
        sys.stdout = _Tracked(stdout)     # (put back when main returns)
    try:
        return _main(parser, argv)
    finally:
        sys.stdout = stdout


def _main(parser, argv: list[str]) -> int:
    try:
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return exitcodes.USAGE
        if args.command != "tui":   # (`colo tui` tunes once its session is built)
            from protocol.drivers.memtune import tune_process
            tune_process()    # checkpoint-sized buffers reused, not re-faulted; a calmer GC
        code = int(func(args) or 0)
        sys.stdout.flush()    # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return exitcodes.quiet_broken_pipe()
    except OSError as exc:
        if not _stdout_failed(exc, argv):
            raise
        # (`colo run --json > /dev/full`: a traceback said it; the pending output goes
        # nowhere, so the flush at exit does not say it again)
        print(f"colo {argv[0]}: error: cannot write the standard output: "
              f"{exc.strerror or exc}", file=sys.stderr)
        exitcodes.quiet_broken_pipe()
        return exitcodes.FAILURE
    except ColoError as exc:
        print(f"colo: error: {exc}", file=sys.stderr)
        return exitcodes.code_for(exc)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
