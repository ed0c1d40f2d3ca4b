"""Re-protect after a failover: QEMU's resuming of COLO (docs/COLO-FT.txt).

After a failover one VM runs alone, unprotected.  To protect it again
("Primary/Secondary resume replication") the operator starts a new secondary
(``-incoming``: a fresh process, an empty RAM cache), syncs its disk from the
survivor's (``drive-mirror``), stops the survivor (``stop``), sets ``x-colo`` on
it and migrates to the new secondary: a whole initial migration, then
checkpoint-ready and COLO as at the start, with the survivor as the primary,
whichever role it had before.

In the simulator (``Simulation.reprotect`` calls :func:`reprotect`):

* valid only when a failover finished with exactly one survivor: one side
  alive, running, its failover state ``completed``, the other side dead (a
  split brain, a stalled side, a run without a failover is refused with a
  :class:`ReprotectError` that says why);
* the survivor's guest keeps its RAM, devices, disk, pending requests and the
  client's history, and takes the primary's network path; the new secondary's
  guest is what the initial migration leaves (the survivor's state now);
* a new link, new endpoints (the survivor's checkpoint delay kept); both
  count checkpoints on from the survivor's last committed one, so a fault plan's
  ``#N`` and the invariants' monotonic numbering go on across re-protects;
* what was still in flight on the old connection is lost (``link lost``), its
  timers are superseded, client traffic resumes, the run's bounds (target,
  time, watchdog) start again from here.

Events: ``sim reprotect`` (survivor, generation, base checkpoint) or ``sim
reprotect-refused`` (why) for a plan step that cannot run.
"""
from __future__ import annotations

import heapq

from protocol.core import failover as fo
from protocol.core.endpoint import make_endpoint
from protocol.errors import ColoError
from protocol.sim.link import MemoryLink, link_slack_ms, size_of

SIDES = ("primary", "secondary")
_OLD_LINK = frozenset(("deliver", "eof", "close"))


class ReprotectError(ColoError, ValueError):
    """A re-protect asked for when there is no lone survivor of a failover."""


def stopped_old_side(sim) -> str | None:
    """After a failover, the side whose process lives on with its VM stopped while the
    other's VM runs (no split brain, no lone survivor either: it must be killed before
    a re-protect), or None."""
    if not all(sim.alive[s] for s in SIDES) or not any(
            sim.eps[s].failover.state == fo.COMPLETED for s in SIDES):
        return None
    running = sim.active_sides()
    return next(s for s in SIDES if s != running[0]) if len(running) == 1 else None


def why_not(sim) -> str | None:
    """None when a re-protect can run now, else why not (in words)."""
    alive = [s for s in SIDES if sim.alive[s]]
    done = [s for s in alive if sim.eps[s].failover.state == fo.COMPLETED]
    if not done:
        states = ", ".join(f"{s} {sim.eps[s].failover.state}" for s in alive) or "none alive"
        return ("no failover has finished yet (failover state: " + states + "): "
                "re-protect resumes COLO after a failover")
    if len(alive) == 2:
        old = stopped_old_side(sim)
        if old is None:
            return ("both sides are alive (split brain): a re-protect starts a new secondary "
                    "for a lone survivor; kill one side first")
        ep = sim.eps[old]
        state = f"run state {ep.run_state}" + (", in error" if ep.error else "")
        return (f"only the {sim.active_sides()[0]}'s VM runs, but the old {old}'s process is "
                f"still alive (its VM stopped: {state}); a re-protect starts a new secondary "
                f"in its place: kill the {old} first")
    survivor = done[0]
    if sim.stalled[survivor]:
        return f"the survivor ({survivor}) is stopped: it cannot migrate"
    if sim.eps[survivor].run_state != "running":
        return f"the survivor ({survivor}) is not running ({sim.eps[survivor].run_state})"
    return None


def check(sim) -> None:
    """ReprotectError when a re-protect cannot run now."""
    problem = why_not(sim)
    if problem is not None:
        raise ReprotectError(f"cannot re-protect: {problem}")


def survivor_of(sim) -> str:
    return next(s for s in SIDES if sim.alive[s])


