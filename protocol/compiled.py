"""The compiled core: modules that Cython compiles from their own ``.py``.

Each module in :data:`CORE` is plain Python (the one and only copy of its
logic).  The build (setup.py) also compiles it with Cython in pure-Python mode
into an extension module of the same dotted name, placed beside the ``.py``;
Python's own finder would then always prefer the ``.so``.  :class:`CoreFinder`,
installed by ``protocol/__init__``, makes the choice explicit, per module:

- ``COLO_NO_EXTENSIONS=1`` forces the ``.py`` (the same switch as the page-diff
  twins);
- no ``.so`` (never built: no Cython, no compiler): the ``.py``;
- a ``.so`` older than its ``.py`` or its ``.pxd`` (the source was edited after the
  build) is stale: a RuntimeWarning, and the ``.py`` — an old build never shadows
  an edit;
- a ``.so`` that fails to load: a RuntimeWarning with the error, and the ``.py``;
- otherwise the ``.so``.

Some of them have a ``.pxd`` beside the ``.py``: typed declarations
that make their classes extension types, which the other compiled modules use by
their C layout.  A compiled module therefore cannot run beside the ``.py`` of
another: the core loads as a whole.  When any module of a finder is not built or
stale (older than its sources, or than a ``.pxd`` its own ``.pxd`` cimports),
every module of that finder gets its ``.py``, with the reason.

:func:`choices` says what each imported module got and why.  This module is
imported by every start of the command line: it uses nothing but what the
interpreter has already loaded (no dataclasses, no pathlib).
"""
from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, PathFinder, SourceFileLoader

NO_EXTENSIONS_ENV = "COLO_NO_EXTENSIONS"

#: modules compiled from their .py (setup.py builds exactly these)
CORE: tuple[str, ...] = (
    "protocol.core.codec",
    "protocol.core.events",
    "protocol.core.machine",
    "protocol.core.primary",
    "protocol.core.secondary",
    "protocol.core.endpoint",
    "protocol.core.outbox",
    "protocol.core.timers",
    "protocol.core.guestport",
    "protocol.sim.core",
    "protocol.sim.invariants",
    "protocol.sim.link",
    "protocol.core.dialects",
    "protocol.migration.stream",
    "protocol.migration.streamdecode",
    "protocol.drivers.tcp",
)

# module -> (implementation "c" or "py", why not "c" or None)
_CHOICES: dict[str, tuple[str, str | None]] = {}


def source_path(module: str) -> str:
    """The module's .py relative to the project root ("protocol/core/codec.py")."""
    return module.replace(".", "/") + ".py"


def choices() -> dict[str, tuple[str, str | None]]:
    """{module: ("c" or "py", why it is not "c" or None)} for every imported CORE module."""
    return dict(_CHOICES)


def implementation(module: str) -> str:
    """ "c" or "py": what the imported module really is (from its file name)."""
    mod = sys.modules[module]
    return "c" if (mod.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES)) else "py"


def _warn(message: str) -> None:
    import warnings
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _source_spec(fullname: str, source: str) -> ModuleSpec:
    from importlib.util import spec_from_file_location
    return spec_from_file_location(fullname, source, loader=SourceFileLoader(fullname, source))


class _ExtensionOrSource:
    """Loads the .so; if it does not load, warns and runs the .py in its place."""

    def __init__(self, extension_loader, source: str) -> None:
        self.extension = extension_loader
        self.source = source
        self.failed = False

    def create_module(self, spec: ModuleSpec):
        try:
            return self.extension.create_module(spec)
        except ImportError as exc:
            error = f"{type(exc).__name__}: {exc}"
            _CHOICES[spec.name] = ("py", f"the compiled build did not load ({error})")
            _warn(f"{spec.name}: {spec.origin} is built but did not load ({error}); "
                  f"using {self.source}")
            self.failed = True
            return None

    def exec_module(self, module) -> None:
        if not self.failed:
            self.extension.exec_module(module)
            return
        loader = SourceFileLoader(module.__name__, self.source)
        spec = module.__spec__
        spec.origin, spec.loader, spec.cached = self.source, loader, None
        module.__file__, module.__loader__ = self.source, loader
        module.__dict__.pop("__cached__", None)
        loader.exec_module(module)


