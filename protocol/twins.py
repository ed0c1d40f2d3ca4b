"""Compiled twins: every module that has a pure-Python spec and a compiled twin.

A public module ``pkg.name`` with twins ``pkg._name_py`` (the spec) and
``pkg._name_c`` (Cython, same names) picks one with :func:`load`: the compiled
twin if it loads, else the pure-Python one.  ``COLO_NO_EXTENSIONS=1`` forces the
pure-Python twin.  A failed import of a compiled twin is never hidden: the
error is returned (the public module keeps it as ``LOAD_ERROR``), and when the
shared object is there but broken a RuntimeWarning is issued too.

A new compiled module plugs in with one line in :data:`COMPILED`; the tests'
both-twins fixture runs over every entry.

The core modules are compiled differently: from their own .py, same dotted name
(`protocol.compiled`, which also honours ``COLO_NO_EXTENSIONS=1``).
:func:`report` (``python -m protocol.twins``) says what every compiled module got.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

NO_EXTENSIONS_ENV = "COLO_NO_EXTENSIONS"
IMPLEMENTATIONS = ("py", "c")

#: public modules that have a ``_<name>_py`` spec and a ``_<name>_c`` compiled twin
COMPILED: tuple[str, ...] = (
    "protocol.guest.pagediff",
    "protocol.core.eventinit",
)


@dataclass(frozen=True, slots=True)
class Twin:
    public: str                       # "protocol.guest.pagediff"

    @property
    def package(self) -> str:
        return self.public.rpartition(".")[0]

    @property
    def short(self) -> str:
        return self.public.rpartition(".")[2]

    def module_name(self, impl: str) -> str:
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be py or c, not {impl!r}")
        return f"{self.package}._{self.short}_{impl}"

    def built(self) -> list[Path]:
        """The compiled twin's shared objects (empty: it was never built)."""
        spec = importlib.util.find_spec(self.package)
        dirs = list(spec.submodule_search_locations or ()) if spec else []
        stem = f"_{self.short}_c"
        return sorted(p for d in dirs for p in Path(d).iterdir()
                      if p.name.startswith(stem + ".") and p.suffix in (".so", ".pyd"))


def twin(public: str) -> Twin:
    if public not in COMPILED:
        raise KeyError(f"{public} has no compiled twin (known: {', '.join(COMPILED)})")
    return Twin(public)


def all_twins() -> list[Twin]:
    return [Twin(name) for name in COMPILED]


def load(public: str) -> tuple[ModuleType, str, str | None]:
    """(the twin in use, "c" or "py", why the compiled twin did not load or None)."""
    t = twin(public)
    if os.environ.get(NO_EXTENSIONS_ENV) == "1":
        return importlib.import_module(t.module_name("py")), "py", None
    try:
        return importlib.import_module(t.module_name("c")), "c", None
    except ImportError as exc:
        error = f"{type(exc).__name__}: {exc}"
        if t.built():
            warnings.warn(f"{t.module_name('c')} is built but did not load ({error}); "
                          f"using the pure-Python twin", RuntimeWarning, stacklevel=3)
        return importlib.import_module(t.module_name("py")), "py", error


def report() -> dict[str, tuple[str, str | None]]:
    """{module: ("c" or "py", why not "c" or None)}: the twins (page-diff, event
    constructors) and every compiled core module (`protocol.compiled.CORE`), each
    imported to learn it."""
    from protocol import compiled
    out: dict[str, tuple[str, str | None]] = {}
    for name in COMPILED:
        mod = importlib.import_module(name)
        out[name] = (mod.IMPLEMENTATION, mod.LOAD_ERROR)
    for name in compiled.CORE:
        importlib.import_module(name)
        why = compiled.choices().get(name, ("py", "not built"))[1]
        out[name] = (compiled.implementation(name), why)
    return out


if __name__ == "__main__":
    _report = report()
    _width = max(map(len, _report))
    for _name, (_impl, _why) in _report.items():
        print(f"{_name:{_width}} {_impl:3} {_why or ''}".rstrip())
