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
"""
from __future__ import annotations

from queue import Full

from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver

#: how long stopping a writer that is not ours may wait for it (s)
STOP_WAIT_S = 2.0


class DrainingWriter(WriterThread):
    """Textual's writer thread, except that a write the terminal refuses ends the
    output (`failed` says why) and the thread keeps draining its queue."""

    failed: BaseException | None = None

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


class HangupSafeDriver(LinuxDriver):
    """Textual's Linux driver whose writer threads are `DrainingWriter`s."""

    def start_application_mode(self) -> None:
        before = self._writer_thread
        super().start_application_mode()
        made = self._writer_thread
        if made is before or made is None:        # Textual gave up (no terminal to resume)
            return
        stop_writer(before)                       # Textual's SIGCONT path leaves it running
        stop_writer(made)                         # its start-up writes, in order
        self._writer_thread = DrainingWriter(self._file)
        self._writer_thread.start()
