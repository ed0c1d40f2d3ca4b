"""The live sources behind `--transport tcp | --proxy | --attach | --peer` (see live.py)."""
from __future__ import annotations

import concurrent.futures
import queue
import socket
from dataclasses import replace

from colo_tui.session.live import _Source
from protocol.core import dialects
from protocol.core.endpoint import make_endpoint
from protocol.core.events import (
    Action,
    Checkpoint,
    ColoExit,
    Eof,
    Event,
    Migration,
    Recv,
    RecvInitial,
    Send,
)
from protocol.core.failover import COMPLETED, NONE
from protocol.core.session import SIDES, SideStatus
from protocol.core.snapshot import side_status
from protocol.errors import ColoError, QmpCommandError
from protocol.record.playback import CaptureTracker
from protocol.sim.core import _make_guests as make_guests

#: the run state of a primary that has not connected yet (--peer): nothing is known
NO_PEER_YET = "waiting for a peer"


def _warn_all_interfaces(option: str, addr: tuple[str, int]) -> None:
    """`colo node --listen 0.0.0.0:…`'s warning, for a live source's listening
    socket: a wildcard host binds every interface (on stderr, before the UI opens)."""
    from protocol.drivers.node import warn_all_interfaces
    warn_all_interfaces("colo", option, addr)


def _listen(addr: tuple[str, int]) -> socket.socket:
    """A listening socket on `addr`, or an OSError whose text names it and the OS's
    reason (socket.create_server's own text repeats the address as a tuple)."""
    import os
    host, port = addr
    try:
        return socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {why}") from None


class TcpPair(_Source):
    """Both endpoints in this process, each on its own end of a real loopback TCP
    connection driven by the uvloop engine."""

    name = "tcp"

    def __init__(self, config) -> None:
        super().__init__(config)
        d = dialects.get(config.dialect)
        self._guests = make_guests(config, d)
        self.eps = {s: make_endpoint(s, d, guest=self._guests[s], mode=config.mode,
                                     checkpoint_delay_ms=config.checkpoint_delay_ms,
                                     load_ms=config.load_ms, faithful=config.faithful)
                    for s in SIDES}
        self.engines: dict = {}
        self.alive = {s: True for s in SIDES}
        self.stalled = {s: False for s in SIDES}

    def sides(self) -> tuple[SideStatus, SideStatus]:
        return tuple(side_status(self.eps[s], alive=self.alive[s], stalled=self.stalled[s])
                     for s in SIDES)

    def guests(self) -> dict:
        return self._guests

    def run(self) -> None:
        import asyncio

        from protocol.drivers.tcp import Engine, new_loop
        loop = self.loop = new_loop()
        asyncio.set_event_loop(loop)
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        port = lsock.getsockname()[1]

        def feed(evs) -> None:
            self.publish(evs)

        def advance(side):
            guest = self.eps[side].guest
            adv = getattr(guest, "advance", None)
            return (lambda now: adv(int(now))) if adv else None

        for s in SIDES:
            self.engines[s] = Engine(self.eps[s], loop, on_events=feed,
                                     before_input=advance(s))
        # one clock for the engines' events and the source's own (kill, stall): the
        # source's started earlier, and a kill read ~60 ms after the EOF it caused
        self.t0 = self.engines["secondary"].t0 = self.engines["primary"].t0
        self.ready.set()
        self.put(Event(0.0, "live", "listening", {"address": f"127.0.0.1:{port}"}))

        async def main() -> None:
            async def accept() -> None:
                sock, _ = await loop.sock_accept(lsock)
                await self.engines["secondary"].attach_socket(sock)
            task = loop.create_task(accept())
            await self.engines["primary"].connect("127.0.0.1", port)
            await task
            while not self.done.is_set():
                await asyncio.sleep(0.05)
        try:
            loop.run_until_complete(main())
        finally:
            for eng in self.engines.values():
                eng.close_timers()
                eng.abort()
            lsock.close()
            loop.close()

    def command(self, what: str, *args) -> None:
        self.wait_ready("live pair")
        self.loop.call_soon_threadsafe(self._command, what, args)

    def _command(self, what: str, args) -> None:
        eng = self.engines
        try:
            if what == "lost-heartbeat":
                eng[args[0]].run(self.eps[args[0]].lost_heartbeat)
            elif what == "checkpoint":
                eng["primary"].run(lambda now: self.eps["primary"].request_checkpoint(
                    now, "operator"))
            elif what == "set-delay":
                for s in SIDES:
                    eng[s].run(self.eps[s].set_checkpoint_delay, args[0])
            elif what == "shutdown":
                eng["primary"].run(self.eps["primary"].guest_shutdown)
            elif what in ("kill", "stall"):
                side = args[0]
                eng[side].close_timers()
                if what == "kill":
                    self.alive[side] = False
                    # a dead process reads nothing more: its endpoint must not see its
                    # own socket close (an EOF, an error, a COLO_EXIT of the dead side)
                    eng[side].detach()
                    eng[side].abort(reset=False)
                else:
                    self.stalled[side] = True
                    if eng[side].transport is not None:
                        eng[side].transport.pause_reading()
                self.put(Event(self.now_ms(), side, "process",
                               {"what": "killed" if what == "kill" else "stalled",
                                "why": "operator"}))
        except QmpCommandError as exc:
            self.put(Event(self.now_ms(), "operator", "qmp-error",
                           {"side": args[0] if args else "primary", "error": exc.desc}))


