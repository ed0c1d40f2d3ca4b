# Typed declarations for the compiled build of outbox.py (Cython's augmenting .pxd):
# the .py stays the one copy of the logic; see protocol/compiled.py.
cdef class Outbox:
    cdef public object role, now, detail, lean, checked_msgs, stream_ram
    cdef public list segments, events
