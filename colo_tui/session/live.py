"""Live sessions for the TUI and the REPL: a `protocol.core.session.Session` over real peers.

Four sources (colo_tui.session.live_sources), each running in a background thread and
feeding one queue:

* ``TcpPair``  — `--transport tcp`: the two sans-IO endpoints in this process,
  each driven by the uvloop engine over a real loopback TCP connection;
* ``ProxyFeed`` — `--proxy LISTEN CONNECT`: the live decoding proxy between two
  real COLO peers (QEMUs or `colo node`s);
* ``QmpFeed``  — `--attach QMP_P QMP_S`: two running processes, through their
  QMP sockets (statuses polled, events as they come);
* ``PeerFeed`` — `--peer LISTEN`: the testbed's secondary (with a mirror of the
  guest's RAM) as the peer of a real QEMU primary.

A source owns its endpoints and guests: only its thread reads or changes them.
What the UI sees crosses the queue as `Published` items — the events and frozen
snapshots of both sides and both guests, built on the source's thread just
after those events.  Stepping moves queued events into view (the display can
be paused while the peers run on); a batch (what one input to an engine caused,
at one instant) shows its snapshots with its first event.  There is no time travel in a live session, and faults are injected
with `colo proxy --fault` or the simulator.

A live session may run for days: its events are an `EventWindow`
(protocol/core/eventwindow.py), which keeps the latest 250,000 to 300,000 in memory
(about 50 MB) and drops the oldest 50,000 at once; ``seq`` stays global.

Events are numbered, and written to a recording that is on, as they arrive (on the
thread that publishes them, holding the source's ``arrival_lock``), not as they come
into view: a recording keeps every event from its start on even while the display is
paused.  The queue holds at most ``queue_items`` items (~1.5 KB each): a view that
falls that far behind is not given the events that arrive while it is full; they are
counted (a `Skipped` item, queued once there is room) and the view says how many it
did not show, and that the recording has them if one was on.
"""
from __future__ import annotations

import collections
import concurrent.futures
import queue
import sys
import threading
import time
from types import MappingProxyType

from colo_tui.session.control import Controller
from colo_tui.session.options import wants_live
from protocol.core.events import Event, set_seq
from protocol.core.eventwindow import LIVE_KEEP_EVENTS, LIVE_TRIM_BATCH, EventWindow
from protocol.core.session import (
    SIDES,
    ArmedFault,
    GuestReport,
    GuestView,
    Input,
    Published,
    SessionError,
    SideStatus,
    live_capabilities,
)
from protocol.errors import ColoError
from protocol.sim.config import SimConfig

LiveError = SessionError
#: a live source rebuilds its guest views at most this often (they scan RAM bitmaps)
GUEST_VIEW_EVERY_S = 0.1
#: the items a live source queues for the view at most (~1.5 KB each: ~330 MB)
LIVE_QUEUE_ITEMS = 200_000


#: a live wait looks at whether its source has ended this often
WAIT_POLL_S = 0.1

class Skipped:
    """In a live source's queue, in place of what arrived while the queue was full: the
    events numbered ``first`` … ``first + count - 1`` (none: ``count`` 0) were not
    queued for the view; ``latest`` is the last snapshot among them (what the sides
    looked like after them) and ``t_ms`` the time of the last of them."""

    __slots__ = ("first", "count", "latest", "t_ms")

    def __init__(self, latest: Published) -> None:
        self.first, self.count, self.latest, self.t_ms = -1, 0, latest, 0.0
        self.add(latest)

    def add(self, item: Published) -> None:
        if item.events:
            if not self.count:
                self.first = item.events[0].seq
            self.count += len(item.events)
            self.t_ms = max(self.t_ms, item.events[-1].t_ms)
        if item.sides is not None or item.guests is not None:
            self.latest = item

    @property
    def last(self) -> int:
        return self.first + self.count - 1