class ProxyFeed(_Source):
    """The live decoding proxy between two real COLO peers."""

    name = "proxy"
    takes_inputs = False

    def __init__(self, config, listen: str, connect: str, faults=()) -> None:
        from protocol.drivers.node import parse_hostport
        super().__init__(config)
        self.listen, self.connect, self.faults = listen, connect, list(faults)
        # a port in use is a clear error before the session starts (the proxy binds
        # again in its thread; this one is closed at once)
        _listen(parse_hostport(listen)).close()
        _warn_all_interfaces("--proxy", parse_hostport(listen))
        self.hint = (f"point the primary's migrate at {listen}; it goes on to {connect}; "
                     "space to follow")
        self.tracker = CaptureTracker(dialects.get(config.dialect))

    def sides(self) -> tuple[SideStatus, SideStatus]:
        return tuple(self.tracker.side(s) for s in SIDES)

    def put(self, ev: Event) -> None:
        self.tracker.apply(ev)
        super().put(ev)

    def run(self) -> None:
        import asyncio

        from protocol.drivers.proxy import run_proxy
        from protocol.drivers.tcp import new_loop
        loop = self.loop = new_loop()
        asyncio.set_event_loop(loop)
        self.put(Event(0.0, "live", "listening", {"address": self.listen,
                                                  "forwarding_to": self.connect}))
        try:
            self._run_task(loop, run_proxy(self.listen, self.connect, self.faults, self.put))
        finally:
            loop.close()

    def command(self, what: str, *args) -> None:
        raise ColoError("the proxy only watches (and injects --fault at start); give "
                        "commands to the peers themselves (QMP, or `colo repl --attach`)")


