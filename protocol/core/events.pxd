# Typed declarations for the compiled build of events.py (see outbox.pxd): the one
# piece of output each machine builds per message, RAM part and blob.  The event
# kinds stay Python classes (their __init__ is protocol.core.eventinit's).
cdef class Segment:
    cdef public object kind, point, data, checkpoint, value, chunks, size

    cpdef wire(self)
