"""`colo template --out` never writes over its own capture nor an existing file
without --force (the one-shot writers' rule).  It used to write the template over
`--out CAPTURE` -- the shared run1 capture.pcap, read-only, as root -- and over any
existing file.  The default file (the user's one template) is still replaced.
No QEMU needed: the capture is a copy of run1's."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.cli.test_cli import colo

RUN1 = Path(os.environ.get("COLO_QEMU_RUN1", "/work/shared/qemu-colo/run1"))
pytestmark = pytest.mark.skipif(not (RUN1 / "capture.pcap").is_file(),
                                reason=f"no run1 capture at {RUN1}")


@pytest.fixture
def capture(tmp_path):
    cap = tmp_path / "capture.pcap"
    shutil.copyfile(RUN1 / "capture.pcap", cap)
    cap.chmod(0o444)
    return cap


def test_template_refuses_its_own_capture_as_out(tmp_path, capture):
    before = capture.read_bytes()
    link = tmp_path / "link.pcap"
    link.symlink_to(capture)
    for out, extra in ((capture, []), (capture, ["--force"]), (link, ["--force"])):
        r = colo("template", str(capture), "--out", str(out), *extra)
        assert r.returncode == 2, (out, extra, r.stdout, r.stderr)
        assert "own input" in r.stderr and "Traceback" not in r.stderr
    assert capture.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.pcap", "link.pcap"]


def test_template_refuses_an_existing_out_without_force(tmp_path, capture):
    out = tmp_path / "t.colotpl"
    out.write_text("mine")
    r = colo("template", str(capture), "--out", str(out))
    assert r.returncode == 2 and "--force" in r.stderr, r.stderr
    assert out.read_text() == "mine"
    r = colo("template", str(capture), "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"COLOTPL1")


def test_template_out_in_a_missing_directory_is_refused(tmp_path, capture):
    r = colo("template", str(capture), "--out", str(tmp_path / "no" / "such" / "t.colotpl"))
    assert r.returncode == 1 and "cannot write the template" in r.stderr, r.stderr
    assert not (tmp_path / "no").exists()
