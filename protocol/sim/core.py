"""The deterministic simulator: a virtual clock, a memory link, one seed.

Every random choice is drawn from ``random.Random(seed)``; time is virtual
milliseconds; the link moves bytes only when the simulation steps.  A step is
one scheduled happening (a delivery, an end of stream, a timer, an operator
input, the arbiter) and the events it caused.  The invariants are checked
after every step.
"""
from __future__ import annotations

import itertools
import random
from heapq import heappop, heappush

from protocol.core import dialects
from protocol.core import failover as fo
from protocol.core import faults as fl
from protocol.core.endpoint import make_endpoint
from protocol.core.events import ColoExit, Deliver, Error, Event, Failover, Vm, make, set_seq
from protocol.errors import QmpCommandError
from protocol.sim.config import MAX_CHECKPOINT_DELAY_MS, SimConfig, check_checkpoint_delay
from protocol.sim.invariants import KINDS, Invariants
from protocol.sim.link import P2S, S2P, MemoryLink, link_slack_ms, size_of
from protocol.sim.session_view import SimulationSession

SIDES = ("primary", "secondary")
_WATCH = frozenset((Error, ColoExit, Vm, Failover))   # classes: identity tests (hot path)
_BACKGROUND = frozenset(("client", "guest-tick"))
OTHER = {"primary": "secondary", "secondary": "primary"}


def _make_guests(cfg: SimConfig, dialect) -> dict:
    if cfg.guest == "null":
        from protocol.core.guestport import NullGuest
        return {s: NullGuest() for s in SIDES}
    if cfg.guest != "model":
        raise ValueError(f"guest must be null or model, not {cfg.guest!r}")
    from protocol.guest.model import Guest
    primary, secondary = Guest.pair(cfg.seed, ram_mib=cfg.ram_mib, workload=cfg.workload,
                                    rate=cfg.rate, xbzrle=cfg.xbzrle, mode=cfg.mode,
                                    dialect=dialect.name, divergence_rate=cfg.divergence)
    secondary.output_lost = cfg.svm_output_lost
    return {"primary": primary, "secondary": secondary}


