"""`colo template`, `colo fuzz-secondary` and `colo node primary --template`: the
command-line contracts (no QEMU needed; the real-QEMU side is tests/qemu)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from protocol.drivers.fuzz_secondary import cases
from tests.cli.test_cli import colo

RUN1 = Path(os.environ.get("COLO_QEMU_RUN1", "/work/shared/qemu-colo/run1"))


def test_fuzz_list_names_every_case():
    r = colo("fuzz-secondary", "--list")
    assert r.returncode == 0, r.stderr
    names = [ln.split()[0] for ln in r.stdout.splitlines()]
    assert names == [c.name for c in cases()]
    assert "size-huge" in names and "xbzrle-garbage" in names and "bad-section-id" in names


def test_bad_inputs_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello")
    r = colo("template", str(junk), "--out", str(tmp_path / "t.colotpl"))
    assert r.returncode == 1 and r.stderr.startswith("colo: error:") and "Traceback" not in r.stderr
    # a file it cannot use is a failure (1), as fuzz-secondary's --template: it was 2
    r = colo("node", "primary", "--connect", "127.0.0.1:9", "--template", str(junk))
    assert r.returncode == 1 and "not a guest template" in r.stderr
    r = colo("node", "primary", "--connect", "127.0.0.1:9", "--mutate", "cut-blob")
    assert r.returncode == 2 and "--mutate needs --template" in r.stderr
    # a file it cannot use is a failure (1), as for every command's missing input
    r = colo("fuzz-secondary", "--template", str(tmp_path / "none.colotpl"))
    assert r.returncode == 1 and "no guest template" in r.stderr


def test_node_template_it_cannot_read_is_a_failure(tmp_path):
    # `colo node primary --template FILE` with no FILE there exited 2 (TemplateError is a
    # ValueError), where a missing input file is 1 in every other command
    r = colo("node", "primary", "--connect", "127.0.0.1:9", "--template",
             str(tmp_path / "none.colotpl"))
    assert r.returncode == 1, r.stderr
    assert f"colo: error: no guest template at {tmp_path / 'none.colotpl'}" in r.stderr
    r = colo("node", "primary", "--connect", "127.0.0.1:9", "--template", str(tmp_path))
    assert r.returncode == 1 and "Is a directory" in r.stderr, r.stderr
    # what is off the grammar stays a usage error
    r = colo("node", "primary", "--connect", "127.0.0.1:9", "--dialect", "v11",
             "--template", str(tmp_path / "none.colotpl"))
    assert r.returncode == 2 and "needs --dialect qemu" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_directory_without_the_forward_stream_names_the_missing_file(tmp_path):
    # it said "cannot read DIR: No such file or directory" of a directory that exists
    empty = tmp_path / "rundir"
    empty.mkdir()
    r = colo("template", str(empty), "--out", str(tmp_path / "t.colotpl"))
    assert r.returncode == 1 and "no primary_to_secondary.bin in this directory" in r.stderr
    assert "No such file" not in r.stderr and not (tmp_path / "t.colotpl").exists()


@pytest.mark.parametrize(("option", "value", "why"), [
    ("--bound-s", "nan", "must be a decimal number"),
    ("--bound-s", "inf", "must be a decimal number"),
    ("--bound-s", "-1", "between 1 and 3,600, not -1"),   # (its range, not its spelling)
    ("--bound-s", "0", "between 1 and 3,600, not 0"),
    ("--bound-s", "3601", "between 1 and 3,600"),
    ("--checkpoints", "0", "between 2 and 10000, not 0 (a case's faults land on checkpoint 2)"),
    ("--checkpoints", "1", "between 2 and 10000, not 1"),
    ("--checkpoints", "-3", "between 2 and 10000, not -3"),
    ("--checkpoints", "nan", "must be a whole number"),
    ("--checkpoints", "10001", "between 2 and 10000"),
])
def test_fuzz_bounds_are_usage_errors_naming_the_option(option, value, why, tmp_path,
                                                        monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    r = colo("fuzz-secondary", option, value, "--template", str(tmp_path / "none.colotpl"))
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert f"colo fuzz-secondary: error: argument {option}: the value " in r.stderr, r.stderr
    assert why in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_refused_fuzz_run_leaves_no_temp_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    r = colo("fuzz-secondary", "--template", str(tmp_path / "none.colotpl"))
    assert r.returncode == 1 and "no guest template" in r.stderr
    assert list(tmp_path.iterdir()) == []       # (each such run left a colo-fuzz-* behind)


@pytest.mark.skipif(not (RUN1 / "primary_to_secondary.bin").exists(),
                    reason=f"the run1 capture is not at {RUN1} (set COLO_QEMU_RUN1)")
def test_template_json(tmp_path):
    out = tmp_path / "t.colotpl"
    r = colo("template", str(RUN1), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["path"] == str(out) and out.is_file()
    assert info["machine"] == "pc-i440fx-7.2" and info["blobs"] == 20
    assert ["pc.ram", 128 << 20] in info["blocks"]
    # a kernel it cannot read is a failure (1), not a usage error (it was 2), whether
    # --kernel names it or the template's -kernel does; checked before QEMU is looked for
    r = colo("fuzz-secondary", "--template", str(out), "--kernel", str(tmp_path / "no.elf"))
    assert r.returncode == 1, r.stderr
    assert f"cannot read the guest kernel {tmp_path / 'no.elf'} (--kernel): No such file " \
           "or directory" in r.stderr, r.stderr
    r = colo("fuzz-secondary", "--template", str(out), "--kernel", str(tmp_path))
    assert r.returncode == 1 and "(--kernel): Is a directory" in r.stderr, r.stderr
    kernel = next(a for a in info_args(out) if a.endswith(".elf"))
    if not Path(kernel).exists():     # run1's kernel path is the capture host's
        r = colo("fuzz-secondary", "--template", str(out))
        assert r.returncode == 1, r.stderr
        assert ("(the template's -kernel) cannot be read here: No such file or directory: "
                "give --kernel FILE" if shutil.which("qemu-system-x86_64")
                else "not found") in r.stderr, r.stderr
    r = colo("fuzz-secondary", "--template", str(out), "--kernel", str(out),
             "--case", "no-such-case")
    if shutil.which("qemu-system-x86_64"):
        assert r.returncode == 2 and "unknown case(s) ['no-such-case']" in r.stderr


def info_args(template: Path) -> list[str]:
    from protocol.record.template_source import load_template
    return load_template(template).qemu_args
