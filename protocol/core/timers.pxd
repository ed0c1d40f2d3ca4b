# Typed declarations for the compiled build of timers.py (see outbox.pxd).
cdef class Timers:
    cdef public dict _at
    cdef public Py_ssize_t changes