class CoreFinder:
    """Meta-path finder for the CORE modules (see the module docstring)."""

    def __init__(self, modules: tuple[str, ...] = CORE) -> None:
        self.modules = frozenset(modules)
        self._whole: str | None | bool = False    # not looked at yet (_not_whole)
        self._warned = False

    def _not_whole(self, fullname: str, built: str) -> str | None:
        """Why the modules cannot all load compiled (one not built, or stale), or None.
        Looked at once, from the files beside the first module found."""
        if self._whole is not False:
            return self._whole
        depth = fullname.count(".")
        root = os.path.dirname(built)
        for _ in range(depth):
            root = os.path.dirname(root)
        why = None
        stems = {name: os.path.join(root, *name.split(".")) for name in sorted(self.modules)}
        deps = _cimports(stems)
        for name, stem in stems.items():
            so = next((stem + s for s in EXTENSION_SUFFIXES if os.path.exists(stem + s)),
                      None)
            if not os.path.exists(stem + ".py"):
                continue                  # a compiled-only install: nothing to compare
            if so is None:
                why = f"{name} is not built"
                break
            built_at = os.stat(so).st_mtime
            if _newest_source(stem) > built_at:
                why = f"{name} is stale"
                break
            # its build also depends on the declarations its .pxd cimports
            changed = [d for d in deps[name] if os.stat(stems[d] + ".pxd").st_mtime > built_at]
            if changed:
                why = f"{name} is stale (built before {changed[0]}'s declarations changed)"
                break
        self._whole = why
        return why

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(tuple(EXTENSION_SUFFIXES)):
            if spec is not None:
                _CHOICES[fullname] = ("py", "not built")
            return spec
        built = spec.origin
        source = os.path.join(os.path.dirname(built), fullname.rpartition(".")[2] + ".py")
        if not os.path.exists(source):
            _CHOICES[fullname] = ("c", None)
            return spec
        if os.environ.get(NO_EXTENSIONS_ENV) == "1":
            _CHOICES[fullname] = ("py", f"{NO_EXTENSIONS_ENV}=1")
            return _source_spec(fullname, source)
        if _newest_source(source[:-3]) > os.stat(built).st_mtime:
            _CHOICES[fullname] = ("py", "stale: the .py is newer than its compiled build")
            _warn(f"{source} (or its .pxd) is newer than its compiled build "
                  f"{os.path.basename(built)}: using the .py (rebuild: pip install -e . or "
                  "python setup.py build_ext --inplace)")
            return _source_spec(fullname, source)
        why = self._not_whole(fullname, built)
        if why is not None:
            _CHOICES[fullname] = ("py", f"{why}: the compiled core loads as a whole")
            if not self._warned:
                self._warned = True
                _warn(f"{why}: the core runs from its .py files, all of them (rebuild: "
                      "pip install -e . or python setup.py build_ext --inplace)")
            return _source_spec(fullname, source)
        _CHOICES[fullname] = ("c", None)
        spec.loader = _ExtensionOrSource(spec.loader, source)
        return spec


def _cimports(stems: dict[str, str]) -> dict[str, list[str]]:
    """{module: the finder's modules whose .pxd it cimports, directly or not}, read
    from each module's own .pxd (its typed declarations cimport the others')."""
    direct: dict[str, set[str]] = {}
    for name, stem in stems.items():
        direct[name] = set()
        try:
            with open(stem + ".pxd", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if len(words) >= 3 and words[0] == "from" and words[2] == "cimport":
                direct[name].add(words[1])
            elif len(words) >= 2 and words[0] == "cimport":
                direct[name].add(words[1])
    closed = {}
    for name in stems:
        seen, todo = set(), list(direct[name])
        while todo:
            dep = todo.pop()
            if dep in stems and dep not in seen:
                seen.add(dep)
                todo.extend(direct.get(dep, ()))
        closed[name] = sorted(seen)
    return closed


def _newest_source(stem: str) -> float:
    """The mtime of stem.py, or of stem.pxd when that is newer (a .pxd is optional)."""
    py = os.stat(stem + ".py").st_mtime
    try:
        return max(py, os.stat(stem + ".pxd").st_mtime)
    except FileNotFoundError:
        return py


def install() -> CoreFinder:
    """Put the finder first on sys.meta_path (once); returns the installed finder."""
    for finder in sys.meta_path:
        if isinstance(finder, CoreFinder):
            return finder
    finder = CoreFinder()
    sys.meta_path.insert(0, finder)
    return finder
