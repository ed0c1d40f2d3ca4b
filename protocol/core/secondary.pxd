# Typed declarations for the compiled build of secondary.py (see outbox.pxd): the
# handlers' base is an extension type; SecondaryMachine stays a Python subclass.
from protocol.core.machine cimport RoleMachine

cdef class _SecondaryCore(RoleMachine):
    cdef public object vmstate_loading, pages_flushed_total, _eof_pending, _blob, _pctx

    cpdef bint reads_paused(self)
