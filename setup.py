"""Build the optional Cython page-diff twin.

If Cython or a C compiler is missing the package still installs; the pure-Python
twin is used and `protocol.guest.pagediff.IMPLEMENTATION` says "py".
"""
import os

from setuptools import setup

ext_modules = []
if os.environ.get("COLO_NO_EXTENSIONS") != "1":
    try:
        from Cython.Build import cythonize
        from setuptools import Extension

        ext_modules = cythonize(
            [Extension("protocol.guest._pagediff_c", ["protocol/guest/_pagediff_c.pyx"],
                       extra_compile_args=["-O3"])],
            language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False},
        )
    except Exception as exc:  # pragma: no cover - build-time fallback
        print(f"colo-testbed: building without the C page-diff twin ({exc})")

setup(ext_modules=ext_modules)
