"""A lab killed with SIGKILL left its work directory (disk images, traces: about
70 MiB) in the temporary directory for good; /tmp here had 34 of them, 2.4 GiB.
The work directory now carries the lab's pid and the next lab deletes those whose
process is gone; a --keep directory and a live lab's stay.  Runs without QEMU."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _lab_env(tmp_path: Path) -> dict:
    bare = tmp_path / "bin"
    bare.mkdir(exist_ok=True)
    return dict(os.environ, PATH=str(bare), TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=str(ROOT))


def test_the_next_lab_deletes_a_killed_labs_work_directory(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = _lab_env(tmp_path)
    # a lab killed with SIGKILL before it could clean up
    code = ("import os, time; from colo_tui.lab import workdir; d = workdir.make(False); "
            "(d / 'primary.img').write_bytes(b'x'); print(d, flush=True); time.sleep(60)")
    victim = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True)
    left = Path(victim.stdout.readline().strip())
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert left.is_dir() and left.parent == tmp
    kept = tmp / "colo-lab-abcd1234"          # what --keep makes
    kept.mkdir()
    alive = tmp / f"colo-lab-{os.getpid()}-abcd1234"     # a running lab's
    alive.mkdir()
    res = subprocess.run([sys.executable, "-m", "colo_tui", "lab", "--headless", "--net",
                          "user"], capture_output=True, text=True, timeout=60, env=env,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stderr      # no tools on PATH: it fails at once
    assert not left.exists(), "the killed lab's work directory is still there"
    assert kept.is_dir() and alive.is_dir()
    assert sorted(tmp.iterdir()) == sorted([kept, alive]), list(tmp.iterdir())


def test_a_stale_directory_of_a_dead_pid_goes_and_others_stay(tmp_path):
    from colo_tui.lab import workdir
    dead = tmp_path / f"colo-lab-{_dead_pid()}-x1y2z3w4"
    dead.mkdir()
    modes = tmp_path / f"colo-modes-{_dead_pid()}-q"
    modes.mkdir()
    other = tmp_path / "colo-lab-not-a-pid"
    other.mkdir()
    file_ = tmp_path / f"colo-lab-{_dead_pid()}-file"
    file_.write_text("")
    assert sorted(workdir.reap_stale(tmp_path)) == sorted([dead, modes])
    assert other.is_dir() and file_.is_file()
