"""How an interactive session ends, and where its recordings go.

Every way out of the TUI or the REPL — quit, the palette, ctrl+c, SIGTERM,
SIGHUP, a crash, the interpreter exiting — ends in `SessionGuard.finish`,
which closes the controller: a recording in progress gets its `stop` trailer
and is closed, a live source is stopped.  `finish` runs once, whichever way
comes first.

Recordings a user starts without naming a file go to the user's data
directory (platformdirs: ``~/.local/share/colo-testbed/recordings`` on Linux),
never into the repository's golden library.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from pathlib import Path

APP_NAME = "colo-testbed"
#: the signals after which a session still ends cleanly (SIGINT: ctrl+c outside raw mode)
END_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP", "SIGINT")
                    if hasattr(signal, n))


def recordings_dir() -> Path:
    """Where a recording goes when the user names no file: $COLO_RECORDINGS_DIR, or
    the user's data directory.  Created on first use."""
    env = os.environ.get("COLO_RECORDINGS_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs
        path = platformdirs.user_data_path(APP_NAME) / "recordings"
    _make_dir(path)
    return path


def _make_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():     # mkdir would say only "File exists"
        import errno
        raise NotADirectoryError(errno.ENOTDIR, "the recordings directory is not a "
                                 "directory (a file of that name exists)", str(folder))
    folder.mkdir(parents=True, exist_ok=True)


def new_recording_path(config, prefix: str, directory: str | os.PathLike | None = None) -> Path:
    """A fresh file name for a recording of `config` (never an existing file)."""
    folder = Path(directory).expanduser() if directory else recordings_dir()
    _make_dir(folder)
    k = 1
    while (path := folder / f"{prefix}-{config.dialect}-{config.mode}-seed{config.seed}-{k}"
                             ".colo.jsonl").exists():
        k += 1
    return path


class SessionGuard:
    """Closes a controller exactly once, however the session ends.

    As a context manager it installs handlers for SIGTERM, SIGHUP and SIGINT
    (main thread only).  With `on_signal` (the TUI: it asks its app to exit) the
    handler only calls it, and the session finishes when the guard exits, after
    the app: a handler runs between any two bytecodes, possibly in the middle of
    a step that is writing its events, and a trailer written there cut the
    recording or put events after its stop step.  Without it, or when it returns
    False (the REPL's, when no prompt is running), the handler finishes the
    session and raises SystemExit(128 + signum).  An atexit hook covers the rest.
    """

    def __init__(self, controller, *, on_signal=None, signals=END_SIGNALS,
                 report=None) -> None:
        self.controller = controller
        self.on_signal = on_signal
        self.signals = signals
        self.report = report              # called with the saved path, if any
        self._lock = threading.Lock()
        self._done = False
        self._old: dict[int, object] = {}
        self.signalled: int | None = None

    def finish(self) -> str | None:
        """Stop the recording (trailer, close) and the live source; once only."""
        with self._lock:
            if self._done:
                return None
            self._done = True
        if self.controller is None:       # a deferred session that never started
            return None
        path = getattr(self.controller, "recording_path", None)
        close = getattr(self.controller, "close", None)
        try:
            if close is not None:
                close()
            else:
                self.controller.record_stop()
        except Exception as exc:          # noqa: BLE001 - report, never lose the exit path
            print(f"colo: while closing the session: {exc}", file=sys.stderr)
        if path and self.report is not None:
            self.report(path)
        return path

    def _handler(self, signum, _frame=None) -> None:
        self.signalled = signum
        if self._done:        # the session is being completed (or is): let it finish. A
            return            # SystemExit raised from here cut the trailer being written
        if self.on_signal is not None and self.on_signal(signum) is not False:
            return
        self.finish()
        raise SystemExit(128 + signum)

    def __enter__(self) -> SessionGuard:
        atexit.register(self.finish)
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *_exc) -> None:
        # finished first, under the guard's handlers: with the old ones back (SIG_DFL),
        # a signal that came while the trailer was being written killed the process
        # there, the recording cut
        try:
            self.finish()
        finally:
            for sig, old in self._old.items():
                try:
                    signal.signal(sig, old)
                except (ValueError, OSError, TypeError):
                    pass
            self._old.clear()
            atexit.unregister(self.finish)