class PeerFeed(_Source):
    """The testbed's own secondary as the live peer of a real QEMU primary.

    `colo tui --peer LISTEN`: listen where QEMU's ``migrate tcp:…`` points, follow
    the initial migration, keep a mirror of the real guest's RAM (`MirrorGuest`)
    and answer every checkpoint as QEMU 7.2's secondary does.  The secondary side
    is a real endpoint; the primary's view is what its messages tell (each one is
    shown as sent by the primary when the secondary receives it).
    """

    name = "peer"

    def __init__(self, config, listen: str) -> None:
        from protocol.drivers.node import parse_hostport
        from protocol.guest.mirror import MirrorGuest
        if not dialects.get(config.dialect).real_qemu:
            raise ColoError("--peer follows a real QEMU primary: it speaks --dialect qemu")
        super().__init__(config)
        self.listen = listen
        self.addr = parse_hostport(listen)
        self.guest = MirrorGuest()
        self.tracker = CaptureTracker(dialects.get("qemu"))      # the primary, as seen
        self.secondary = make_endpoint("secondary", dialects.get("qemu"), guest=self.guest,
                                       mode=config.mode, initial_stream=True)
        # bind now: a port in use is a clear error before the app opens
        host, port = self.addr
        self.lsock = _listen(self.addr)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        _warn_all_interfaces("--peer", (host, self.port))
        #: a QEMU primary has connected (before it, nothing is known of it)
        self.connected = False
        shown = host if host not in ("0.0.0.0", "::") else "<this host's address>"
        target = f"[{shown}]" if ":" in shown else shown
        self.hint = (f"listening on {listen.rsplit(':', 1)[0]}:{self.port}: on the QEMU "
                     f"primary, x-colo on and migrate tcp:{target}:{self.port}; space to "
                     "follow")
        self.engine = None

    def sides(self) -> tuple[SideStatus, SideStatus]:
        primary = self.tracker.side("primary")
        if not self.connected:     # no QEMU yet: its VM is not known to run
            primary = replace(primary, run_state=NO_PEER_YET)
        return primary, side_status(self.secondary)

    def guests(self) -> dict:
        return {"secondary": self.guest}

    def run(self) -> None:
        import asyncio

        from protocol.drivers.tcp import Engine, new_loop
        loop = self.loop = new_loop()
        asyncio.set_event_loop(loop)

        def feed(evs) -> None:
            out = []
            for ev in evs:
                if ev.side == "secondary" and type(ev) is Recv:
                    sent = Send(
                        ev.t_ms, "primary", msg=ev.msg, value=ev.value or 0,
                        dir="P>S", n=self.secondary.in_flight
                        or self.secondary.checkpoint,
                        why="a real QEMU primary: seen as the secondary received it")
                    self._follow(sent)
                    out.append(sent)
                self._follow(ev)
                out.append(ev)
            self.publish(out)

        def crashed(exc: BaseException) -> None:
            # a bug of ours, not the peer's: shown in the event stream, the pair stops
            self.error = f"{type(exc).__name__}: {exc}"
            self.put(Event(self.now_ms(), "live", "error", {"message": self.error}))
            self.done.set()

        self.engine = Engine(self.secondary, loop, on_events=feed, on_crash=crashed)

        async def main() -> None:
            sock, peer = await loop.sock_accept(self.lsock)
            self.connected = True
            # one primary per session: a second `migrate` is refused, not left hanging
            self.lsock.close()
            self.put(Event(self.now_ms(), "live", "connection",
                           {"peer": f"{peer[0]}:{peer[1]}"}))
            await self.engine.attach_socket(sock)
            while not self.done.is_set():
                await asyncio.sleep(0.05)
        self.ready.set()
        self.put(Event(0.0, "live", "listening", {"address": f"{self.addr[0]}:{self.port}",
                                                  "hint": self.hint}))
        try:
            self._run_task(loop, main())
        finally:
            self.engine.close_timers()
            self.engine.abort()
            self.lsock.close()
            loop.close()

    def _follow(self, ev: Event) -> None:
        """Keep the primary's view in step with what the secondary saw of it, as it
        happens (the secondary's view is its live endpoint, not the stepped events)."""
        if ev.side == "primary":
            self.tracker.apply(ev)
        elif ev.side != "secondary":
            return
        elif type(ev) is Checkpoint and ev.phase == "commit":
            self.tracker.apply(replace(ev, side="primary"))
        elif type(ev) is Action and ev.name == "load-initial":
            self.tracker.apply(RecvInitial(ev.t_ms, "primary"))
        elif type(ev) is Eof:
            self.tracker.set_error("primary", "the connection ended (EOF from the primary)")

    def command(self, what: str, *args) -> None:
        if what != "lost-heartbeat" or args[0] != "secondary":
            raise ColoError("a real QEMU primary takes its commands over its own QMP; "
                            "here only `heartbeat secondary` (x-colo-lost-heartbeat: fail "
                            "over to this secondary) is possible")
        self.wait_ready("peer")
        self.loop.call_soon_threadsafe(self._failover)

    def _failover(self) -> None:
        try:
            self.engine.run(self.secondary.lost_heartbeat)
        except QmpCommandError as exc:
            self.put(Event(self.now_ms(), "operator", "qmp-error",
                           {"side": "secondary", "error": exc.desc}))


