"""SessionGuard: a signal that comes while the session is being completed (the
recording's trailer being written) lets it finish.  Two signals close together
(a closed terminal's SIGHUP and a supervisor's SIGTERM) cut the recording: the
REPL's handler raised SystemExit inside the first one's trailer, and after the
TUI's app had ended the old handlers (SIG_DFL) were back before the trailer was
written, so the second signal killed the process there."""
import os
import signal

import pytest

from colo_tui.session.lifecycle import SessionGuard


class _Closing:
    """A controller whose close is interrupted by a signal half-way."""

    recording_path = "x.colo.jsonl"

    def __init__(self) -> None:
        self.log: list[str] = []

    def close(self) -> None:
        self.log.append("trailer begins")
        os.kill(os.getpid(), signal.SIGTERM)      # (its handler runs before the next line)
        self.log.append("trailer ends")


@pytest.fixture
def old_sigterm():
    """A harmless handler in place of SIG_DFL, that says if it ran."""
    ran: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, _f: ran.append(signum))
    yield ran
    signal.signal(signal.SIGTERM, before)


def test_a_signal_during_the_repls_finish_does_not_cut_it(old_sigterm):
    c = _Closing()
    with pytest.raises(SystemExit) as exc, SessionGuard(c, signals=(signal.SIGTERM,)):
        os.kill(os.getpid(), signal.SIGTERM)
    assert exc.value.code == 128 + signal.SIGTERM
    assert c.log == ["trailer begins", "trailer ends"]


def test_a_signal_while_the_tuis_session_is_completed_goes_to_the_guard(old_sigterm):
    c = _Closing()
    guard = SessionGuard(c, signals=(signal.SIGTERM,), on_signal=lambda _s: None)
    with guard:
        pass                                        # the app ran and ended
    assert c.log == ["trailer begins", "trailer ends"]
    assert not old_sigterm, "the old handler (SIG_DFL for the app) got the signal"
    assert guard.signalled == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not guard._handler     # restored after
