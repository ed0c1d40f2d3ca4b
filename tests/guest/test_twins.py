"""The contract of every compiled twin (`protocol.twins.COMPILED`) and of its selector."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from protocol import twins

TWINS = twins.all_twins()
BY_NAME = pytest.mark.parametrize("t", TWINS, ids=[t.short for t in TWINS])
SELECTOR_NAMES = {"IMPLEMENTATION", "LOAD_ERROR"}


def public_api(t: twins.Twin) -> list[str]:
    mod = importlib.import_module(t.public)
    return [n for n in mod.__all__ if n not in SELECTOR_NAMES]


def test_registry_names_real_modules():
    assert TWINS, "no compiled module is registered"
    for t in TWINS:
        pkg_dirs = importlib.util.find_spec(t.package).submodule_search_locations
        files = {p.name for d in pkg_dirs for p in Path(d).iterdir()}
        assert f"_{t.short}_py.py" in files, t
        assert f"_{t.short}_c.pyx" in files, t          # the source the build compiles
        assert importlib.import_module(t.public).IMPLEMENTATION in twins.IMPLEMENTATIONS


def test_registry_refuses_what_it_does_not_know():
    with pytest.raises(KeyError, match="has no compiled twin"):
        twins.twin("protocol.core.codec")
    with pytest.raises(ValueError, match="py or c"):
        TWINS[0].module_name("rust")


def test_each_twin_has_the_whole_public_api(twin_module):
    t, impl, mod = twin_module
    missing = [n for n in public_api(t) if not callable(getattr(mod, n, None))]
    assert not missing, f"{t.module_name(impl)} lacks {missing}"


@BY_NAME
def test_compiled_twin_loads_where_built(t):
    if os.environ.get(twins.NO_EXTENSIONS_ENV) == "1":
        pytest.skip(f"{twins.NO_EXTENSIONS_ENV}=1")
    if not t.built():
        pytest.skip(f"{t.module_name('c')} was never built")
    mod = importlib.import_module(t.public)
    assert mod.IMPLEMENTATION == "c", f"built but not loaded: {mod.LOAD_ERROR}"
    assert mod.LOAD_ERROR is None
    for name in public_api(t):        # the public names are the compiled twin's
        assert getattr(mod, name) is getattr(mod._impl, name)


def run_python(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-W", "always", "-c", code],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, cwd=os.getcwd())
    return out.stdout.strip() + "|" + out.stderr.strip()


@BY_NAME
def test_selector_honours_colo_no_extensions(t):
    out = run_python(f"import {t.public} as p; print(p.IMPLEMENTATION, p.LOAD_ERROR, "
                     f"p._impl.__name__)", **{twins.NO_EXTENSIONS_ENV: "1"})
    assert out.startswith(f"py None {t.module_name('py')}|")


@BY_NAME
def test_selector_records_a_broken_compiled_twin(t):
    code = (f"import sys; sys.modules[{t.module_name('c')!r}] = None\n"
            f"import {t.public} as p\n"
            "print(p.IMPLEMENTATION, p.LOAD_ERROR)")
    out = run_python(code, **{twins.NO_EXTENSIONS_ENV: "0"})
    stdout, stderr = out.split("|", 1)
    assert stdout.startswith(f"py ModuleNotFoundError: import of {t.module_name('c')}")
    if t.built():
        assert "RuntimeWarning" in stderr and "is built but did not load" in stderr


def test_a_compiled_pagediff_of_another_spec_version_is_stale():
    """Same names, older signatures (scatter_pages without stride, SPEC_VERSION 1):
    the pure-Python twin is used whole, and LOAD_ERROR says which version."""
    code = (
        "import sys, types, protocol.twins as tw\n"
        "from protocol.guest import _pagediff_py as spec\n"
        "old = types.ModuleType('protocol.guest._pagediff_c')\n"
        "for name in spec.__all__:\n"
        "    setattr(old, name, getattr(spec, name))\n"
        "old.SPEC_VERSION = 1\n"
        "sys.modules['protocol.guest._pagediff_c'] = old\n"
        "import protocol.guest.pagediff as p\n"
        "print(p.IMPLEMENTATION, p.scatter_pages.__module__)\n"
        "print(p.LOAD_ERROR)\n")
    out = run_python(code, **{twins.NO_EXTENSIONS_ENV: "0"})
    first, second = out.split("|")[0].splitlines()
    assert first == "py protocol.guest._pagediff_py"
    assert second.startswith("stale build:") and "SPEC_VERSION 2 (it has 1)" in second


def test_a_stale_compiled_pagediff_is_not_used_half_way():
    """A shared object built from an older .pyx loads, but lacks new functions: the
    selector then takes the pure-Python twin whole and says why (no AttributeError
    at import, never half of each)."""
    code = (
        "import sys, types, protocol.twins as tw\n"
        "from protocol.guest import _pagediff_py as spec\n"
        "old = types.ModuleType('protocol.guest._pagediff_c')\n"
        "for name in spec.__all__:\n"
        "    if name not in ('gather_pages', 'zero_pages_at'):\n"
        "        setattr(old, name, getattr(spec, name))\n"
        "sys.modules['protocol.guest._pagediff_c'] = old\n"
        "import protocol.guest.pagediff as p\n"
        "print(p.IMPLEMENTATION, p._impl.__name__, p.gather_pages.__module__)\n"
        "print(p.LOAD_ERROR)\n")
    out = run_python(code, **{twins.NO_EXTENSIONS_ENV: "0"})
    first, second = out.split("|")[0].splitlines()
    assert first == "py protocol.guest._pagediff_py protocol.guest._pagediff_py"
    assert second.startswith("stale build:") and "gather_pages, zero_pages_at" in second
    assert "RuntimeWarning" in out.split("|", 1)[1]