class QmpCheckpoints:
    """A QEMU primary's checkpoints, counted from what its QMP shows.

    QMP has no checkpoint counter (``query-migrate`` in COLO is only ``{"status":
    "colo"}``).  QEMU 7.2's primary stops its VM for each checkpoint and starts it
    again once the secondary has loaded it (migration/colo.c,
    colo_do_checkpoint_transaction: ``vm_stop_force_state(RUN_STATE_COLO)`` … ``vm_start``),
    so each STOP then RESUME while its migration is in COLO is one checkpoint (the
    run1 capture: 20 such pairs for its 20 complete checkpoints).  Not counted: the
    STOP of the migration's completion (the migration is still ``active``) with the
    RESUME that starts COLO (colo_process_checkpoint), anything after a COLO_EXIT
    (a failover's STOP, COLO_EXIT, RESUME; after a COLO error ``query-migrate`` still
    says ``colo``), anything before the first poll's answer.  A `colo node` primary
    emits the same events at the same points.  Fed in stream order: the statuses its
    polls saw (`status`) and its events (`event`)."""

    BEFORE = ("none", "setup", "active", "pre-switchover", "device")

    def __init__(self) -> None:
        self.phase = "unknown"          # unknown | before | colo | out
        self.n = 0
        self.stop_ms: float | None = None
        self.stop_phase: str | None = None

    @property
    def in_flight(self) -> int:
        """The checkpoint under way (its STOP seen, not its RESUME), or 0."""
        return self.n + 1 if self.stop_phase == "colo" and self.phase == "colo" else 0

    def status(self, migration: str | None) -> None:
        migration = migration or "none"
        if migration in self.BEFORE:
            self.phase = "before"
        elif migration == "colo":
            if self.phase in ("unknown", "before"):
                self.phase = "colo"
        else:                           # completed, failed, cancelled, …
            self.phase = "out"

    def event(self, name: str, t_ms: float) -> float | None:
        """Feed QMP event `name`; how long the VM was stopped (ms) when it completes
        a checkpoint, else None."""
        if name == "COLO_EXIT":
            self.phase, self.stop_phase = "out", None
        elif name == "STOP":
            self.stop_ms, self.stop_phase = t_ms, self.phase
        elif name == "RESUME":
            was, self.stop_phase = self.stop_phase, None
            if was == "colo" and self.phase == "colo":
                self.n += 1
                return t_ms - self.stop_ms
            if was == "before" and self.phase in ("before", "colo"):
                self.phase = "colo"     # the completion's STOP, COLO's start: COLO runs
        return None


UNKNOWN = "unknown until first poll"


