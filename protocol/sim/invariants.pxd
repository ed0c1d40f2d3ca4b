# Typed declarations for the compiled build of invariants.py (see protocol/core/outbox.pxd):
# the checks every event gets read and write C fields.  Invariants stays a Python
# subclass (tests patch its fail and at_end).
cdef class _Checks:
    cdef dict __dict__
    cdef public object sim, watch, _committed, _size_sent, _size_expected
    cdef public object loading_n, _received_whole
    cdef public dict ok, _last_commit, _received, _snapshots, _state, _in_flight, _by_class
    cdef public list violations
