# Typed declarations for the compiled build of core.py (Cython's augmenting .pxd; the
# .py stays the one copy of the logic; see protocol/compiled.py).  Only the
# simulator's hot loop (_SimCore) is an extension type; Simulation subclasses it.
cimport cython

from protocol.core.endpoint cimport Endpoint
from protocol.core.machine cimport RoleMachine
from protocol.core.outbox cimport Outbox
from protocol.core.timers cimport Timers
from protocol.sim.invariants cimport _Checks
from protocol.sim.link cimport Delivery, MemoryLink

cdef class _SimCore:
    cdef public dict eps, alive, stalled, _timer_at, _timer_fire
    cdef public dict _handlers, _loads, _committed, _held, _timer_seen
    cdef public list _queue, events, _react, faults
    cdef public object now, seq, _n_protocol, steps, _order, _keep_events, _on_event
    cdef public MemoryLink link
    cdef public object _null_guest, finished, max_time_ms, _last_progress
    cdef public object watchdog_ms, _jitter_rng, cfg, target, _watch
    cdef public _Checks invariants
    cdef public object _arbiter_pending, _watchdog_fired

    cpdef _push(self, at, kind, payload)
    cpdef _record(self, ev)
    @cython.locals(ep=Endpoint)
    cpdef _do_deliver(self, Delivery d)
    cpdef _watchdog_due(self, in_colo=*, force=*)
    @cython.locals(ep=Endpoint, mach=RoleMachine, out=Outbox, timers=Timers, inv=_Checks)
    cpdef _collect(self)
    @cython.locals(d=Delivery)
    cpdef _flush(self, side, batch)
    @cython.locals(p=Endpoint, s=Endpoint)
    cpdef both_in_colo(self)
    @cython.locals(p=RoleMachine, s=RoleMachine)
    cpdef _check_end(self)
    cpdef _forget_timer(self, side)
