# cython: language_level=3, boundscheck=False, wraparound=False
"""Event kinds' ``__init__``, the compiled twin of `protocol.core._eventinit_py` (the
spec: same signature, same defaults, same errors).

The ``__init__`` writes each slot from C at the slot's own offset (a slot still
empty, as in a new event: the reference is stored as is; one already set: through
``PyMember_SetOne``, what the descriptor's ``__set__`` does), without a Python call
per field, and parses the keywords against the kind's table; its positional builder
skips the class call and the keywords too (State, CPU time on the development machine:
73 ns, against 417 for the class call with the generated Python ``__init__``).
"""
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport uint64_t

cdef extern from "Python.h":
    ctypedef struct _Type "PyTypeObject":
        PyObject *(*tp_alloc)(_Type *, Py_ssize_t)
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

cdef extern from *:
    """
    static inline int colo_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    """
    int ctz64 "colo_ctz64"(uint64_t x) nogil

cdef extern from "structmember.h":
    int PyMember_SetOne(char *addr, PyMemberDef *m, object v) except -1
    int T_OBJECT_EX
    int READONLY

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)


cdef inline bint _atomic(object v):
    """A value that holds no reference to another object (no cycle can go through it)."""
    t = type(v)
    return t is str or t is float or t is int or v is None or t is bool or t is bytes

SPEC_VERSION = 3

DEF MAX_FIELDS = 64