class _SimCore:
    """The simulator's hot loop: scheduling, stepping, delivering and collecting what
    the endpoints said.  Its own class so that the compiled build can make it an
    extension type with typed attributes (sim/core.pxd); `Simulation` adds the rest."""

    def _push(self, at: float, kind: str, payload) -> None:
        heappush(self._queue, (at, next(self._order), kind, payload))

    def _record(self, ev: Event) -> None:
        if ev.side != "client":
            self._n_protocol += 1
        ev.stamp(self.seq)
        self.seq += 1
        if self._keep_events:
            self.events.append(ev)
        if type(ev) in KINDS:
            self.invariants.on_event(ev)
        if self._on_event is not None:
            self._on_event(ev)

    def step(self) -> list[Event]:
        """Run one happening; returns the events it produced."""
        if self.finished:
            return []
        first = len(self.events)
        mark, background = self._n_protocol, 0
        while True:
            if not self._queue:
                if self._watchdog_due(force=True):
                    continue
                self._finish(stuck=True)
                return self.events[first:]
            at, _, kind, payload = heappop(self._queue)
            if kind == "timer" and self._timer_fire[payload] != at:
                continue            # superseded
            if kind == "timer" and (not self.alive[payload] or self.stalled[payload]):
                continue
            if at > self.now:
                self.now = at
            null = self._null_guest
            if not null:
                self._advance_guests()
            self._handlers[kind](payload)
            self._collect()
            if not null:
                self._schedule_guest()
            background += 1
            if kind not in _BACKGROUND or not self._queue or self._n_protocol != mark \
                    or background >= 1000 or self.now > self.max_time_ms \
                    or self._watchdog_due():
                break
            # client traffic and compare scans are the guest's life, not protocol steps:
            # a step ends at the next happening of the protocol itself
        self.steps += 1
        self._check_end()
        return self.events[first:]

    def run(self, max_steps: int | None = None) -> None:
        limit = max_steps if max_steps is not None else self.cfg.max_steps
        n = 0
        while not self.finished and n < limit:
            self.step()
            n += 1

    def _do_deliver(self, d) -> None:
        side = "secondary" if d.direction == P2S else "primary"
        if self.link.closed or not self.alive[side]:
            self.emit("link", "lost", dir=d.direction, point=d.point, n=d.checkpoint,
                      bytes=size_of(d.data), why="connection closed")
            return
        if self.stalled[side]:
            self._held[side].append(d)
            self.emit("link", "held", dir=d.direction, point=d.point, bytes=size_of(d.data),
                      why=f"{side} is stopped")
            return
        data = d.data
        if self._keep_events or self._on_event is not None:
            self._record(Deliver(self.now, "link", dir=d.direction, point=d.point,
                                 n=d.checkpoint, bytes=size_of(data), note=d.note or None))
        else:       # nobody reads it and no invariant checks it: only its number is taken
            self._n_protocol += 1
            self.seq += 1
        ep = self.eps[side]
        if type(data) is tuple:
            for part in data:
                ep.receive_data(part, self.now)
        else:
            ep.receive_data(data, self.now)

    def _do_timer(self, side: str) -> None:
        self._forget_timer(side)
        self.eps[side].handle_timer(self.now)

    def _forget_timer(self, side: str) -> None:
        """The side's scheduled timer is spent or superseded: the next collect
        schedules its endpoint's deadline afresh, changed or not."""
        self._timer_at[side] = self._timer_fire[side] = None
        self._timer_seen[side] = -1

    def _watchdog_due(self, in_colo: bool | None = None, force: bool = False) -> bool:
        """The manager's watchdog: COLO made no progress for a long time."""
        if not force and self.now - self._last_progress <= self.watchdog_ms:
            return False
        if not self.cfg.arbiter or self._arbiter_pending or self._watchdog_fired:
            return False
        if in_colo is None:
            in_colo = self.both_in_colo()
        # the primary still waits in COLO (for checkpoint-ready, or for a secondary whose
        # COLO thread is gone while its process lives on): the manager notices that too
        waiting = self.alive["primary"] and self.alive["secondary"] and \
            self.eps["primary"].colo_thread_alive
        if not in_colo and not waiting:
            return False
        if force or self.now - self._last_progress > self.watchdog_ms:
            self._arbiter_pending = True
            self._push(self.now + (self.cfg.arbiter_ms if force else 0), "arbiter", "watchdog")
            return True
        return False

    def _collect(self) -> None:
        eps, alive, timer_at, seen = self.eps, self.alive, self._timer_at, self._timer_seen
        for side in SIDES:
            ep = eps[side]
            mach, out, timers = ep.machine, ep.out, ep.timers
            evs, segs = out.events, out.segments
            if not evs and not segs and not mach.close_requested and \
                    timers.changes == seen[side]:
                continue                      # nothing happened on this side
            if not alive[side]:
                out.take_segments()
                out.take_events()
                continue
            if evs:
                out.events = []
                self._n_protocol += len(evs)
                seq = self.seq
                self.seq = seq + len(evs)
                keep = self._keep_events
                if keep:
                    self.events.extend(evs)
                cb = self._on_event
                if cb is not None or keep:
                    for ev in evs:        # numbered for those who see them (no one else)
                        set_seq(ev, seq)
                        seq += 1
                react, inv, watch = self._react, self.invariants, self._watch
                for ev in evs:
                    kind = type(ev)
                    if kind in KINDS:       # (the classes the invariants check)
                        inv.on_event(ev)
                    if cb is not None:
                        cb(ev)
                    if kind in watch:
                        react.append(ev)
                # the simulator's reactions come after the whole batch: the events they
                # emit are numbered after it, so on_event (recordings, the UIs) sees them
                # in the same order as `events`
                if react:
                    self._react = []
                    for ev in react:
                        self._after_endpoint_event(side, ev)
            # the endpoint's control outputs, not its event stream, drive the reactions
            if mach.loads_started != self._loads[side]:    # a checkpoint load began
                self._loads[side] = mach.loads_started
                self._fire_process_faults("load", mach.load_started_n, side)
            if mach.checkpoint != self._committed[side]:   # the committed-checkpoint counter
                self._committed[side] = mach.checkpoint
                self._last_progress = self.now
            segs = out.segments           # (a reaction may have added some)
            if segs:
                out.segments = []
                if self.faults or not alive[side] or self.stalled[side] or self.link.closing:
                    batch: list = []
                    for seg in segs:
                        if self._plain(side, seg):
                            batch.append(seg)   # written together: one TCP burst, one delivery
                            continue
                        self._flush(side, batch)
                        self._send(side, seg)
                    self._flush(side, batch)
                else:                           # no fault planned: all of it goes as one
                    self._flush(side, segs)
            if mach.close_requested and not self.link.closing:
                self.close_link(f"{side} shut the connection down")
            if mach.exited and alive[side]:
                alive[side] = False
                self.emit(side, "process", what="exit", why="the process exited")
            if timers.changes == seen[side]:  # (a reaction may have set or cancelled some)
                continue
            seen[side] = timers.changes
            deadlines = timers._at        # Timers.next_deadline, without the call
            dl = min(deadlines.values()) if deadlines else None
            if dl != timer_at[side]:
                timer_at[side] = dl
                self._timer_fire[side] = None
                if dl is not None:
                    at = max(dl, self.now)
                    if self._jitter_rng is not None:
                        at += round(self._jitter_rng.uniform(0.0, self.cfg.jitter_ms), 3)
                    self._timer_fire[side] = at
                    self._push(at, "timer", side)

    def _flush(self, side: str, batch: list) -> None:
        if not batch:
            return
        direction = P2S if side == "primary" else S2P
        if len(batch) == 1:
            data = batch[0].data
            point = batch[0].point
        else:
            pieces = [g.data for g in batch]
            point = "+".join([g.point for g in batch])
            if sum(map(len, pieces)) < 1 << 20:
                data = b"".join(pieces)
            else:                    # a big burst travels as its pieces: no 100 MB join
                data = tuple(pieces)
        d = self.link.schedule(self.now, direction, data, point, batch[-1].checkpoint)
        self._push(d.at_ms, "deliver", d)
        batch.clear()

    def both_in_colo(self) -> bool:
        # the machines' own fields (an endpoint's colo_thread_alive is a property that
        # reads the same, by name: this runs after every step)
        alive, eps = self.alive, self.eps
        if not (alive["primary"] and alive["secondary"]):
            return False
        p, s = eps["primary"], eps["secondary"]
        return p.machine.colo_thread_alive and s.machine.colo_thread_alive

    def _check_end(self) -> None:
        if self.finished:
            return
        if self.invariants.violations and self.cfg.stop_on_violation:
            self._finish()            # the first broken invariant ends the run, seed in hand
            return
        p, s = self.eps["primary"].machine, self.eps["secondary"].machine
        in_colo = self.both_in_colo()
        if in_colo and p.checkpoint >= self.target and s.checkpoint >= self.target and \
                p.state in ("IDLE", "WAIT_REPLY"):
            # WAIT_REPLY: a checkpoint asked for during the last one began back to back
            self._finish()
        elif self._watchdog_due(in_colo):
            pass
        elif not in_colo and self._settled():
            self._finish()
        elif self.steps >= self.cfg.max_steps or self.now > self.max_time_ms:
            self._finish(stuck=True)


