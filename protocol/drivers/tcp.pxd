# Typed declarations for the compiled build of tcp.py (see protocol/core/outbox.pxd):
# the engine is an extension type, its fields C fields and its per-wake-up steps C
# calls.  Compiled without them it ran no faster than CPython 3.11's own
# attribute caches (callgrind); a field a test or tool sets stays public.
cdef class Engine:
    cdef dict __dict__
    cdef public object ep, loop, on_events, on_crash, crashed, before_input
    cdef public object transport, closed, _timer, _timer_at, _buf, _view, _queue
    cdef public bint nodelay, coalesce, close_on_error, _reading, _closing, detached
    cdef public bint _start_on_connect, _write_paused
    cdef public object max_write_buffer_bytes
    cdef public double t0, last_rx_ms
    cdef public object bytes_in, bytes_out, writes

    cpdef _on_data(self, nbytes)
    cpdef pump(self)
    cdef _fire_due(self, ep)
    cpdef _flush(self, ep)
    cpdef _write_parts(self, t, list parts)
    cpdef _queue_segments(self, segs)
    cpdef _drain(self, bint everything=*)
    cpdef _arm(self, dl)
