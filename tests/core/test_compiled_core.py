"""The compiled core (`protocol.compiled`): the codec and the machines pass under
each implementation, each run really gets the one it asked for, and the finder's
choices (forced .py, stale build, broken build) hold."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from protocol import compiled, twins

ROOT = Path(__file__).resolve().parents[2]
SO = EXTENSION_SUFFIXES[0]
BOTH_TWINS_TESTS = ["tests/core/test_codec.py", "tests/core/test_machines.py"]


def built(module: str) -> Path | None:
    stem = ROOT / module.replace(".", "/")
    return next((p for s in EXTENSION_SUFFIXES if (p := stem.with_name(stem.name + s)).exists()),
                None)


def run(code: str, impl: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           compiled.NO_EXTENSIONS_ENV: "1" if impl == "py" else "0"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


def need(impl: str) -> None:
    if impl == "c" and not all(built(m) for m in compiled.CORE):
        pytest.skip("the compiled core was never built (run: pip install -e .)")
    stale = [m for m in compiled.CORE if impl == "c" and os.stat(built(m)).st_mtime <
             compiled._newest_source(str(ROOT / compiled.source_path(m))[:-3])]
    if stale:
        pytest.skip(f"stale build of {', '.join(stale)}: the .py is used (run: pip install -e .)")
    if impl == "c" and os.environ.get(compiled.NO_EXTENSIONS_ENV) == "1":
        pytest.skip(f"{compiled.NO_EXTENSIONS_ENV}=1")


def test_core_list_is_real_sources_and_is_what_setup_builds():
    for name in compiled.CORE:
        assert (ROOT / compiled.source_path(name)).is_file(), name
    assert "_core_modules()" in (ROOT / "setup.py").read_text()
    assert any(isinstance(f, compiled.CoreFinder) for f in sys.meta_path)


@pytest.mark.parametrize("impl", twins.IMPLEMENTATIONS)
def test_codec_and_machines_pass_under_each_implementation(impl):
    need(impl)
    code = ("import json, sys, pytest\n"
            f"rc = pytest.main(['-q', '-x', '-p', 'no:cacheprovider', *{BOTH_TWINS_TESTS!r}])\n"
            "from protocol import compiled\n"
            "import protocol.core.endpoint as e\n"
            "got = {m: (compiled.implementation(m), sys.modules[m].__file__)\n"
            "       for m in compiled.CORE if m in sys.modules}\n"
            "got['make_endpoint'] = type(e.make_endpoint).__name__\n"
            "print('RESULT', json.dumps(got))\n"
            "sys.exit(rc)")
    r = run(code, impl)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"\d+ passed", r.stdout) and " failed" not in r.stdout
    got = json.loads(r.stdout.rsplit("RESULT ", 1)[1].splitlines()[0])
    for name in ("protocol.core.codec", "protocol.core.machine", "protocol.core.primary",
                 "protocol.core.secondary", "protocol.core.endpoint"):
        assert got[name][0] == impl, (name, got[name])
        assert got[name][1].endswith(SO if impl == "c" else ".py"), got[name]
    # a compiled module's functions are Cython's, the .py's are Python's
    assert got["make_endpoint"] == ("cython_function_or_method" if impl == "c"
                                                else "function")


@pytest.mark.parametrize("impl", twins.IMPLEMENTATIONS)
def test_twins_report_says_what_each_module_got(impl):
    need(impl)
    r = run("import json; from protocol import twins; print(json.dumps(twins.report()))", impl)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for name in compiled.CORE:
        assert report[name][0] == impl, (name, report[name])
        if impl == "py":
            assert report[name][1] in (f"{compiled.NO_EXTENSIONS_ENV}=1", "not built")
    assert "RuntimeWarning" not in r.stderr


# --- the finder's choices, on a throwaway package (the repo's files are never touched)

@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A package dir with mod.py; returns (dir, finder, import function)."""
    (tmp_path / "mod.py").write_text("WHO = 'py'\n")
    finder = compiled.CoreFinder(("fakepkg.mod",))
    monkeypatch.delenv(compiled.NO_EXTENSIONS_ENV, raising=False)
    return tmp_path, lambda: _load(finder, "fakepkg.mod", tmp_path)


def _load(finder, name: str, where: Path):
    """Import `name` through `finder` from `where`, as Python would."""
    spec = finder.find_spec(name, [str(where)])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _so(where: Path, data: bytes, mtime_vs_py: float) -> Path:
    so = where / f"mod{SO}"
    so.write_bytes(data)
    py = os.stat(where / "mod.py").st_mtime
    os.utime(so, (py + mtime_vs_py, py + mtime_vs_py))
    return so


def test_finder_uses_the_py_when_nothing_is_built(fake):
    where, load = fake
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load().WHO == "py"
    assert compiled.choices()["fakepkg.mod"] == ("py", "not built")


def test_finder_skips_a_stale_build_with_a_warning(fake):
    where, load = fake
    _so(where, b"not even an ELF", -60.0)       # built a minute before the last edit
    with pytest.warns(RuntimeWarning, match=r"mod\.py \(or its \.pxd\) is newer than its compiled build"):
        mod = load()
    assert mod.WHO == "py" and mod.__file__.endswith("mod.py")
    assert compiled.choices()["fakepkg.mod"][1].startswith("stale")