class Simulation(_SimCore, SimulationSession):
    def __init__(self, config: SimConfig | None = None, *, on_event=None,
                 keep_events: bool = True) -> None:
        self.cfg = cfg = config or SimConfig()
        self.dialect = dialects.get(cfg.dialect)
        if cfg.mode not in ("periodic", "hybrid"):
            raise ValueError(f"mode must be periodic or hybrid, not {cfg.mode!r}")
        check_checkpoint_delay(cfg.checkpoint_delay_ms, cfg.guest)
        self.faults = fl.parse_all(cfg.faults)
        for f in self.faults:
            self.check_fault(f)
        self.rng = random.Random(cfg.seed)
        self._jitter_rng = random.Random(cfg.seed ^ 0x7177E5) if cfg.jitter_ms > 0 else None
        self.link = MemoryLink(latency_ms=cfg.latency_ms, bytes_per_ms=cfg.bytes_per_ms)
        self.guests = _make_guests(cfg, self.dialect)
        self._null_guest = cfg.guest == "null"
        kw = dict(mode=cfg.mode, checkpoint_delay_ms=cfg.checkpoint_delay_ms,
                  load_ms=cfg.load_ms, save_ms=cfg.save_ms, faithful=cfg.faithful,
                  initial_stream=self.dialect.initial_migration)
        self.peer_dialect = dialects.get(cfg.secondary_dialect or cfg.dialect)
        self.eps = {"primary": make_endpoint("primary", self.dialect,
                                             guest=self.guests["primary"], **kw),
                    "secondary": make_endpoint("secondary", self.peer_dialect,
                                               guest=self.guests["secondary"], **kw)}
        self.alive = {s: True for s in SIDES}
        self.stalled = {s: False for s in SIDES}
        self.now = 0.0
        self.steps = 0
        self.seq = 0
        #: each endpoint's committed-checkpoint counter as last seen (the watchdog's progress)
        self._committed = {s: 0 for s in SIDES}
        self._loads = {s: 0 for s in SIDES}             # each endpoint's loads_started
        self.events: list[Event] = []
        self._keep_events = keep_events
        self._on_event = on_event
        self.inputs: list[dict] = []
        self.plan = fl.FaultPlan(self.faults)
        self.fired: set[int] = self.plan.fired
        self.premise_broken = False
        self.finished = False
        self.hung: str | None = None
        self._queue: list = []
        self._order = itertools.count()
        self._timer_at = {s: None for s in SIDES}      # the endpoint's deadline
        self._timer_fire = {s: None for s in SIDES}    # when it fires (deadline + jitter)
        self._timer_seen = {s: -1 for s in SIDES}      # its Timers.changes then
        self._held = {s: [] for s in SIDES}
        self._arbiter_pending = False
        self._eof_sent = {s: False for s in SIDES}
        self._last_progress = 0.0
        self._n_protocol = 0          # events of the protocol (not the client's traffic)
        self._watchdog_fired = False
        self.invariants = Invariants(self)
        self._set_detail()
        #: the endpoint events the simulator reacts to, after their batch
        self._react: list[Event] = []
        #: the endpoint event classes the simulator reacts to (after their batch)
        self._watch = _WATCH - {Vm} if self._null_guest else _WATCH   # (Vm: it stops
        #                                       no null guest: nothing to react to)
        self._handlers = {k: getattr(self, "_do_" + k.replace("-", "_")) for k in (
            "start", "deliver", "eof", "timer", "input", "arbiter", "fault", "close",
            "client", "guest-tick", "reprotect")}
        self.failovers = 0            # failovers finished (a plan step's @failover#N)
        self.reprotects = 0
        self._push(0.0, "start", "secondary")
        self._push(0.0, "start", "primary")
        self._guest_tick_at = None
        if not self._null_guest and cfg.client_every_ms > 0:
            self._push(cfg.client_every_ms, "client", 1)
        delay = self.eps["primary"].checkpoint_delay_ms
        last_fault = max((f.checkpoint for f in self.faults if f.point not in fl.MOMENTS),
                         default=0)
        self.target = max(cfg.checkpoints, last_fault + cfg.liveness_checkpoints)
        slack = cfg.load_ms + cfg.save_ms + cfg.jitter_ms + link_slack_ms(cfg)
        self.watchdog_ms = 3 * (delay + cfg.jitter_ms) + slack + 2 * cfg.arbiter_ms
        self.max_time_ms = cfg.max_time_ms or (
            (self.target + 2) * (delay + slack + cfg.jitter_ms + 1000)
            + 10 * cfg.arbiter_ms + 60_000)

    # ------------------------------------------------------- who reads the events
    @property
    def on_event(self):
        """Called with each event as it happens (recordings, the UIs), or None."""
        return self._on_event

    @on_event.setter
    def on_event(self, callback) -> None:
        self._on_event = callback
        self._set_detail()

    @property
    def keep_events(self) -> bool:
        """Whether ``events`` keeps every event."""
        return self._keep_events

    @keep_events.setter
    def keep_events(self, keep: bool) -> None:
        self._keep_events = keep
        self._set_detail()

    def _set_detail(self) -> None:
        """The endpoints emit their detail events (vm, migration, the actions no
        invariant checks) when someone reads them: kept events, a subscriber, or a
        guest model (whose stop for a checkpoint the simulator follows by its vm
        event).  A run nobody watches (the benchmark, the swarm) skips them."""
        detail = self._keep_events or self._on_event is not None or not self._null_guest
        for side, ep in self.eps.items():
            out = ep.out
            out.detail = detail
            # nobody reads them: only the invariants' messages still make send/recv events
            out.lean = not detail
            out.checked_msgs = self.invariants.messages_checked(side)

    # ------------------------------------------------------------ scheduling
    def check_fault(self, f) -> None:
        """Refuse a fault this session's dialect cannot carry (FaultSpecError)."""
        fl.check_fault(f, self.dialect)

    def emit(self, side: str, kind: str, /, **data) -> None:
        self._record(make(self.now, side, kind, **data))

    # ---------------------------------------------------------------- stepping
    def run_until(self, predicate, max_steps: int = 1_000_000) -> bool:
        for _ in range(max_steps):
            if self.finished:
                return bool(predicate(self))
            self.step()
            if predicate(self):
                return True
        return False

    # -------------------------------------------------------------- happenings
    def _do_start(self, side: str) -> None:
        self.eps[side].start(self.now)

    def _do_eof(self, side: str) -> None:
        if self.alive[side] and not self.stalled[side]:
            self.eps[side].receive_eof(self.now)

    def _do_input(self, item: dict) -> None:
        self.apply_input(item, record=False)

    def _do_arbiter(self, payload) -> None:
        self._arbiter_pending = False
        if payload == "watchdog":
            self._watchdog()
        else:
            self._arbitrate()

    def _watchdog(self) -> None:
        if any(self.eps[s].failover.state != fo.NONE for s in SIDES if self.alive[s]):
            return
        self._watchdog_fired = True
        self.emit("arbiter", "watchdog", why="no checkpoint completed for "
                  f"{self.now - self._last_progress:.0f} ms: fence the secondary, keep the primary")
        self.kill("secondary", "fenced by the arbiter's watchdog")
        self._arbiter_pending = False
        self._arbitrate()

    def _do_fault(self, f) -> None:
        self._process_fault(f)

    # ---------------------------------------------------------------- outputs
    def _after_endpoint_event(self, side: str, ev: Event) -> None:
        kind = type(ev)
        if kind is Error or (kind is ColoExit and ev.reason == "error"):
            self.arbiter_watch()
        elif kind is Failover and \
                ev.to == self.eps[side].dialect.failover_name(fo.COMPLETED):
            self.failovers += 1
            self._fire_process_faults("failover", self.failovers, side)
        elif kind is Vm and side == "primary" and ev.run == "colo" \
                and not self._null_guest:
            ep = self.eps["primary"]
            # (the run state "colo" is a failover's stop too: that one is no checkpoint's)
            if ep.in_flight and ep.failover.state == fo.NONE:
                self.emit("primary", "stopped-for-checkpoint", n=ep.in_flight)

    def _matching(self, point: str, n: int) -> list[int]:
        return self.plan.pending(point, n)

    def _fire_process_faults(self, point: str, n: int, side: str) -> None:
        if not self.faults:
            return
        for f in self.plan.take(point, n, link=False):
            self._process_fault(f)

    def _plain(self, side: str, seg) -> bool:
        return (self.alive[side] and not self.stalled[side] and not self.link.closing
                and not (self.faults and self._matching(seg.point, seg.checkpoint)))

    def _send(self, side: str, seg) -> None:
        direction = P2S if side == "primary" else S2P
        n = seg.checkpoint
        self._fire_process_faults(seg.point, n, side)
        if not self.alive[side] or self.stalled[side]:
            self.emit("link", "lost", dir=direction, point=seg.point, n=n,
                      bytes=len(seg.data), why=f"{side} is gone before the bytes left")
            return
        if self.link.closing:
            self.emit("link", "lost", dir=direction, point=seg.point, n=n,
                      bytes=len(seg.data), why="connection closed")
            return
        here = self.plan.take(seg.point, n, link=True)
        for f in here:
            self.emit("link", "fault", spec=str(f), dir=direction, point=seg.point, n=n)
        send_d = self.dialect if side == "primary" else self.peer_dialect
        eff = fl.link_effect(here, seg.data, send_d, seg.point, seg.value, self.rng)
        if eff.close_before:
            closer = next(f for f in here if f.kind == eff.close_before)
            self.close_link(f"fault {closer}", abrupt=closer.kind == "reset")
            if eff.close_before == "reset":
                return
        if eff.copies == 0:
            self.emit("link", "dropped", dir=direction, point=seg.point, n=n,
                      bytes=len(seg.data))
        for _ in range(eff.copies):
            d = self.link.schedule(self.now, direction, eff.data, seg.point, n,
                                   eff.extra_delay_ms)
            self._push(d.at_ms, "deliver", d)
        if eff.close_after:
            self.close_link("fault truncate: the connection closes after half the bytes")

    def close_link(self, why: str, abrupt: bool = False) -> None:
        """Close the connection: gracefully (FIN after the bytes in flight) or abruptly
        (RST: what is in flight is lost)."""
        if self.link.closed or (self.link.closing and not abrupt):
            return
        self.link.closing = True
        if abrupt:
            self.link.closed = True
            when = self.now + self.link.latency_ms
        else:
            when = max(self.now, *self.link._free_at.values()) + self.link.latency_ms
        self.emit("link", "closing" if not abrupt else "closed", why=why)
        for side in SIDES:
            if not self._eof_sent[side]:
                self._eof_sent[side] = True
                self._push(when, "eof", side)
        if not abrupt:
            self._push(when, "close", why)

    def _do_close(self, why: str) -> None:
        if not self.link.closed:
            self.link.closed = True
            self.emit("link", "closed", why=why)

    # ------------------------------------------------------------------ faults
    def _process_fault(self, f) -> None:
        self.emit("sim", "fault", spec=str(f))
        kind = f.kind
        if kind.startswith("kill-"):
            self.kill(kind[5:], f"fault {f}")
        elif kind.startswith("stall-"):
            self.stall(kind[6:], f"fault {f}")
        elif kind.startswith("heartbeat-"):
            side = kind[10:]
            peer = OTHER[side]
            if self.alive[peer] and not self.stalled[peer]:
                self.premise_broken = True
            self.lost_heartbeat(side)
        elif kind == "partition":
            self.link.partition(self.now, float(f.arg))
            self.emit("link", "partition", until=self.now + float(f.arg))
        elif kind == "shutdown":
            self.eps["primary"].guest_shutdown(self.now)
        elif kind == "reprotect":     # after this batch: the endpoints are replaced
            self._push(self.now, "reprotect", str(f))

    def _do_reprotect(self, spec: str) -> None:
        from protocol.sim.reprotect import ReprotectError, reprotect
        try:
            reprotect(self, why=f"plan step {spec}")
        except ReprotectError as exc:
            self.emit("sim", "reprotect-refused", spec=spec,
                      why=str(exc).removeprefix("cannot re-protect: "))

    def kill(self, side: str, why: str) -> None:
        if not self.alive[side]:
            return
        self.alive[side] = False
        self.stalled[side] = False
        self.guests[side].stop()
        self.emit(side, "process", what="killed", why=why)
        self._held[side].clear()
        self.close_link(f"{side} died: its kernel closes the socket")
        self.arbiter_watch()

    def stall(self, side: str, why: str) -> None:
        if not self.alive[side] or self.stalled[side]:
            return
        self.stalled[side] = True
        self.emit(side, "process", what="stalled", why=why)
        self.arbiter_watch()

    def lost_heartbeat(self, side: str) -> bool:
        if not self.alive[side] or self.stalled[side]:
            self.emit("operator", "qmp-error", side=side, command="x-colo-lost-heartbeat",
                      error=f"the {side} does not answer")
            return False
        try:
            self.eps[side].lost_heartbeat(self.now)
        except QmpCommandError as exc:
            self.emit("operator", "qmp-error", side=side, command="x-colo-lost-heartbeat",
                      error=exc.desc)
            return False
        return True

    # ----------------------------------------------------------------- arbiter
    def arbiter_watch(self) -> None:
        if self.cfg.arbiter and not self._arbiter_pending:
            self._arbiter_pending = True
            self._push(self.now + self.cfg.arbiter_ms, "arbiter", None)

    def _arbitrate(self) -> None:
        eps = self.eps
        for s in SIDES:               # a silent side is fenced, even after a survivor was
            if self.stalled[s]:       # chosen (it would hold its resources forever)
                self.emit("arbiter", "fence", side=s, why="no heartbeat: fence the silent side")
                self.kill(s, "fenced by the arbiter")
        if any(eps[s].failover.state != fo.NONE for s in SIDES if self.alive[s]):
            return                      # somebody already chose a survivor
        live = [s for s in SIDES if self.alive[s]]
        if len(live) == 2:
            if all(eps[s].state not in ("ERROR",) for s in SIDES):
                return
            self.emit("arbiter", "fence", side="secondary",
                      why="both alive but COLO broke: keep the primary")
            self.kill("secondary", "fenced by the arbiter")
            live = ["primary"]
        if len(live) == 1:
            s = live[0]
            if eps[s].colo_mode != fo.MODE_NONE:
                self.emit("arbiter", "failover", side=s, why="the peer is gone")
                self.lost_heartbeat(s)

    # ----------------------------------------------------------------- inputs
    def apply_input(self, item: dict, *, record: bool = True) -> None:
        """An operator input: {"cmd": "lost-heartbeat"|"checkpoint"|"set-delay"|
        "kill"|"stall"|"shutdown"|"fault"|"reprotect", "side": ..., "value": ...}.
        A reprotect that cannot run raises ReprotectError before anything is recorded."""
        cmd, side = item.get("cmd"), item.get("side", "primary")
        if cmd == "reprotect":        # refused before it is recorded (ReprotectError)
            from protocol.sim.reprotect import check
            check(self)
        if record:
            self.inputs.append({"step": self.steps, **item})
        self.emit("operator", "input", **item)
        if cmd == "lost-heartbeat":
            peer = OTHER[side]
            if self.alive[peer] and not self.stalled[peer]:
                self.premise_broken = True
            self.lost_heartbeat(side)
        elif cmd == "checkpoint":
            self.eps["primary"].request_checkpoint(self.now, "operator")
        elif cmd == "set-delay":
            if not self._null_guest:        # (beyond a uint32: QEMU's own QMP error, below)
                check_checkpoint_delay(min(int(item["value"]), MAX_CHECKPOINT_DELAY_MS),
                                       self.cfg.guest)
            for s in SIDES:
                try:
                    self.eps[s].set_checkpoint_delay(int(item["value"]), self.now)
                except QmpCommandError as exc:
                    self.emit("operator", "qmp-error", side=s, error=exc.desc)
        elif cmd == "kill":
            self.kill(side, "operator: kill")
        elif cmd == "stall":
            self.stall(side, "operator: stall")
        elif cmd == "shutdown":
            self.eps["primary"].guest_shutdown(self.now)
        elif cmd == "fault":
            f = fl.parse(item["value"])
            self.check_fault(f)
            self.faults.append(f)
            if f.point not in fl.MOMENTS:
                self.target = max(self.target, f.checkpoint)
        elif cmd == "reprotect":
            from protocol.sim.reprotect import reprotect
            reprotect(self)
        else:
            raise ValueError(f"unknown input {cmd!r}")
        self._collect()
        self.finished = False
        self._check_end()

    # -------------------------------------------------------------------- end
    def _advance_guests(self) -> None:
        if self._null_guest:
            return
        for side, guest in self.guests.items():
            if self.alive[side] and not self.stalled[side]:
                guest.advance(int(self.now))
        primary = self.guests["primary"]
        if self.alive["primary"] and primary.checkpoint_requested():
            self.eps["primary"].request_checkpoint(self.now, "colo-compare")

    def _do_client(self, req_id: int) -> None:
        """A client request reaches the PVM (filter-mirror copies it to the SVM)."""
        nxt = req_id + 1
        if self.alive["primary"] and not self.stalled["primary"]:
            payload = f"GET /{self.cfg.seed}/{req_id}".encode()
            self.guests["primary"].client_request(req_id, payload)
            self.emit("client", "request", id=req_id)
        elif self.alive["secondary"] and self.eps["secondary"].failover.state == fo.COMPLETED:
            payload = f"GET /{self.cfg.seed}/{req_id}".encode()
            self.guests["secondary"].client_request(req_id, payload)
            self.emit("client", "request", id=req_id, to="secondary")
        if not self._colo_over():
            self._push(self.now + self.cfg.client_every_ms, "client", nxt)

    def _do_guest_tick(self, _payload) -> None:
        self._guest_tick_at = None           # colo-compare's stale scan ran in advance()

    def _schedule_guest(self) -> None:
        if self._null_guest or not self.alive["primary"]:
            return
        dl = self.guests["primary"].next_deadline_ms()
        if dl is not None and dl > self.now and dl != self._guest_tick_at:
            self._guest_tick_at = dl
            self._push(dl, "guest-tick", None)

    def _colo_over(self) -> bool:
        return not any(self.alive[s] and self.eps[s].colo_thread_alive for s in SIDES)

    def active_sides(self) -> list[str]:
        return [s for s in SIDES if self.alive[s] and not self.stalled[s]
                and self.eps[s].run_state == "running"]

    def _settled(self) -> bool:
        if self._arbiter_pending:
            return False
        for s in SIDES:
            ep = self.eps[s]
            if not self.alive[s]:
                continue
            if self.stalled[s] or ep.colo_thread_alive or ep.next_deadline() is not None:
                return False
            if ep.failover.state in (fo.REQUIRE, fo.ACTIVE, fo.RELAUNCH):
                return False
        return not any(k not in ("timer", "arbiter", "client", "guest-tick")
                       for _, _, k, _ in self._queue)

    def _finish(self, stuck: bool = False) -> None:
        if stuck and not self._settled():
            waiting = [s for s in SIDES if self.alive[s] and self.eps[s].colo_thread_alive]
            self.hung = (f"no progress: {', '.join(waiting) or 'nobody'} still waiting at "
                         f"{self.now:.1f} ms (state {self.eps['primary'].state}/"
                         f"{self.eps['secondary'].state}); COLO has no timeout (B13)")
        self.finished = True
        self.invariants.at_end()
        self.emit("sim", "end", outcome=self.outcome(), steps=self.steps)

    def outcome(self) -> str:
        active = self.active_sides()
        failed_over = any(self.eps[s].failover.state == fo.COMPLETED for s in SIDES)
        if self.hung:
            return "error"
        if self.both_in_colo() and not failed_over:
            return "ok"
        if self.eps["primary"].run_state == "shutdown" and all(
                self.eps[s].run_state == "shutdown" and self.eps[s].error is None
                for s in SIDES if self.alive[s]):
            return "ok"            # the guest powered off and COLO followed it down
        if len(active) >= 2:
            return "split-brain"
        if len(active) == 1 and (failed_over or not self.alive[OTHER[active[0]]]):
            return "failover"
        return "error"
