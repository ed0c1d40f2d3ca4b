# Typed declarations for the compiled build of machine.py (see outbox.pxd).  The
# role machines (primary.py, secondary.py) stay Python subclasses: tests and the
# injected-bug suite patch their handlers.
cimport cython

from protocol.core.outbox cimport Outbox
from protocol.core.timers cimport Timers

cdef class RoleMachine:
    cdef dict __dict__
    cdef public object dialect, mode, guest, checkpoint_delay_ms, load_ms, save_ms
    cdef public object faithful, initial_stream, failover, decoder, resume_reads
    cdef public object state, migration_status, last_mode, run_state, checkpoint
    cdef public object in_flight, colo_thread_alive, error, close_requested, peer_closed
    cdef public Py_ssize_t understood
    cdef public object exited, role, loads_started, load_started_n
    cdef public Outbox out
    cdef public Timers timers
    cdef public dict _table, _plain
    cdef public bint _ram_outside_blob
    cdef public object _release_after

    # the helpers the handlers call on every transition: C calls in the compiled build
    # (a Python subclass that overrides one, or a test that patches it, is still called)
    cpdef bint reads_paused(self)
    @cython.locals(row=dict)
    cpdef _dispatch(self, kind, item)
    cpdef checkpoint_event(self, n, phase, reason=*, loaded_sent=*)
    cpdef load_event(self, phase, n)
    cpdef action(self, name, nbytes=*, pages=*, packets=*)
    cpdef send(self, name, value=*)
    cpdef send_payload(self, kind, point, data, pages=*)
    cpdef send_stream(self, kind, point, size, chunks, pages=*)
    cdef _sent(self, point, size, pages)
    cpdef set_timer(self, name, at_ms)
    cpdef cancel_timer(self, name)
    cpdef goto(self, state)
    cpdef set_run_state(self, run, why, n=*)
    cpdef stop_vm(self, why, state=*, n=*)
    cpdef start_vm(self, why, n=*)
    cpdef set_migration_status(self, status)