class LiveSession:
    """A live source as a session (see the module docstring)."""

    def __init__(self, source, *, keep: int = LIVE_KEEP_EVENTS,
                 batch: int = LIVE_TRIM_BATCH) -> None:
        self.source = source
        self.name = source.name
        self.config = source.config
        self.hint = getattr(source, "hint", "") or ""
        #: the settings the live peers keep to themselves (status shows them unknown)
        self.unknown_settings = tuple(getattr(source, "unknown_settings", ()))
        self.capabilities = live_capabilities(takes_inputs=source.takes_inputs,
                                              takes_faults=hasattr(source, "check_fault"))
        #: the latest events, indexed by seq; the oldest are dropped in batches
        self.events = EventWindow(keep, batch)
        self.steps = 0
        self.now = 0.0
        self.on_event = None
        self._pending: collections.deque = collections.deque()
        self._after: Published | None = None
        #: the seq of the next event to arrive (numbered on arrival, under arrival_lock)
        self._arrived = 0
        #: the recording events are written to as they arrive (see record_to)
        self._writer = None
        #: a write to it failed, on the source's thread: (writer, OSError) for the
        #: Controller to close and report (take_write_failure)
        self._write_failure: tuple | None = None
        #: what the view says once, when it reaches events it did not show
        self._gap_notice: str | None = None
        first = source.snapshot(())             # before the thread starts: nothing races
        self._sides, self._guests = first.sides, first.guests
        source.on_arrival = self._arrival
        source.start()

    # -- the event stream --------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """The source has ended and everything it published is in view."""
        return self.source.done.is_set() and not self._take() and self.source.q.empty()

    def waiting(self) -> int:
        """Events that have arrived and are not in view yet (a paused or lagging view)."""
        return max(0, self._arrived - self.steps)

    def _arrival(self, item: Published) -> None:
        """An item arrives (on the thread that publishes it, holding arrival_lock): its
        events are numbered and written to the recording that is on."""
        n = self._arrived
        for ev in item.events:
            set_seq(ev, n)
            n += 1
        self._arrived = n
        writer = self._writer
        if writer is not None and item.events:
            try:
                for ev in item.events:
                    writer.event(ev)
            except OSError as exc:      # the recording ends here; the Controller says so
                self._writer = None
                self._write_failure = (writer, exc)

    def record_to(self, writer) -> int:
        """Write every event to `writer` as it arrives, from the oldest one still to be
        had on: those in memory, those not yet in view, then each new one.  Events the
        view did not show while no recording was on are gone: it starts after them.
        Returns the seq of its first event."""
        held = list(self.events)
        with self.source.arrival_lock:
            later: list = []
            for entry in [*self._pending, *self.source.queued()]:
                if isinstance(entry, Skipped):
                    if entry.count:
                        held, later = [], []        # not kept: start after them
                elif isinstance(entry, Published):
                    later.extend(entry.events)
                else:
                    later.append(entry)
            if self.source.skipping():
                held, later = [], []
            first = (held or later)[0].seq if held or later else self._arrived
            for ev in held:
                writer.event(ev)
            for ev in later:
                writer.event(ev)
            self._writer = writer
        return first

    def stop_recording(self) -> int:
        """No more writes to the recording; the seq of the last event it got."""
        with self.source.arrival_lock:
            self._writer = None
            return self._arrived - 1

    def take_write_failure(self) -> tuple | None:
        """(writer, OSError) if a write of the recording failed on arrival, once."""
        with self.source.arrival_lock:
            failure, self._write_failure = self._write_failure, None
        return failure

    def take_gap_notice(self) -> str | None:
        """What the view says, once, on reaching events it did not show."""
        notice, self._gap_notice = self._gap_notice, None
        return notice

    def _absorb(self, item) -> None:
        if isinstance(item, Skipped):
            self._pending.append(item)      # in order, after the events before it
        elif item.events:
            self._pending.extend(item.events)
            self._after = item
        else:
            self._show(item)        # a snapshot alone (a poll, a command, the end)

    def _show(self, item: Published) -> None:
        if item.sides is not None:
            self._sides = item.sides
        if item.guests is not None:
            self._guests = item.guests

    def _take(self) -> bool:
        """Move queued items in until a batch with events is pending (False: none)."""
        while not self._pending:
            item = self.source.take()
            if item is None:
                return False
            self._absorb(item)
        return True

    def _skip(self, gap: Skipped) -> None:
        """The view reaches what it was not given (the queue was full)."""
        self._show(gap.latest)
        self._after = None
        if not gap.count:
            return
        self.events.skip(gap.first, gap.last)
        self.steps += gap.count
        self.now = max(self.now, gap.t_ms)
        self._gap_notice = self.events.unshown_text(gap.first, gap.last,
                                                    self.source.queue_items)

    def step(self) -> list[Event]:
        """The next arrived event into view ([] if none has arrived)."""
        while True:
            if not self._pending and not self._take():
                return []
            ev = self._pending.popleft()
            if not isinstance(ev, Skipped):
                break
            self._skip(ev)
        self.events.append(ev)
        self.steps += 1
        self.now = max(self.now, ev.t_ms)
        if self._after is not None:
            # a batch is what one input to an engine caused, at one instant: its
            # snapshot shows with its first event
            self._show(self._after)
            self._after = None
        if self.on_event is not None:
            self.on_event(ev)
        return [ev]

    def wait(self, timeout_s: float) -> bool:
        """Wait (bounded) until an event has arrived; True if one has.  A source that
        ends meanwhile ends the wait within `WAIT_POLL_S` (its end puts nothing more
        in the queue to wake a blocked get)."""
        deadline = time.monotonic() + timeout_s
        while not self._take():
            left = deadline - time.monotonic()
            if left <= 0 or self.source.done.is_set() and self.source.q.empty():
                return False
            try:
                self._absorb(self.source.q.get(timeout=min(left, WAIT_POLL_S)))
            except queue.Empty:
                continue
        return True

    # -- views ----------------------------------------------------------------------------
    def side(self, side: str) -> SideStatus:
        return self._sides[SIDES.index(side)]

    def guest(self, side: str) -> GuestView:
        return self._guests[SIDES.index(side)]

    def guest_report(self) -> GuestReport:
        return self.source.guest_report()

    def outcome(self) -> str:
        sides = [self.side(s) for s in SIDES]
        running = [s for s in sides if s.run_state == "running"]
        in_colo = [s for s in sides if s.colo_mode != "none"]
        if len(in_colo) == 2:
            return "ok"
        return "split-brain" if len(running) == 2 else ("failover" if running else "error")

    def checks(self):
        return MappingProxyType({})

    def armed_faults(self) -> tuple[ArmedFault, ...]:
        armed = getattr(self.source, "armed_faults", None)
        if armed is not None:
            return armed()
        return tuple(ArmedFault(str(f), False) for f in getattr(self.source, "faults", ()))

    # -- inputs ----------------------------------------------------------------------------
    def send(self, inp: Input) -> None:
        if inp.cmd == "reprotect":
            raise SessionError("a live session cannot re-protect: that starts a new secondary "
                               "process and migrates to it (QEMU: docs/COLO-FT.txt); the "
                               "simulator can (`colo tui`, or a plan step reprotect@failover#N)")
        if inp.cmd == "fault":
            add = getattr(self.source, "add_fault", None)
            if add is None:
                self.check_fault(None)          # says where faults on live peers go
            add(inp.value)
            return
        if inp.cmd == "failover" and not getattr(self.source, "fails_over", False):
            raise SessionError(f"the {self.name} source cannot fail over by docs/COLO-FT.txt "
                               f"(that is `colo lab`); x-colo-lost-heartbeat is `heartbeat "
                               f"{inp.side}`")
        self.source.command(inp.cmd, *inp.args)

    def check_fault(self, fault) -> None:
        check = getattr(self.source, "check_fault", None)
        if check is not None:           # a source that takes faults says which
            check(fault)
            return
        raise SessionError("faults on live peers go through `colo proxy --fault SPEC` "
                           "(or use the simulator, which takes any fault at any time)")

    def close(self) -> None:
        self.source.stop()
        if not self.source.join():
            print(f"colo: the {self.source.name} source did not stop within 5 s",
                  file=sys.stderr)


