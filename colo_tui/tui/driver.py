"""The terminal driver: Textual's Linux driver, safe when the terminal goes away.

When the terminal closes under a running app (a closed window, a killed tmux,
a dropped ssh), the kernel sends the app SIGHUP and SIGCONT, and every write to
the terminal fails (EIO).  Textual 8.2.8's writer thread dies on the first
failed write; its queue holds 30 writes, so the app's 31st write, or the
``stop()`` at shutdown, then waits forever on the full queue.  Its SIGCONT
handler also starts a second writer thread without stopping the first.  Half of
the `colo tui` sessions whose tmux server was killed while running stayed
behind, hung, instead of exiting on the SIGHUP.

`DrainingWriter` ends the *output* on a failed write, not the thread: it goes on
taking (and dropping) what is queued until it is stopped, so no write and no
stop can block on it.  `HangupSafeDriver` runs every writer it starts as one,
and stops the previous writer (flushing it) before starting a new one.

Textual's SIGCONT handler restarts application mode whether or not the app was
suspended, and starts a new input thread over the running one, which is left
behind: at exit only the newest is stopped, and the old one (not a daemon)
kept the process alive for ever.  `kill -CONT` three times, then `q`: the app
never exited.  A hang-up sends SIGCONT too (with its SIGHUP), so a closed
terminal sometimes left the app behind the same way (a race: the old thread
had to see the exit flag in the moment the newest was being stopped).  The
driver stops the running input thread before starting another, and does not
restart application mode on a terminal that has gone (a SIGCONT after a
hang-up).
"""
from __future__ import annotations

import errno
import os
import threading
from queue import Full

from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver

#: how long stopping a writer that is not ours may wait for it (s)
STOP_WAIT_S = 2.0


class DrainingWriter(WriterThread):
    """Textual's writer thread, except that a write the terminal refuses ends the
    output (`failed` says why) and the thread keeps draining its queue.
    `on_hangup` (called once, from this thread) hears of a terminal that has gone
    (EIO)."""

    failed: BaseException | None = None

    def __init__(self, file, on_hangup=None) -> None:
        super().__init__(file)
        self.on_hangup = on_hangup

    def run(self) -> None:
        get, qsize = self._queue.get, self._queue.qsize
        while (text := get()) is not None:
            self._out(self._file.write, text)
            if qsize() == 0:
                self._out(self._file.flush)
        self._out(self._file.flush)

    def _out(self, op, *args) -> None:
        """`op(*args)` on the terminal, unless it has already refused one."""
        if self.failed is None:
            try:
                op(*args)
            except (OSError, ValueError) as exc:   # ValueError: the file was closed
                self.failed = exc
                if getattr(exc, "errno", None) == errno.EIO and self.on_hangup is not None:
                    self.on_hangup()


def stop_writer(writer: WriterThread | None) -> None:
    """Stop `writer` after what it holds is written; one that is not draining
    (Textual's, possibly dead with a full queue) is waited for at most
    `STOP_WAIT_S`, never forever."""
    if writer is None or not writer.is_alive():
        return
    if isinstance(writer, DrainingWriter):
        writer.stop()
        return
    try:
        writer._queue.put(None, timeout=STOP_WAIT_S)
    except Full:
        return
    writer.join(STOP_WAIT_S)


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)          # (False on a hung-up terminal: EIO)
    except OSError:
        return False


class HangupSafeDriver(LinuxDriver):
    """Textual's Linux driver whose writer threads are `DrainingWriter`s, and which
    never leaves an input thread running behind a new one."""

    def _stop_input_thread(self) -> None:
        """Stop the running input thread (if any), as `disable_input` would, but
        leave the rest of application mode alone."""
        thread = self._key_thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return
        self.exit_event.set()
        thread.join(STOP_WAIT_S)
        self.exit_event.clear()

    def _terminal_gone(self) -> None:
        """The terminal refused a write (EIO: it has gone).  A hang-up's SIGHUP ends
        the app; without one (SIGHUP ignored, as under nohup, or a terminal that
        was not the app's controlling one) the app ran on for ever, its input thread
        spinning on the closed terminal (100 % CPU), the recording never completed:
        it ends now, as quitting does, exit status 1."""
        loop = getattr(self._app, "_loop", None)
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: self._app.exit(return_code=1))
            except RuntimeError:            # the loop closed meanwhile: it is ending
                pass

    def start_application_mode(self) -> None:
        before = self._writer_thread
        if before is not None and not _is_terminal(self.fileno):
            return                  # a SIGCONT after a hang-up: no terminal to resume
        self._stop_input_thread()   # a SIGCONT while running: it would be left behind
        super().start_application_mode()
        made = self._writer_thread
        if made is before or made is None:        # Textual gave up (no terminal to resume)
            return
        stop_writer(before)                       # Textual's SIGCONT path leaves it running
        stop_writer(made)                         # its start-up writes, in order
        self._writer_thread = DrainingWriter(self._file, on_hangup=self._terminal_gone)
        self._writer_thread.start()
