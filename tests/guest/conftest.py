"""Both-twins fixtures: every test of a compiled module runs on both of its twins.

`protocol.twins.COMPILED` lists every module with a pure-Python spec and a
compiled twin.  For each, a fixture named after the module (``pagediff`` for
``protocol.guest.pagediff``) gives the "py" and then the "c" twin; the generic
``twin_module`` fixture runs over every registered module and both twins (the
contract tests in test_twins.py use it).  A new compiled module needs no change
here.

The "c" twin is skipped only when it was never built (no shared object next to
its module); a built twin that fails to import is an error.
"""

from __future__ import annotations

import importlib

import pytest

from protocol import twins


def import_twin(t: twins.Twin, impl: str):
    if impl == "c" and not t.built():
        pytest.skip(f"{t.module_name('c')} was never built "
                    "(run: python setup.py build_ext --inplace)")
    return importlib.import_module(t.module_name(impl))


def _twin_fixture(t: twins.Twin):
    @pytest.fixture(params=twins.IMPLEMENTATIONS, name=t.short)
    def fixture(request):
        return import_twin(t, request.param)
    return fixture


for _t in twins.all_twins():
    globals()[f"_fixture_{_t.short}"] = _twin_fixture(_t)


@pytest.fixture(params=[(t, impl) for t in twins.all_twins() for impl in twins.IMPLEMENTATIONS],
                ids=lambda p: f"{p[0].short}-{p[1]}")
def twin_module(request):
    """(the registry entry, "py" or "c", the imported twin) for every compiled module."""
    t, impl = request.param
    return t, impl, import_twin(t, impl)
