"""Errors of the protocol core.

h11's split: a *local* error is something this side did wrong (or was asked to
do in the wrong state); a *remote* error is something the peer sent.  Both
name the machine state, the offending input and, where it helps, a hint.

Every error the testbed raises on purpose derives from ``ColoError`` and carries the
user-error marker: ``user_error = True`` says a user's input, file, command, setting
or peer caused it, so a front end prints its message (no traceback).  The UIs' guards
ask ``is_user_error(exc)``; they never list exception classes nor match their names.
"""
from __future__ import annotations

from typing import ClassVar


class ColoError(Exception):
    """Base class of every error the testbed raises on purpose."""

    #: a user's input, file, command, setting or peer caused it: shown, no traceback
    user_error: ClassVar[bool] = True


#: what Python itself raises for a user's input: a file or port that cannot be used
#: (OSError), a value or choice that does not parse (ValueError)
_USER_BUILTINS = (OSError, ValueError)


def is_user_error(exc: BaseException) -> bool:
    """Whether a front end reports `exc` in one line instead of a traceback: a marked
    error (``user_error``), or a builtin error a user's input raises."""
    marked = getattr(exc, "user_error", None)
    if marked is not None:
        return bool(marked)
    return isinstance(exc, _USER_BUILTINS)


class ProtocolError(ColoError):
    def __init__(self, message: str, *, state: str | None = None,
                 offending: object = None, hint: str | None = None) -> None:
        self.message = message
        self.state = state
        self.offending = offending
        self.hint = hint
        text = message if not hint else f"{message}: {hint}"
        super().__init__(text)


class LocalProtocolError(ProtocolError):
    """This side was asked to do something its state does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something this side cannot accept."""


class DecodeError(RemoteProtocolError):
    """The bytes themselves are malformed (range, truncation, framing)."""


class UsageError(ColoError, ValueError):
    """What a user typed does not follow the grammar (an option, a fault spec, a
    number): every front end exits 2 for it, as for argparse's own errors."""


class FaultSpecError(UsageError):
    """A fault spec that does not parse; the message lists what is valid."""


class RecordingError(ColoError, ValueError):
    """A recording that is too new, truncated or corrupt; names the line."""


class LimitError(DecodeError):
    """Well-formed input beyond a bound; `limit` names the bound that was hit."""

    def __init__(self, message: str, *, limit: str, **kw) -> None:
        self.limit = limit
        super().__init__(message, **kw)


class QmpCommandError(ColoError):
    """An error a QMP command returns (class and description as QEMU's)."""

    def __init__(self, desc: str, error_class: str = "GenericError") -> None:
        self.desc = desc
        self.error_class = error_class
        super().__init__(desc)


class GuestError(ColoError, ValueError):
    """The guest cannot be built as asked (e.g. more RAM than this machine can map)."""


class OutputFileError(ColoError, ValueError):
    """An output file that would destroy what a user owns (an existing file without
    --force, or one of the command's own inputs); names the path."""
