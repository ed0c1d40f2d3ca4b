"""The terminal driver's writer when the terminal goes away (the real terminal
case is in test_every_key: the tmux server killed under a running app)."""
from __future__ import annotations

import io
import threading

import pytest
from textual.drivers._writer_thread import MAX_QUEUED_WRITES, WriterThread

from colo_tui.tui.app import ColoApp
from colo_tui.tui.driver import DrainingWriter, HangupSafeDriver, stop_writer


class HungUpTerminal(io.StringIO):
    """Takes `good` writes, then fails every write and flush as a hung-up pty does."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def write(self, text: str) -> int:
        if self.good <= 0:
            raise OSError(5, "Input/output error")
        self.good -= 1
        return super().write(text)

    def flush(self) -> None:
        if self.good <= 0:
            raise OSError(5, "Input/output error")


def _within(seconds: float, fn) -> bool:
    """Run `fn` in a thread: True if it returned within `seconds` (a hang is a
    failed assertion, not a hung suite)."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_a_draining_writer_outlives_a_failed_write_and_stops() -> None:
    term = HungUpTerminal(good=3)
    w = DrainingWriter(term)
    w.start()

    def many_writes_then_stop():
        for k in range(10 * MAX_QUEUED_WRITES):
            w.write(f"frame {k}\n")
        w.stop()
    assert _within(10, many_writes_then_stop), "a write or stop blocked after the terminal failed"
    assert isinstance(w.failed, OSError) and w.failed.errno == 5
    assert term.getvalue() == "frame 0\nframe 1\nframe 2\n"      # what went out before, in order


def test_a_draining_writer_on_a_live_terminal_writes_everything() -> None:
    term = io.StringIO()
    w = DrainingWriter(term)
    w.start()
    for k in range(3 * MAX_QUEUED_WRITES):
        w.write(f"{k},")
    w.stop()
    assert w.failed is None
    assert term.getvalue() == "".join(f"{k}," for k in range(3 * MAX_QUEUED_WRITES))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_textuals_writer_dies_on_a_failed_write_and_stop_writer_does_not_wait_for_ever() -> None:
    """The failure mode itself (Textual 8.2.8): its thread dies on the first failed
    write, and once its queue is full its own stop() waits for ever;
    `stop_writer` returns."""
    def dead_with_a_full_queue() -> WriterThread:
        w = WriterThread(HungUpTerminal(good=0))
        w.start()
        w.write("first\n")
        w.join(5)
        assert not w.is_alive()
        for _ in range(MAX_QUEUED_WRITES):
            w.write("x")
        assert w._queue.full()
        return w
    assert not _within(0.5, dead_with_a_full_queue().stop), \
        "Textual's writer no longer hangs: HangupSafeDriver may no longer be needed"
    w = dead_with_a_full_queue()
    assert _within(10, lambda: stop_writer(w))


def test_the_app_runs_on_the_hangup_safe_driver_in_a_terminal() -> None:
    """On Linux, where Textual would pick its LinuxDriver (run_test/pilot and
    `textual serve` pick their own drivers, which this leaves alone)."""
    assert ColoApp().driver_class is HangupSafeDriver