def test_finder_honours_colo_no_extensions(fake, monkeypatch):
    where, load = fake
    _so(where, b"not even an ELF", +60.0)
    monkeypatch.setenv(compiled.NO_EXTENSIONS_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load().WHO == "py"
    assert compiled.choices()["fakepkg.mod"] == ("py", f"{compiled.NO_EXTENSIONS_ENV}=1")


def test_finder_falls_back_to_the_py_when_the_build_does_not_load(fake):
    where, load = fake
    _so(where, b"not even an ELF", +60.0)       # fresh, but broken
    with pytest.warns(RuntimeWarning, match="is built but did not load"):
        mod = load()
    assert mod.WHO == "py" and mod.__file__.endswith("mod.py")
    assert mod.__spec__.origin.endswith("mod.py")
    impl, why = compiled.choices()["fakepkg.mod"]
    assert impl == "py" and "did not load" in why


def test_finder_loads_a_fresh_build(fake):
    need("c")
    where, load = fake
    real = ROOT / "protocol" / "core" / f"outbox{SO}"
    (where / "mod.py").unlink()
    (where / "outbox.py").write_text("WHO = 'py'\n")
    so = where / f"outbox{SO}"
    so.write_bytes(real.read_bytes())          # newer than the .py: fresh
    finder = compiled.CoreFinder(("fakepkg.outbox",))
    spec = finder.find_spec("fakepkg.outbox", [str(where)])
    assert spec.origin == str(so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not hasattr(mod, "WHO") and mod.__file__.endswith(SO)
    assert compiled.choices()["fakepkg.outbox"] == ("c", None)


def test_every_declaration_file_is_a_compiled_core_modules():
    """A .pxd is read by the build only for a CORE module (setup.py compiles those):
    one beside another .py would declare nothing, and the finder would not see it."""
    pxd = {str(p.relative_to(ROOT).with_suffix("")).replace("/", ".")
           for p in (ROOT / "protocol").rglob("*.pxd")}
    assert pxd and pxd <= set(compiled.CORE), pxd - set(compiled.CORE)


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """fakepkg/{a,b}.py, both in one finder; returns (dir, load(name))."""
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    for name in ("a", "b"):
        (pkg / f"{name}.py").write_text(f"WHO = 'py {name}'\n")
    finder = compiled.CoreFinder(("fakepkg.a", "fakepkg.b"))
    monkeypatch.delenv(compiled.NO_EXTENSIONS_ENV, raising=False)

    return pkg, lambda name: _load(finder, f"fakepkg.{name}", pkg)


def _built(pkg: Path, name: str, mtime_vs_py: float) -> None:
    so = pkg / f"{name}{SO}"
    so.write_bytes(b"not even an ELF")       # never loaded: the finder refuses it first
    py = os.stat(pkg / f"{name}.py").st_mtime
    os.utime(so, (py + mtime_vs_py, py + mtime_vs_py))


def test_a_fresh_build_is_not_used_while_another_module_is_not_built(pair):
    """The typed modules use each other's C layout: one .py among .so would not load."""
    pkg, load = pair
    _built(pkg, "a", +60.0)                   # fresh; b was never built
    with pytest.warns(RuntimeWarning, match="fakepkg.b is not built: the core runs from "
                                            "its .py files, all of them"):
        mod = load("a")
    assert mod.WHO == "py a"
    assert compiled.choices()["fakepkg.a"] == (
        "py", "fakepkg.b is not built: the compiled core loads as a whole")


def test_a_pxd_newer_than_the_build_makes_the_whole_core_stale(pair):
    pkg, load = pair
    _built(pkg, "a", +60.0)
    _built(pkg, "b", +60.0)
    pxd = pkg / "b.pxd"
    pxd.write_text("cdef class B:\n    pass\n")
    later = os.stat(pkg / f"b{SO}").st_mtime + 60.0
    os.utime(pxd, (later, later))             # declarations edited after the build
    with pytest.warns(RuntimeWarning, match="fakepkg.b is stale"):
        assert load("a").WHO == "py a"
    assert compiled.choices()["fakepkg.a"][1].startswith("fakepkg.b is stale")
    with pytest.warns(RuntimeWarning, match=r"b\.py \(or its \.pxd\) is newer"):
        assert load("b").WHO == "py b"


def test_a_build_older_than_another_modules_pxd_is_stale(pair):
    """b's declarations cimport a's: a.pxd edited after b was built makes b's build
    stale too (its C layout of a's classes may be the old one); a module that
    cimports nothing of a is not."""
    pkg, load = pair
    _built(pkg, "a", +60.0)
    _built(pkg, "b", +60.0)
    pxd = pkg / "a.pxd"
    pxd.write_text("cdef class A:\n    pass\n")
    (pkg / "b.pxd").write_text("from fakepkg.a cimport A\n\ncdef class B(A):\n    pass\n")
    os.utime(pkg / "b.pxd", (0, 0))
    a_built = os.stat(pkg / f"a{SO}").st_mtime
    os.utime(pxd, (a_built - 1, a_built - 1))        # older than a's build ...
    b_so = pkg / f"b{SO}"
    os.utime(b_so, (a_built - 2, a_built - 2))       # ... newer than b's
    with pytest.warns(RuntimeWarning, match=r"fakepkg.b is stale \(built before "
                                            r"fakepkg.a's declarations changed\)"):
        assert load("a").WHO == "py a"
    (pkg / "b.pxd").write_text("cdef class B:\n    pass\n")    # cimports nothing now
    os.utime(pkg / "b.pxd", (0, 0))
    finder = compiled.CoreFinder(("fakepkg.a", "fakepkg.b"))
    assert finder._not_whole("fakepkg.a", str(pkg / f"a{SO}")) is None
