# Typed declarations for the compiled build of link.py (see protocol/core/outbox.pxd):
# the simulator schedules and delivers every piece of output through these.
cdef class Delivery:
    cdef public double at_ms
    cdef public object direction, data, point, checkpoint, note


cdef class MemoryLink:
    cdef dict __dict__
    cdef public double latency_ms, bytes_per_ms, held_until_ms
    cdef public bint closed, closing, keep_wire
    cdef public Py_ssize_t max_wire_bytes
    cdef public dict _free_at, wire

    cpdef Delivery schedule(self, double now, direction, data, point, checkpoint,
                            double extra_delay_ms=*, note=*)