def live_controller(source, *, on_event=None, **window) -> Controller:
    """The one Controller, over a live source (no time travel, no restart); `window`:
    LiveSession's keep and batch (how many events memory holds)."""
    return Controller(session=LiveSession(source, **window), on_event=on_event)


def make_live(args, config, on_event=None) -> Controller | None:
    """The live controller for --transport tcp / --proxy / --attach / --peer, or None."""
    if not wants_live(args):
        return None                     # a simulation: no live source module imported
    from colo_tui.session.live_sources import PeerFeed, ProxyFeed, QmpFeed, TcpPair
    if getattr(args, "peer", None):
        source = PeerFeed(config, args.peer)
    elif getattr(args, "attach", None):
        source = QmpFeed(config, *args.attach)
    elif getattr(args, "proxy", None):
        listen, connect = args.proxy
        source = ProxyFeed(config, listen, connect, getattr(args, "fault", None) or [])
    elif getattr(args, "transport", "sim") == "tcp":
        source = TcpPair(config)
    else:
        return None
    return live_controller(source, on_event=on_event)


class _Source:
    """A live source: a background thread, a queue of `Published` items."""

    name = "live"
    #: operator inputs reach the peers (some sources only watch)
    takes_inputs = True
    #: the items the view may fall behind by (~1.5 KB each: ~330 MB at most)
    queue_items = LIVE_QUEUE_ITEMS

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.q: queue.Queue = queue.Queue(maxsize=self.queue_items)
        #: held while an item arrives (numbered, recorded, queued): a recording starts
        #: and stops between two arrivals
        self.arrival_lock = threading.Lock()
        #: called with each item as it arrives, holding arrival_lock (LiveSession's)
        self.on_arrival = None
        #: what arrived while the queue was full, not yet queued
        self._skipped: Skipped | None = None
        self.done = threading.Event()
        self.ready = threading.Event()     # the source's loop takes commands
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()
        self._guest_views: tuple | None = None
        self._guest_at = 0.0

    # -- snapshots: built on the source's thread ------------------------------------------
    def sides(self) -> tuple[SideStatus, SideStatus]:
        raise NotImplementedError

    def guests(self) -> dict:
        """The guest objects per side ({} when the source has none)."""
        return {}

    def snapshot(self, events: tuple, *, fresh: bool = False) -> Published:
        now = time.monotonic()
        if fresh or self._guest_views is None or now - self._guest_at >= GUEST_VIEW_EVERY_S:
            from protocol.core.snapshot import guest_view
            g = self.guests()
            self._guest_views = tuple(guest_view(g.get(s), s) for s in SIDES)
            self._guest_at = now
        return Published(tuple(events), self.sides(), self._guest_views)

    def guest_report(self) -> GuestReport:
        """Both guests in depth, built on the source's thread (bounded wait)."""
        g = self.guests()
        if not g:
            return GuestReport()
        from protocol.core.snapshot import guest_report
        return self.in_thread(lambda: guest_report(g))

    def in_thread(self, fn, timeout_s: float = 5.0):
        """fn() on the source's loop, its result here; directly once the loop is gone."""
        t = self._thread
        if t is not None and t.is_alive():
            self.ready.wait(timeout_s)          # the loop exists once the source is ready
        loop = self.loop
        if t is None or not t.is_alive() or loop is None or loop.is_closed():
            if t is not None and t.is_alive():
                t.join(timeout_s)               # the loop has ended: so will the thread
                if t.is_alive():
                    raise SessionError(f"the {self.name} source is not answering")
            return fn()                         # nothing runs on the source any more
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)
        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:                    # the loop closed meanwhile
            t.join(timeout_s)
            return fn()
        try:
            return fut.result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise SessionError(f"the {self.name} source did not answer within "
                               f"{timeout_s:.0f} s") from None

    def publish(self, events, *, fresh: bool = False) -> None:
        item = self.snapshot(tuple(events), fresh=fresh)
        with self.arrival_lock:
            if self.on_arrival is not None:
                self.on_arrival(item)       # numbered and recorded whatever the view does
            q, skipped = self.q, self._skipped
            try:
                if skipped is not None:     # room again: the view hears of them first
                    q.put_nowait(skipped)
                    self._skipped = skipped = None
                q.put_nowait(item)
                return
            except queue.Full:              # the view fell `queue_items` behind
                pass
            if skipped is None:
                self._skipped = Skipped(item)
            else:
                skipped.add(item)

    def take(self):
        """The next item for the view (a `Published` or a `Skipped`), or None."""
        try:
            return self.q.get_nowait()
        except queue.Empty:
            pass
        with self.arrival_lock:             # nothing queued: what was skipped, if any
            try:
                return self.q.get_nowait()
            except queue.Empty:
                skipped, self._skipped = self._skipped, None
                return skipped

    def queued(self) -> list:
        """The items in the queue, oldest first (hold arrival_lock)."""
        with self.q.mutex:
            return list(self.q.queue)

    def skipping(self) -> bool:
        """Events that arrived while the queue was full are not yet queued (hold
        arrival_lock)."""
        return self._skipped is not None and self._skipped.count > 0

    def put(self, ev: Event) -> None:
        self.publish((ev,))

    def now_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:   # noqa: BLE001 - shown in the event stream, not a crash
            self.error = f"{type(exc).__name__}: {exc}"
            self.put(Event(self.now_ms(), "live", "error", {"message": self.error}))
        finally:
            try:
                self.publish((), fresh=True)       # the last word on both sides
            except Exception:  # noqa: BLE001 - a snapshot of a broken source: skip it
                pass
            self.done.set()

    def wait_ready(self, what: str, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the background loop takes commands."""
        if not self.ready.wait(timeout_s) or self.done.is_set():
            raise ColoError(f"the {what} is not running" + (f": {self.error}"
                                                            if self.error else ""))

    #: the source's event loop and its one task (`_run_task`), where it has them
    loop = None
    _task = None

    def stop(self) -> None:
        """Ask the source to end (from any thread): its task, if any, is cancelled."""
        self.done.set()
        loop, task = self.loop, self._task
        if loop is None or task is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:        # the loop closed meanwhile
            pass

    def _run_task(self, loop, coro) -> None:
        """Run `coro` as the source's task until it ends or stop() cancels it.  If
        stop() came before the task existed (it had nothing to cancel), the task
        is cancelled as it is created."""
        import asyncio
        self._task = loop.create_task(coro)
        if self.done.is_set():
            self._task.cancel()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass

    def join(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) for the background thread to end; True if it did.

        The process must not exit while the thread still runs its loop: the
        interpreter tears down module state under a daemon thread that is inside
        uvloop or the page-diff core (without the GIL) and the process segfaults
        at exit (seen 1 run in 20 with `colo repl --transport tcp`)."""
        t = self._thread
        if t is None or t is threading.current_thread():
            return True
        t.join(timeout_s)
        return not t.is_alive()
