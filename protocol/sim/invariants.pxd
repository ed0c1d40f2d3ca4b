# Typed declarations for the compiled build of invariants.py (see protocol/core/outbox.pxd):
# the checks every event gets read and write C fields.  Invariants stays a Python
# subclass (tests patch its fail and at_end).
cdef class _Checks:
    cdef dict __dict__
    cdef public object sim, watch, _committed, _size_sent, _size_expected
    cdef public object loading_n, _received_whole
    cdef public dict ok, _last_commit, _received, _snapshots, _state, _in_flight
    cdef public list violations

    cpdef on_event(self, ev)
    cdef _on_state(self, ev)
    cdef _on_checkpoint(self, ev)
    cdef _on_send(self, ev)
    cdef _on_device_state(self, ev)
    cdef _on_load(self, ev)
    cdef _on_recv(self, ev)
    cdef _on_action(self, ev)
    cdef _on_stopped(self, ev)
