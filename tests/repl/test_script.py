"""Non-interactive runs as real subprocesses: -f SCRIPT and piped stdin."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def repl(*args, stdin=""):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_tui.repl", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_script_file_success(tmp_path):
    rec = tmp_path / "s.colo.jsonl"
    script = tmp_path / "ok.colo"
    script.write_text(f"""# a comment
step 3

record start {rec}
fault drop@vmstate-loaded#2   # the '#2' is part of the spec, this is a comment
run 1
heartbeat primary
run
status
""")
    r = repl("-f", str(script))
    assert r.returncode == 0, r.stderr
    assert "colo> heartbeat primary" in r.stdout and "recording saved" in r.stdout
    from protocol.record import format as rf
    from protocol.record.replay import verify
    assert verify(rf.read(rec)).ok


def test_script_stops_at_first_error(tmp_path):
    script = tmp_path / "bad.colo"
    script.write_text("step 2\n\n# fine so far\nkill nobody\nstep 1\n")
    r = repl("-f", str(script))
    assert r.returncode == 2          # a line off the grammar is a usage error, as on the CLI
    assert f"{script}:4:" in r.stderr and "kill nobody" in r.stderr
    assert "colo> step 1" not in r.stdout


def test_a_script_that_is_not_utf8_is_named_as_such(tmp_path):
    script = tmp_path / "binary.colo"
    script.write_bytes(b"step 1\n\xcf\xff\x00garbage\n")
    r = repl("-f", str(script))
    assert r.returncode == 2 and "not UTF-8 text" in r.stderr and "Traceback" not in r.stderr
    assert "codec can't decode" not in r.stderr


def test_a_script_with_a_byte_order_mark_runs(tmp_path):
    # a script saved by Windows' Notepad (UTF-8 with a BOM, CRLF) failed on its first
    # line: "unknown command '\ufeffstep'"
    script = tmp_path / "notepad.colo"
    script.write_bytes("step 2\r\nstatus\r\n".encode("utf-8-sig"))
    r = repl("-f", str(script))
    assert r.returncode == 0, r.stderr
    assert "colo> step 2" in r.stdout and "invariants all hold" in r.stdout
    r = repl(stdin="\ufeffstep 2\n")
    assert r.returncode == 0, r.stderr


def test_stdin_success_and_failure():
    r = repl(stdin="step 2\nstatus\nquit\nstep 1\n")
    assert r.returncode == 0, r.stderr
    assert "colo> step 1" not in r.stdout          # quit ends the script
    r = repl(stdin="step 2\nshow cpu\n")
    assert r.returncode == 2 and "<stdin>:2:" in r.stderr and "unknown view 'cpu'" in r.stderr
    # said once (stdout and stderr often share a terminal), with where it happened
    assert "unknown view 'cpu'" not in r.stdout and r.stderr.count("unknown view 'cpu'") == 1
    r = repl(stdin="step 2\nreplay /nonexistent/x.colo.jsonl\n")
    assert r.returncode == 1 and "<stdin>:2:" in r.stderr


def test_options():
    r = repl("--dialect", "v11", "--seed", "5", stdin="status\n")
    assert r.returncode == 0 and "v11 dialect" in r.stdout and "seed 5" in r.stdout
    r = repl("--dialect", "nope", stdin="status\n")
    assert r.returncode == 2 and "unknown dialect" in r.stderr
    r = repl("-f", "/nonexistent/script")
    assert r.returncode == 1 and "cannot read" in r.stderr    # as `colo replay MISSING`
    r = repl("--attach", "unix:/nonexistent/a.sock", "unix:/nonexistent/b.sock")
    assert r.returncode == 1 and "cannot connect to QMP at unix:/nonexistent/a.sock" in r.stderr
    assert "Traceback" not in r.stderr


class _FullDisk:
    """The recording's file, on a disk that has just filled up."""

    def __init__(self, fh) -> None:
        self.fh = fh

    def write(self, _data):
        import errno
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.fh, name)


def test_a_recording_that_cannot_be_written_stops_the_script(tmp_path):
    # a full disk mid-session raised out of the simulator's event callback, in the
    # middle of a step; the recording then held less than the session and nothing
    # said so at the end (a script exited 0, the TUI kept its REC mark and said
    # "recording saved" on quitting)
    import io

    from colo_tui.repl.session import run_script
    from colo_tui.session.control import Controller
    from protocol.record import format as rf
    path = tmp_path / "s.colo.jsonl"
    c = Controller()
    ran = []

    def lines():
        yield f"record start {path}"
        c._writer._fh = _FullDisk(c._writer._fh)
        yield "step 5"
        ran.append("status")
        yield "status"
    out, err = io.StringIO(), io.StringIO()
    assert run_script(c, lines(), "s.colo", out, err) == 1
    assert "s.colo:2: error: recording stopped at step" in err.getvalue()
    assert str(path) in err.getvalue() and ran == []
    assert c.recording_path is None and c.steps == 5      # the step itself went through
    assert rf.read(str(path)).cut                          # readable, and said to be cut