class _QmpSide:
    """What the last poll of one process's QMP said (the source thread's own); until
    a poll has answered, nothing is known (UNKNOWN), not a made-up INIT."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.state = UNKNOWN
        self.run_state = self.migration = UNKNOWN
        self.colo = {"mode": UNKNOWN, "last-mode": UNKNOWN, "reason": UNKNOWN}
        self.delay_ms = 0
        #: checkpoints seen since the attach, and the one under way (QmpCheckpoints)
        self.checkpoint = self.in_flight = 0
        #: why its QMP connection is gone (None while it answers)
        self.gone: str | None = None

    def status(self, dialect) -> SideStatus:
        reason = self.colo.get("reason", "none")
        fo = COMPLETED if reason == "request" else NONE
        shown = dialect.failover_name(fo) if reason != UNKNOWN else UNKNOWN
        return SideStatus(role=self.role, state=self.state, run_state=self.run_state or "—",
                          migration=self.migration or "none",
                          colo_mode=self.colo.get("mode", "none"),
                          last_mode=self.colo.get("last-mode", "none"), reason=reason,
                          failover=fo if reason != UNKNOWN else UNKNOWN,
                          failover_state=shown,
                          checkpoint=self.checkpoint, in_flight=self.in_flight,
                          checkpoint_delay_ms=self.delay_ms, alive=self.gone is None,
                          error=self.gone)


class QmpFeed(_Source):
    """Two running processes through their QMP sockets: polled statuses, live events.

    An event is stamped with its own QMP ``timestamp`` (the host's wall clock when the
    process emitted it), not when this thread picked it up: one that arrived during a
    status poll was read only after the next poll, up to POLL_S late, and shown after
    later events.  What each round reads (both sides' events, the statuses it polled,
    the operator's commands) is held and put in time order; an item is published once
    both sides have been read past its time (HOLD_MS of slack for the way there), so
    that a later round cannot bring an earlier event.  A timestamp later than the
    event's arrival (another host's clock ahead of ours) is taken as its arrival."""

    name = "attach"
    POLL_S = 0.25
    #: what QMP does not tell: the peers' control dialect and COLO mode (periodic or
    #: hybrid) are theirs, not this session's --dialect/--mode
    unknown_settings = ("dialect", "mode")
    #: an event emitted this long before a side was last read may still be on its way
    HOLD_MS = 20.0

    def __init__(self, config, qmp_primary: str, qmp_secondary: str) -> None:
        import time
        super().__init__(config)
        self.addresses = (qmp_primary, qmp_secondary)
        self.dialect = dialects.get(config.dialect)
        self.views = {s: _QmpSide(s) for s in SIDES}
        #: each side's checkpoints since the attach (QMP counts none); the secondary's
        #: (7.2 stops its VM for each checkpoint too) only for its status
        self.checkpoints = {s: QmpCheckpoints() for s in SIDES}
        self._commands: queue.Queue = queue.Queue()
        #: the wall clock (QMP's timestamps) at t0, the session's time 0
        self.wall0 = time.time() - (time.monotonic() - self.t0)
        #: events read but not yet published: (t_ms, order read, event)
        self._held: list[tuple[float, int, Event]] = []
        self._order = 0
        self._holding = True
        #: when each side's QMP stream was last read to its end (session ms)
        self._read_to = {s: 0.0 for s in SIDES}
        from colo_tui.session.attach import LivePair
        self.pair = LivePair(*self.addresses)     # fails here, clearly, if unreachable
        # the first poll now: the session's first view is what both sides answered
        # (a side that does not answer in time stays unknown until a later poll)
        self._poll()

    def run(self) -> None:
        import time
        try:
            while not self.done.is_set():
                self._read_events()
                self._poll()
                self._release()
                if all(v.gone for v in self.views.values()):
                    break                   # nothing left to watch
                try:
                    what, args, done = self._commands.get(timeout=self.POLL_S)
                except queue.Empty:
                    continue
                self._run_command(what, args, done)
                time.sleep(0)
        finally:
            self._release(everything=True)
            self._holding = False
            self.pair.close()
            while not self._commands.empty():        # nobody waits for ever
                self._commands.get_nowait()[2].set_exception(
                    ColoError("the QMP attach has ended"))

    def _answering(self):
        """(side, its QMP client) for each side whose QMP connection is still up."""
        return [(s, self.pair.qmp[s]) for s in SIDES if not self.views[s].gone]

    def _lose(self, side: str, exc: Exception) -> None:
        """One side's QMP connection failed (its process ended, or it closed QMP): that
        side is shown dead and the other one is still watched and driven (the point of
        a failover is that the survivor goes on)."""
        from protocol.drivers.qmpclient import QmpTimeout
        if isinstance(exc, QmpTimeout):
            return          # alive but not answering (stopped?): asked again next poll
        why = str(exc).removeprefix(f"{side}: ")
        view = self.views[side]
        view.gone = f"its QMP connection is gone ({why}): the process has ended?"
        self.put(Event(self.now_ms(), side, "process",
                       {"what": "gone", "why": f"its QMP connection "
                                               f"({self.addresses[SIDES.index(side)]}) "
                                               f"closed: {why}"}))

    # -- events in time order ---------------------------------------------------------
    def put(self, ev: Event) -> None:
        """Hold `ev` until `_release` puts it in time order (once the loop has ended,
        publish it: the source's own last word)."""
        if not self._holding:
            super().put(ev)
            return
        self._order += 1
        self._held.append((ev.t_ms, self._order, ev))

    def _release(self, *, everything: bool = False) -> None:
        """Publish, in time order, the held events that no later read can precede:
        those before the moment every answering side was last read to (less HOLD_MS);
        all of them once the attach ends or no side answers."""
        if not self._held:
            return
        marks = [self._read_to[s] for s, _c in self._answering()]
        until = min(marks) - self.HOLD_MS if marks and not everything else float("inf")
        self._held.sort(key=lambda item: item[:2])
        n = next((i for i, item in enumerate(self._held) if item[0] > until),
                 len(self._held))
        out, self._held = self._held[:n], self._held[n:]
        for _t, _o, ev in out:
            done = self._count(ev) if ev.side in self.checkpoints else None
            self.publish((ev,))
            if done is not None:
                self.publish((done,))

    def _count(self, ev: Event) -> Checkpoint | None:
        """Feed a side's event to its checkpoint count (see QmpCheckpoints); the
        checkpoint it completes on the primary, if any (`run N` counts those)."""
        counter, view = self.checkpoints[ev.side], self.views[ev.side]
        kind = ev.kind
        ms = None
        if kind == "status":
            counter.status(ev.payload().get("migration"))
        elif kind == "vm":
            ms = counter.event(ev.qmp, ev.t_ms)
        elif kind == "colo-exit":
            counter.event("COLO_EXIT", ev.t_ms)
        view.checkpoint, view.in_flight = counter.n, counter.in_flight
        if ms is None or ev.side != "primary":
            return None
        return Checkpoint(ev.t_ms, "primary", n=counter.n, phase="commit",
                          reason=f"seen over QMP: the primary's VM stopped for {ms:.1f} ms "
                                 "(STOP, then RESUME) in COLO")

    def _stamp(self, e: dict, arrived_ms: float) -> float:
        """The session time of QMP event `e`: its own timestamp (at most `arrived_ms`,
        when it was read), or `arrived_ms` when it has none."""
        ts = e.get("timestamp")
        if isinstance(ts, dict):
            sec, usec = ts.get("seconds"), ts.get("microseconds")
            if (type(sec) is int and type(usec) is int and sec >= 0
                    and 0 <= usec < 1_000_000):
                return min(arrived_ms, (sec - self.wall0) * 1000.0 + usec / 1000.0)
        return arrived_ms

    def _take(self, side: str, c, wait: float = 0.0) -> None:
        """Read `side`'s stream to its end: its events, stamped, held."""
        evs = c.events(wait=wait)
        arrived = self._read_to[side] = self.now_ms()
        for e in evs:
            self.put(_qmp_event(self._stamp(e, arrived), side, e))

    def _read_events(self) -> None:
        from protocol.drivers.qmpclient import QmpClientError
        for side, c in self._answering():
            try:
                self._take(side, c, wait=0.05)
            except QmpClientError as exc:
                self._lose(side, exc)

    def _poll(self) -> None:
        from protocol.drivers.qmpclient import QmpClientError
        for side, c in self._answering():
            try:
                st = self.pair.side_status(side)
                at = self.now_ms()
                self._take(side, c)     # the events that came in with the answers
            except QmpClientError as exc:
                self._lose(side, exc)
                continue
            view = self.views[side]
            new = (st["status"].get("status"), st["migrate"].get("status"), st["colo"])
            old = (view.run_state, view.migration, view.colo)
            if new != old:
                view.run_state, view.migration, view.colo = new
                view.state = new[1] or view.state
                self.put(Event(at, side, "status",
                               {"run": new[0], "migration": new[1], **new[2]}))

    def sides(self) -> tuple[SideStatus, SideStatus]:
        return tuple(self.views[s].status(self.dialect) for s in SIDES)

    COMMAND_WAIT_S = 10.0

    def command(self, what: str, *args) -> None:
        """Run a QMP command on the source's thread; its error (QEMU's refusal) is
        raised here, after the statuses it changed were polled."""
        if what not in ("lost-heartbeat", "set-delay", "checkpoint"):
            raise ColoError(f"{what!r} is not something QMP can do to a live process")
        if self.done.is_set():
            raise ColoError("the QMP attach has ended")
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._commands.put((what, args, done))
        try:
            done.result(self.COMMAND_WAIT_S)
        except concurrent.futures.TimeoutError:
            raise ColoError(f"{what}: no answer over QMP within "
                            f"{self.COMMAND_WAIT_S:.0f} s") from None

    def _run_command(self, what: str, args, done) -> None:
        from protocol.drivers.qmpclient import QmpClientError
        side = args[0] if what == "lost-heartbeat" else "primary"
        sent = self.now_ms()        # the command is shown when it was sent: before its effects
        try:
            if self.views[side].gone:
                raise ColoError(f"the {side}'s QMP connection is gone (its process has "
                                "ended?)")
            if what == "lost-heartbeat":
                self.pair.lost_heartbeat(args[0])
            elif what == "set-delay":
                self.pair.set_checkpoint_delay(args[0])
            elif what == "checkpoint":
                self.pair.checkpoint()
            else:
                raise ColoError(f"{what!r} is not something QMP can do to a live process")
            self.put(Event(sent, "operator", "qmp", {"command": what, "args": list(args)}))
        except (QmpCommandError, ColoError, TimeoutError) as exc:
            if isinstance(exc, QmpClientError):
                self._lose(side, exc)
            self.put(Event(self.now_ms(), "operator", "qmp-error",
                           {"command": what, "error": getattr(exc, "desc", str(exc))}))
            self._release()
            done.set_exception(exc)
            return
        try:
            self._poll()
            self._release()
        finally:
            done.set_result(None)


def _qmp_event(t_ms: float, side: str, e: dict) -> Event:
    name, data = e.get("event", "?"), dict(e.get("data") or {})
    if name in ("STOP", "RESUME"):
        return Event(t_ms, side, "vm", {"run": "running" if name == "RESUME" else "stopped",
                                        "qmp": name})
    if name == "COLO_EXIT":
        return ColoExit(t_ms, side, mode=data.get("mode"), reason=data.get("reason"))
    if name == "MIGRATION":
        return Migration(t_ms, side, status=str(data.get("status")))
    return Event(t_ms, side, "qmp-event", {"event": name, **data})
