# Typed declarations for the compiled build of primary.py (see outbox.pxd): the
# handlers' base is an extension type; PrimaryMachine stays a Python subclass.
from protocol.core.machine cimport RoleMachine

cdef class _PrimaryCore(RoleMachine):
    cdef public object shutdown_requested, _trigger_pending, _trigger_reason
    cdef public object _last_begin, _blob, _ram_ctx

cdef object _STREAM
cdef object _stream()
