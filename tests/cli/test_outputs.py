"""Nothing a user owns is destroyed: every writer refuses its own input and an existing
file without --force, and writes through a temporary file renamed on success."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.drivers.qmp import remove_stale_socket
from protocol.errors import OutputFileError
from protocol.record.outfile import atomic_output

ROOT = Path(__file__).resolve().parents[2]
RUN1 = ROOT.parent / "shared" / "qemu-colo" / "run1"
GOLDEN = ROOT / "recordings" / "happy-qemu-periodic.colo.jsonl"


def colo(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "colo_tui", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def _copy(src: Path, tmp_path: Path, name: str) -> tuple[Path, bytes]:
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst, dst.read_bytes()


@pytest.mark.skipif(not (RUN1 / "capture.pcap").exists(), reason="no run1 capture")
def test_import_refuses_to_write_over_its_capture(tmp_path):
    cap, before = _copy(RUN1 / "capture.pcap", tmp_path, "cap.pcap")
    r = colo("import", str(cap), "-o", str(cap))
    assert r.returncode == 2 and "is the input" in r.stderr and "Traceback" not in r.stderr
    assert cap.read_bytes() == before
    os.symlink(cap, tmp_path / "link.pcap")        # the same file under another name
    os.link(cap, tmp_path / "hard.pcap")
    for other in ("link.pcap", "hard.pcap"):
        r = colo("import", str(cap), "-o", str(tmp_path / other), "--force")
        assert r.returncode == 2 and "is the same file as the input" in r.stderr, r.stderr
    assert cap.read_bytes() == before


@pytest.mark.skipif(not (RUN1 / "primary_to_secondary.bin").exists(), reason="no run1")
def test_import_of_a_run_directory_refuses_a_file_inside_it(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    for name in ("primary_to_secondary.bin", "secondary_to_primary.bin"):
        shutil.copyfile(RUN1 / name, run / name)
    before = (run / "primary_to_secondary.bin").read_bytes()
    r = colo("import", str(run), "-o", str(run / "primary_to_secondary.bin"), "--force")
    assert r.returncode == 2 and "input" in r.stderr
    assert (run / "primary_to_secondary.bin").read_bytes() == before


@pytest.mark.skipif(not (RUN1 / "primary_to_secondary.bin").exists(), reason="no run1")
def test_respond_refuses_to_write_over_its_input(tmp_path):
    inp, before = _copy(RUN1 / "primary_to_secondary.bin", tmp_path, "in.bin")
    r = colo("respond", "--role", "secondary", str(inp), "-o", str(inp))
    assert r.returncode == 2 and "is the input" in r.stderr
    assert inp.read_bytes() == before
    out = tmp_path / "out.bin"
    out.write_bytes(b"keep me")
    r = colo("respond", "--role", "secondary", str(inp), "-o", str(out))
    assert r.returncode == 2 and "already exists; give --force" in r.stderr
    assert out.read_bytes() == b"keep me"
    r = colo("respond", "--role", "secondary", str(inp), "-o", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() != b"keep me" and len(out.read_bytes()) > 0


def test_export_refuses_its_input_and_an_existing_file_without_force(tmp_path):
    rec, before = _copy(GOLDEN, tmp_path, "r.colo.jsonl")
    r = colo("export", str(rec), "--to", "json", "-o", str(rec))
    assert r.returncode == 2 and "is the input" in r.stderr
    assert rec.read_bytes() == before
    out = tmp_path / "r.json"
    out.write_text("mine\n")
    r = colo("export", str(rec), "--to", "json", "-o", str(out))
    assert r.returncode == 2 and "already exists; give --force" in r.stderr
    assert out.read_text() == "mine\n"
    r = colo("export", str(rec), "--to", "json", "-o", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("{") and sorted(os.listdir(tmp_path)) == \
        ["r.colo.jsonl", "r.json"]


def test_run_and_node_refuse_an_existing_record_target_up_front(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    r = colo("run", "--checkpoints", "1", "--record", str(target))
    assert r.returncode == 2 and "already exists; give --force" in r.stderr
    assert target.read_text() == "mine\n"
    r = colo("node", "secondary", "--listen", "127.0.0.1:0", "--record", str(target))
    assert r.returncode == 2 and "already exists; give --force" in r.stderr
    assert target.read_text() == "mine\n"
    r = colo("proxy", "--listen", "127.0.0.1:0", "--connect", "127.0.0.1:9", "--record",
             str(target))
    assert r.returncode == 2 and "already exists; give --force" in r.stderr
    assert target.read_text() == "mine\n"
    r = colo("run", "--checkpoints", "1", "--record", str(target), "--force")
    assert r.returncode == 0, r.stderr
    assert target.read_text().startswith("# colo run")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "o.bin"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(out, force=True) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("crash in the middle")
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["o.bin"]
    with atomic_output(out, force=True) as fh:
        fh.write(b"new")
    assert out.read_bytes() == b"new" and os.listdir(tmp_path) == ["o.bin"]
    with pytest.raises(OutputFileError, match="is a directory"), \
            atomic_output(tmp_path, force=True):
        pass


def test_qmp_unix_removes_only_a_stale_socket(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("mine")
    with pytest.raises(FileExistsError, match="is a regular file, not a stale socket"):
        remove_stale_socket(regular)
    assert regular.read_text() == "mine"
    live_path = tmp_path / "live.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(live_path))
    live.listen(1)
    try:
        with pytest.raises(FileExistsError, match="is a live socket"):
            remove_stale_socket(live_path)
        assert live_path.exists()
    finally:
        live.close()
    stale_path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(stale_path))
    stale.close()                                    # bound, never listening: stale
    remove_stale_socket(stale_path)
    assert not stale_path.exists()


def test_node_with_qmp_at_a_regular_file_keeps_the_file(tmp_path):
    regular = tmp_path / "qmp"
    regular.write_text("mine")
    r = colo("node", "secondary", "--listen", "127.0.0.1:0", "--qmp", f"unix:{regular}",
             timeout=60)
    assert r.returncode == 1 and "is a regular file" in r.stderr, r.stderr
    assert regular.read_text() == "mine"


def test_export_of_a_cut_recording_says_it_is_cut(tmp_path):
    # colo replay says "The recording was cut"; colo export exported the part in
    # silence, as if it were the whole session
    whole = tmp_path / "whole.colo.jsonl"
    r = colo("run", "--checkpoints", "2", "--record", str(whole))
    assert r.returncode == 0, r.stderr
    data = whole.read_bytes()
    cut = tmp_path / "cut.colo.jsonl"
    cut.write_bytes(data[:len(data) // 2])         # its writer killed mid-line
    r = colo("export", str(cut), "--to", "mermaid")
    assert r.returncode == 0 and r.stdout.startswith("sequenceDiagram"), r.stderr
    assert "is a cut recording" in r.stderr
    r = colo("export", str(whole), "--to", "mermaid")
    assert r.returncode == 0 and "cut" not in r.stderr
