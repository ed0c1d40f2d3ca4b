"""The exit codes every front end (the CLI, REPL scripts, the TUI's start-up) gives.

    0  success (also when the reader of stdout went away: `colo … | head`)
    1  a failure the command reports: a broken invariant, bytes a peer or a file
       got wrong, a file or port that cannot be used
    2  a usage error: an option, fault spec or number that does not follow the
       grammar (argparse's own errors, protocol.errors.UsageError)
    130 interrupted (Ctrl-C)
"""
from __future__ import annotations

import os
import sys

OK, FAILURE, USAGE, INTERRUPTED = 0, 1, 2, 130


def code_for(exc: BaseException) -> int:
    """The exit code for an error a command stops with (the same in every front end)."""
    from protocol.errors import ColoError, UsageError
    if isinstance(exc, UsageError):
        return USAGE
    if isinstance(exc, ColoError | OSError):
        return FAILURE
    if isinstance(exc, ValueError):      # a bad choice or value the parser let through
        return USAGE
    return FAILURE


def error_text(exc: BaseException) -> str:
    """One line for stderr: the OS's words for an OSError, the message otherwise."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc)


def quiet_broken_pipe() -> int:
    """stdout's reader went away (`| head`): point stdout at /dev/null so the flush at
    exit does not complain, and succeed, as `head` expects."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return OK