def reprotect(sim, why: str = "operator") -> str:
    """Re-protect the lone survivor of a failover; returns the survivor's old side.
    ReprotectError (nothing changed) when there is none."""
    check(sim)
    old_side = survivor_of(sim)
    old_ep = sim.eps[old_side]
    base = old_ep.checkpoint
    sim.reprotects = getattr(sim, "reprotects", 0) + 1
    _drop_old_link(sim)
    guest = sim.guests[old_side]
    cfg = sim.cfg
    kw = dict(mode=cfg.mode, checkpoint_delay_ms=old_ep.checkpoint_delay_ms,
              load_ms=cfg.load_ms, save_ms=cfg.save_ms, faithful=cfg.faithful,
              initial_stream=sim.dialect.initial_migration)
    if not sim._null_guest:
        guest.become_primary()
    eps = {"primary": make_endpoint("primary", sim.dialect, guest=guest, **kw)}
    eps["primary"].out.now = sim.now
    # docs/COLO-FT.txt: once drive-mirror synced the disk, the operator stops the
    # survivor (QMP stop), then migrates: the new secondary is the state it stopped in,
    # and nothing it does while the start happenings wait in the queue escapes that
    eps["primary"].machine.stop_vm("re-protect: the disk is synced (drive-mirror); the operator "
                                  "stops the survivor before migrating (QMP stop)", "paused")
    if sim._null_guest:
        from protocol.core.guestport import NullGuest
        new_guest = NullGuest()
    else:
        new_guest = guest.new_secondary(output_lost=cfg.svm_output_lost)
    eps["secondary"] = make_endpoint("secondary", sim.peer_dialect, guest=new_guest, **kw)
    sim.guests.clear()
    sim.guests.update(primary=guest, secondary=new_guest)
    for ep in eps.values():
        ep.checkpoint = base
        ep.out.now = sim.now
    eps["primary"].machine.last_mode = old_ep.last_mode   # QEMU keeps last_colo_mode per process
    sim.eps.clear()
    sim.eps.update(eps)
    sim._set_detail()                # the new pair's detail events: as the old one's
    hook = getattr(sim, "on_new_endpoints", None)    # e.g. the swarm's coverage count
    if hook is not None:
        hook(eps)
    sim.link = MemoryLink(latency_ms=cfg.latency_ms, bytes_per_ms=cfg.bytes_per_ms)
    for s in SIDES:
        sim.alive[s], sim.stalled[s] = True, False
        sim._forget_timer(s)                             # old timers are superseded
        sim._held[s] = []
        sim._eof_sent[s] = False
    sim._arbiter_pending = False
    sim._watchdog_fired = False
    sim._last_progress = sim.now
    sim.premise_broken = False        # the split brain (if any) ended: one side was killed
    sim._guest_tick_at = None
    sim.invariants.reprotected(base)
    sim.emit("sim", "reprotect", survivor=old_side, generation=sim.reprotects,
             checkpoint=base, why=why)
    sim._push(sim.now, "start", "secondary")
    sim._push(sim.now, "start", "primary")
    _resume_client(sim, guest)
    _extend_bounds(sim, base)
    sim.finished = False
    return old_side


def _drop_old_link(sim) -> None:
    """What the old connection still carried is lost with it; its end-of-stream and
    close happenings are moot (both endpoints are replaced)."""
    keep = []
    for item in sim._queue:
        at, _, kind, payload = item
        if kind not in _OLD_LINK:
            keep.append(item)
        elif kind == "deliver":
            sim.emit("link", "lost", dir=payload.direction, point=payload.point,
                     n=payload.checkpoint, bytes=size_of(payload.data),
                     why="the old connection is gone (re-protect)")
    heapq.heapify(keep)
    sim._queue[:] = keep
    if not sim.link.closed:
        sim.link.closed = True
        sim.emit("link", "closed", why="re-protect: a new connection to a new secondary")


def _resume_client(sim, guest) -> None:
    """The client goes on with the next request number (traffic stopped when COLO
    ended); a request still scheduled stays as it is."""
    if sim._null_guest or sim.cfg.client_every_ms <= 0:
        return
    if any(kind == "client" for _, _, kind, _ in sim._queue):
        return
    seen = [guest.devices.last_rx_id] + [r for _, r, _ in guest.pending_requests] + \
        [r.packet.req_id for r in guest.client_log.released]
    sim._push(sim.now + sim.cfg.client_every_ms, "client", max(seen) + 1)


def _extend_bounds(sim, base: int) -> None:
    """The new pair must commit at least one checkpoint (and the liveness phase's);
    the time bound and the watchdog count from now."""
    cfg = sim.cfg
    sim.target = max(sim.target, base + max(1, cfg.liveness_checkpoints))
    if cfg.max_time_ms:
        return
    delay = sim.eps["primary"].checkpoint_delay_ms
    slack = cfg.load_ms + cfg.save_ms + cfg.jitter_ms + link_slack_ms(cfg)
    left = sim.target - base
    sim.max_time_ms = max(sim.max_time_ms, sim.now + (left + 2) *
                          (delay + slack + cfg.jitter_ms + 1000) + 10 * cfg.arbiter_ms + 60_000)
    sim.watchdog_ms = 3 * (delay + cfg.jitter_ms) + slack + 2 * cfg.arbiter_ms
