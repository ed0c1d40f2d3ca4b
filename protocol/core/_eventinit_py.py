"""Event kinds' ``__init__``, the pure-Python twin (the spec): generated source, one
function per kind, compiled on the kind's first construction.

``make_kind(cls, members, missing)`` returns ``(init, build)`` for a frozen, slotted
event kind ``cls``: its ``__init__``, and ``build(t_ms, side, fields=None)``, the
kind's event from a dict of its fields by attribute name (the dict is not kept or
changed): what ``cls(t_ms, side, **fields)`` makes, for the hot emitters (the
compiled twin skips the class call's own argument handling).  ``members`` lists every field in order, ``t_ms`` and ``side``
first: ``(name, slot descriptor, default, factory)``, ``default is missing`` for a
required field, ``factory`` a callable (or None) for a field whose default is made
per instance.  The ``__init__`` takes ``t_ms`` and ``side`` (by position or name) and
every other field by keyword; it writes each slot through its descriptor (the
kind's ``__setattr__`` refuses: the event is frozen), defaults as a dataclass would.
Errors are Python's own for the signature (TypeError).
"""
from __future__ import annotations

from typing import Any

SPEC_VERSION = 2


def make_kind(cls, members, missing):
    """(init, build) of the kind (see the module docstring)."""
    init = _make_init(cls.__qualname__, members, missing)

    def build(t_ms, side, fields=None):
        return cls(t_ms, side, **fields) if fields else cls(t_ms, side)
    return init, build


def _make_init(qualname: str, members, missing):
    """The kind's ``__init__``: one that compiles the real one on its first call (an
    ``exec``: ~0.1 ms a kind, which a start-up that builds a few kinds need not pay for
    all 60), and replaces itself on the class with it."""
    ns: dict[str, Any] = {"_MISSING": missing}
    params, body = ["self"], []
    for i, (name, slot, default, factory) in enumerate(members):
        ns[f"_set_{name}"] = slot.__set__
        if i == 2:
            params.append("*")        # t_ms, side: by position too; the rest by keyword
        if factory is not None:
            ns[f"_f_{name}"] = factory
            params.append(f"{name}=_MISSING")
            body.append(f" if {name} is _MISSING: {name} = _f_{name}()")
        elif default is not missing:
            ns[f"_d_{name}"] = default
            params.append(f"{name}=_d_{name}")
        else:
            params.append(name)
        body.append(f" _set_{name}(self, {name})")
    short = qualname.rpartition(".")[2]
    names = ", ".join(ns)
    # a factory per kind binds its own namespace as the defaults' and setters' globals
    src = (f"def _make_{short}({names}):\n def __init__({', '.join(params)}):\n"
           + "\n".join(" " + line for line in body) + "\n return __init__\n")

    def __init__(self, *args, **kw):
        cls = self.__class__
        glob: dict[str, Any] = {}
        exec(src, glob)                              # noqa: S102 - generated from the fields
        init = glob[f"_make_{short}"](**ns)
        init.__qualname__ = f"{qualname}.__init__"
        for klass in cls.__mro__:     # the kind itself (not a subclass of it)
            if klass.__dict__.get("__init__") is __init__:
                klass.__init__ = init
                break
        init(self, *args, **kw)
    __init__.__qualname__ = f"{qualname}.__init__"
    return __init__


__all__ = ["SPEC_VERSION", "make_kind"]
