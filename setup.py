"""Build the optional compiled modules: the Cython page-diff twin, and the core
modules Cython compiles from their own .py in pure-Python mode
(`protocol.compiled.CORE`; the .so lands beside the .py, same dotted name).

Every extension is optional: without Cython, or when a module fails to compile,
the package still installs and the pure-Python code is used
(`python -m protocol.twins` says which implementation each module got).
`COLO_NO_EXTENSIONS=1` at build time builds none.
"""
import importlib.util
import os
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def _core_modules() -> tuple[str, ...]:
    """protocol.compiled.CORE, read without importing the protocol package."""
    spec = importlib.util.spec_from_file_location("_colo_compiled", ROOT / "protocol" / "compiled.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CORE


def _extensions() -> list:
    from Cython.Build import cythonize
    from setuptools import Extension

    out = cythonize(
        [Extension("protocol.guest._pagediff_c", ["protocol/guest/_pagediff_c.pyx"],
                   extra_compile_args=["-O3"], optional=True),
         Extension("protocol.core._eventinit_c", ["protocol/core/_eventinit_c.pyx"],
                   extra_compile_args=["-O2"], optional=True)],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )
    for name in _core_modules():     # one by one: a module Cython refuses stays pure Python
        try:
            out += cythonize(
                [Extension(name, [name.replace(".", "/") + ".py"], extra_compile_args=["-O2"],
                           optional=True)],
                language_level=3,
                build_dir="build/cython",   # the generated .c stay out of the source tree
                # annotation_typing=False: an annotation stays a comment, as in CPython
                # (typing them would turn `extra: dict = field(...)` into a type check)
                compiler_directives={"binding": True, "annotation_typing": False},
            )
        except Exception as exc:  # pragma: no cover - build-time fallback
            print(f"colo-testbed: {name} stays pure Python ({exc})")
    return out


ext_modules = []
if os.environ.get("COLO_NO_EXTENSIONS") != "1":
    try:
        ext_modules = _extensions()
    except Exception as exc:  # pragma: no cover - build-time fallback
        print(f"colo-testbed: building without the compiled modules ({exc})")

setup(ext_modules=ext_modules)
