"""The testbed's model primary drives a real QEMU 7.2 secondary (issue 14 item 6).

A guest template cut from the run1 capture gives the real RAM block layout, the
initial migration and the device blobs; `colo node primary --template` sends them
with RAM pages from the model.  A fresh real secondary (Debian's QEMU, the same
machine options, -incoming, x-colo) must reach COLO and load every checkpoint
(query-colo-status mode secondary over QMP, the node's committed checkpoints).
Then a small fuzz subset (docs/fuzz-secondary.md has the full table): what QEMU
does with an unknown section id, a cut blob, and a vmstate-size of 2^40.
"""
from __future__ import annotations

import os
import sys

import pytest

from protocol.drivers.fuzz_secondary import Runner, cases
from protocol.record.template_source import save_template, template_from_capture
from tests.qemu._qemu import REAL_QEMU

pytestmark = REAL_QEMU


@pytest.fixture(scope="module")
def template_file(tmp_path_factory, run1):
    return save_template(template_from_capture(run1),
                         tmp_path_factory.mktemp("tpl") / "run1.colotpl")


@pytest.fixture
def runner(template_file, artifacts, tmp_path, monkeypatch):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.setenv("PYTHONPATH", root)
    monkeypatch.chdir(root)
    return Runner(template_file, workdir=tmp_path, kernel=str(artifacts["guest"]),
                  python=sys.executable, bound_s=40, checkpoints=4, delay_ms=300)


def _case(name):
    return next(c for c in cases() if c.name == name)


def test_model_primary_feeds_a_real_secondary_through_n_checkpoints(runner):
    out = runner.run(_case("baseline"))
    assert out.outcome == "colo", out
    assert out.checkpoints >= 4
    assert out.colo_status["mode"] == "secondary" and out.migrate_status == "colo", out
    assert out.extra["events"].count("STOP") >= 4, out.extra     # one per checkpoint
    assert "--template" in out.command and "-incoming defer" in out.command


@pytest.mark.parametrize("name,outcome,says", [
    ("bad-section-id", "refused", "Mismatched section id in footer"),
    ("truncate-blob", "refused", "less than expected"),
    ("size-huge", "crash", "failed to allocate 1099511627776 bytes"),
])
def test_fuzz_subset(runner, name, outcome, says):
    out = runner.run(_case(name))
    assert out.outcome == outcome, out
    assert says in out.stderr, out
    assert out.checkpoints == 1          # the first checkpoint loaded; #2 was the bad one
    if outcome == "crash":
        assert out.signal in ("SIGTRAP", "SIGABRT"), out
    else:
        assert "COLO_EXIT" in out.extra["events"], out.extra
