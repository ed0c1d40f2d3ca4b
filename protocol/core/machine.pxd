# Typed declarations for the compiled build of machine.py (see outbox.pxd).  The
# role machines (primary.py, secondary.py) stay Python subclasses: tests and the
# injected-bug suite patch their handlers.
from protocol.core.outbox cimport Outbox
from protocol.core.timers cimport Timers

cdef class RoleMachine:
    cdef dict __dict__
    cdef public object dialect, mode, guest, checkpoint_delay_ms, load_ms, save_ms
    cdef public object faithful, initial_stream, failover, decoder, resume_reads
    cdef public object state, migration_status, last_mode, run_state, checkpoint
    cdef public object in_flight, colo_thread_alive, error, close_requested, peer_closed
    cdef public object understood, exited
    cdef public Outbox out
    cdef public Timers timers
    cdef public dict _table
