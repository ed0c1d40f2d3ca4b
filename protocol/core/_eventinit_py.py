"""Event kinds' ``__init__``, the pure-Python twin (the spec): generated source, one
function per kind, compiled on the kind's first construction.

``make_kind(cls, members, missing)`` returns ``(init, build, positional)`` for a
frozen, slotted event kind ``cls``: its ``__init__``; ``build(t_ms, side,
fields=None)``, the kind's event from a dict of its fields by attribute name (the
dict is not kept or changed): what ``cls(t_ms, side, **fields)`` makes; and
``positional()``, which makes ``build_at(t_ms, side, *values)``, the event from its
own fields' values in declaration order.  The last two are for the hot emitters:
neither makes the class call (the compiled twin writes the slots from C).

``members`` lists every field in order, ``t_ms`` and ``side`` first: ``(name, slot
descriptor, default, factory)``, ``default is missing`` for a required field,
``factory`` a callable (or None) for a field whose default is made per instance.  The ``__init__`` takes ``t_ms`` and ``side`` (by position or name) and
every other field by keyword; it writes each slot through its descriptor (the
kind's ``__setattr__`` refuses: the event is frozen), defaults as a dataclass would.
Errors are Python's own for the signature (TypeError).
"""
from __future__ import annotations

from typing import Any

SPEC_VERSION = 3


def make_kind(cls, members, missing):
    """(init, build, positional) of the kind (see the module docstring)."""
    init = _make_init(cls.__qualname__, members, missing)

    def build(t_ms, side, fields=None):
        return cls(t_ms, side, **fields) if fields else cls(t_ms, side)

    def positional():
        return _make_positional(cls, members, missing)
    return init, build, positional


def _make_positional(cls, members, missing):
    """``build_at(t_ms, side, *values)``: the kind's event from its own fields' values by
    position (in the order the kind declares them; those left out take their
    defaults), with no class call: the allocation, then each slot's setter."""
    ns: dict[str, Any] = {"_MISSING": missing, "_cls": cls, "_alloc": object.__new__}
    params, body, required = ["t_ms", "side"], [], []
    for i, (name, slot, default, factory) in enumerate(members):
        ns[f"_set_{name}"] = slot.__set__
        if i == 2:                                   # seq: -1, as the class call
            ns["_d_seq"] = default
            body.append(" _set_seq(self, _d_seq)")
            continue
        if i > 2:
            param, lines = _field(ns, name, default, factory, missing, by_position=True)
            params.append(param)
            body += lines
            if param.endswith("=_MISSING") and not lines:
                required.append(name)
        body.append(f" _set_{name}(self, {name})")
    ns["_refuse"] = _refuser(cls.__qualname__, required, missing)
    check = ([f" if {' or '.join(f'{n} is _MISSING' for n in required)}: "
              f"_refuse({', '.join(required)})"] if required else [])
    src = (f"def _make({', '.join(ns)}):\n def build_at({', '.join(params)}):\n"
           + "\n".join(" " + line for line in check)
           + ("\n" if check else "") + "  self = _alloc(_cls)\n"
           + "\n".join(" " + line for line in body) + "\n  return self\n return build_at\n")
    glob: dict[str, Any] = {}
    exec(src, glob)                                  # noqa: S102 - generated from the fields
    build_at = glob["_make"](**ns)
    build_at.__qualname__ = f"{cls.__qualname__}._at"
    return build_at


def _field(ns: dict, name: str, default, factory, missing, *, by_position: bool):
    """A field's parameter and the lines that apply its default.  By keyword (the
    ``__init__``) a default is the parameter's own and a required field has none;
    by position every field may be left out (``=_MISSING``), then defaulted in the body
    (a required one: no line, and the builder refuses it)."""
    if factory is not None:
        ns[f"_f_{name}"] = factory
        return f"{name}=_MISSING", [f" if {name} is _MISSING: {name} = _f_{name}()"]
    if default is missing:
        return (f"{name}=_MISSING" if by_position else name), []
    ns[f"_d_{name}"] = default
    if by_position:
        return f"{name}=_MISSING", [f" if {name} is _MISSING: {name} = _d_{name}"]
    return f"{name}=_d_{name}", []


def missing_text(qualname: str, names: list[str], what: str) -> str:
    """Python's own words for arguments left out of a call of ``qualname.__init__``
    (``what``: "positional" or "keyword-only"); the compiled twin says the same."""
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        listed = quoted[0]
    elif len(quoted) == 2:
        listed = f"{quoted[0]} and {quoted[1]}"
    else:
        listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    plural = "s" if len(names) > 1 else ""
    return f"{qualname}.__init__() missing {len(names)} required {what} argument{plural}: {listed}"


def _refuser(qualname: str, required: list[str], missing):
    """Raises the TypeError for the required fields a positional build left out, in the
    words a class call would use for them."""
    def refuse(*values):
        names = [n for n, v in zip(required, values, strict=True) if v is missing]
        raise TypeError(missing_text(qualname, names, "keyword-only"))
    return refuse


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
        param, lines = _field(ns, name, default, factory, missing, by_position=False)
        params.append(param)
        body += lines
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


__all__ = ["SPEC_VERSION", "make_kind", "missing_text"]
