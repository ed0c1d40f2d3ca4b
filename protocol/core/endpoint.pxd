# Typed declarations for the compiled build of endpoint.py (see outbox.pxd).
from protocol.core.codec cimport Decoder
from protocol.core.machine cimport RoleMachine
from protocol.core.outbox cimport Outbox
from protocol.core.timers cimport Timers

cdef class Endpoint:
    cdef dict __dict__
    cdef public Outbox out
    cdef public Timers timers
    cdef public Decoder decoder
    cdef public RoleMachine machine
    cdef public object failover, progress_timeout_ms, _progress_seen
    cdef public object segments_to_send, take_events, next_deadline

    cdef _on_item(self, item)