cdef class _Kind:
    """One kind's table: its fields' member definitions, defaults and factories."""
    cdef str qualname
    cdef Py_ssize_t n
    cdef uint64_t full         # the bits of every field set
    cdef uint64_t required     # the bits of the fields with no default
    cdef uint64_t made         # the bits of the fields whose default a factory makes
    cdef uint64_t plain        # the bits of the fields whose default is atomic (_atomic)
    cdef PyObject *dflt[MAX_FIELDS]   # each field's default (held by self.defaults)
    cdef PyMemberDef *members[MAX_FIELDS]
    cdef Py_ssize_t offsets[MAX_FIELDS]   # where each field's reference sits in an event
    cdef list names, defaults, factories
    cdef dict index            # keyword name -> field number (t_ms, side included)
    cdef object missing
    cdef list slots            # keeps the descriptors (and their definitions) alive

    def __init__(self, str qualname, members, missing):
        cdef Py_ssize_t i
        members = list(members)
        if len(members) > MAX_FIELDS:
            raise ValueError(f"{qualname}: more than {MAX_FIELDS} fields")
        self.qualname = qualname
        self.n = len(members)
        self.full = (<uint64_t> -1) if self.n == MAX_FIELDS else ((<uint64_t> 1) << self.n) - 1
        self.missing = missing
        self.names, self.defaults, self.factories, self.slots = [], [], [], []
        self.index = {}
        for i, (name, slot, default, factory) in enumerate(members):
            if type(slot).__name__ != "member_descriptor":
                raise TypeError(f"{qualname}.{name}: not a slot ({type(slot).__name__})")
            self.members[i] = (<PyMemberDescrObject *> <PyObject *> slot).d_member
            if self.members[i].type != T_OBJECT_EX or self.members[i].flags & READONLY:
                raise TypeError(f"{qualname}.{name}: not a writable object slot")
            self.offsets[i] = self.members[i].offset
            self.slots.append(slot)
            self.names.append(name)
            self.defaults.append(default)
            self.factories.append(factory)
            self.index[name] = i
            self.dflt[i] = <PyObject *> default
            if factory is not None:
                self.made |= (<uint64_t> 1) << i
            elif default is missing:
                self.required |= (<uint64_t> 1) << i
            elif _atomic(default):
                self.plain |= (<uint64_t> 1) << i

    cdef int fill(self, object obj, tuple args, dict kw) except -1:
        cdef char *addr = <char *> <PyObject *> obj
        cdef uint64_t done = 0, bit
        cdef Py_ssize_t i, n = self.n
        cdef Py_ssize_t npos = len(args)
        cdef object j
        cdef bint atomic = True
        if npos > 2:
            raise TypeError(f"{self.qualname}.__init__() takes 3 positional arguments "
                            f"but {npos + 1} were given")
        for i in range(npos):
            self._set(addr, i, args[i])
            atomic = atomic and _atomic(args[i])
            done |= (<uint64_t> 1) << i
        for key, value in kw.items():
            j = self.index.get(key)
            if j is None:
                raise TypeError(f"{self.qualname}.__init__() got an unexpected keyword "
                                f"argument '{key}'")
            i = <Py_ssize_t> j
            bit = (<uint64_t> 1) << i
            if done & bit:
                raise TypeError(f"{self.qualname}.__init__() got multiple values for "
                                f"argument '{key}'")
            self._set(addr, i, value)
            atomic = atomic and _atomic(value)
            done |= bit
        if done != self.full:
            self._defaults(addr, done)
        self._untrack(obj, atomic, done)
        return 0

    cdef int fill_at(self, object obj, object t_ms, object side, tuple values) except -1:
        """t_ms, side, then the kind's own fields (after seq) by position."""
        cdef char *addr = <char *> <PyObject *> obj
        cdef Py_ssize_t i, nv = len(values)
        if nv > self.n - 3:
            takes = "2" if self.n == 3 else f"from 2 to {self.n - 1}"   # Python's words
            raise TypeError(f"{self.qualname}._at() takes {takes} positional arguments but "
                            f"{nv + 2} were given")
        self._set(addr, 0, t_ms)
        self._set(addr, 1, side)
        cdef bint atomic = _atomic(t_ms) and _atomic(side)
        for i in range(nv):
            self._set(addr, 3 + i, values[i])
            atomic = atomic and _atomic(values[i])
        cdef uint64_t done = (((<uint64_t> 1) << nv) - 1) << 3 | 3
        if done != self.full:
            self._defaults(addr, done)
        self._untrack(obj, atomic, done)
        return 0

    cdef inline int _set(self, char *addr, Py_ssize_t i, object value) except -1:
        """Field i := value.  An empty slot (a new event's) takes the reference as is;
        one already set (``__init__`` called again) goes through ``PyMember_SetOne``,
        which drops the old value."""
        cdef PyObject **slot = <PyObject **> (addr + self.offsets[i])
        if slot[0] == NULL:
            Py_INCREF(value)
            slot[0] = <PyObject *> value
            return 0
        return PyMember_SetOne(addr, self.members[i], value)

    cdef inline void _untrack(self, object obj, bint atomic, uint64_t done):
        """An event whose every field is atomic (the values given, and the defaults
        of the rest) can be in no reference cycle: the cyclic collector need not
        scan it (CPython does the same for such tuples).  A session that keeps
        millions of events (the TUI's time travel) then pays no full collection
        over them.  The pure twin cannot do this; nothing else differs."""
        if atomic and (self.full & ~done & ~self.plain) == 0:
            PyObject_GC_UnTrack(<void *> obj)

    cdef int _defaults(self, char *addr, uint64_t done) except -1:
        """Each field not given: its default (or factory's value); missing required
        ones are refused all at once, in Python's own words."""
        cdef Py_ssize_t i
        if done & self.required != self.required:
            missing = [i for i in range(self.n)
                       if self.required & ~done & ((<uint64_t> 1) << i)]
            positional = [self.names[i] for i in missing if i < 2]
            if positional:
                raise TypeError(self._missing_text(positional, "positional"))
            raise TypeError(self._missing_text([self.names[i] for i in missing],
                                               "keyword-only"))
        cdef uint64_t todo = self.full & ~done
        while todo:
            i = ctz64(todo)
            todo &= todo - 1
            if self.made & ((<uint64_t> 1) << i):
                self._set(addr, i, self.factories[i]())
            else:
                self._set(addr, i, <object> self.dflt[i])
        return 0

    cdef str _missing_text(self, list names, str what):
        from protocol.core._eventinit_py import missing_text   # (an error: no hurry)
        return missing_text(self.qualname, names, what)


cdef object _allocate(_Type *tp):
    """An instance of the kind, its slots empty: the class call's allocation
    (object.__new__ does no more for these classes)."""
    cdef PyObject *p = tp.tp_alloc(tp, 0)
    if p == NULL:
        raise MemoryError()
    obj = <object> p
    Py_DECREF(obj)               # the cast took a reference: the allocation's is ours
    return obj


def make_kind(cls, members, missing):
    """(init, build, positional) of the kind (see `protocol.core._eventinit_py`)."""
    cdef _Kind kind = _Kind(cls.__qualname__, members, missing)
    cdef _Type *tp = <_Type *> cls

    def __init__(self, *args, **kw):
        kind.fill(self, args, kw)
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"

    def build(t_ms, side, dict fields=None):
        obj = _allocate(tp)
        kind.fill(obj, (t_ms, side), fields if fields is not None else {})
        return obj

    def positional():
        def build_at(t_ms, side, *values):
            obj = _allocate(tp)
            kind.fill_at(obj, t_ms, side, values)
            return obj
        build_at.__qualname__ = f"{cls.__qualname__}._at"
        return build_at
    return __init__, build, positional


__all__ = ["SPEC_VERSION", "make_kind"]
