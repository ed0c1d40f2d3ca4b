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


ext_modules = []
if os.environ.get("COLO_NO_EXTENSIONS") != "1":
    try:
        from Cython.Build import cythonize
        from setuptools import Extension

        pagediff = cythonize(
            [Extension("protocol.guest._pagediff_c", ["protocol/guest/_pagediff_c.pyx"],
                       extra_compile_args=["-O3"], optional=True)],
            language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False},
        )
        core = cythonize(
            [Extension(name, [name.replace(".", "/") + ".py"], extra_compile_args=["-O2"],
                       optional=True) for name in _core_modules()],
            language_level=3,
            build_dir="build/cython",       # the generated .c stay out of the source tree
            compiler_directives={"binding": True, "annotation_typing": False,
                                 "embedsignature": True},
        )
        ext_modules = pagediff + core
    except Exception as exc:  # pragma: no cover - build-time fallback
        print(f"colo-testbed: building without the compiled modules ({exc})")

setup(ext_modules=ext_modules)
