"""`colo repl --attach`: one side's process ending does not end the attach."""
import os
import select
import signal
import subprocess
import sys
import time

from tests.tcp._nodes import ROOT, NodeProc, free_port, wait_for


def _read_until(pipe, text: str, timeout: float) -> str:
    """What `pipe` gives until `text` has come (all of it, up to the read that held it)."""
    got, end = b"", time.monotonic() + timeout
    while text.encode() not in got:
        assert time.monotonic() < end, f"no {text!r} within {timeout} s: {got[-2000:]!r}"
        if select.select([pipe], [], [], 0.1)[0]:
            chunk = os.read(pipe.fileno(), 65536)
            assert chunk, f"the REPL ended before {text!r}: {got[-2000:]!r}"
            got += chunk
    return got.decode()


def test_attach_outlives_the_primary_and_fails_over_to_the_secondary(tmp_path):
    """The primary node is killed while the REPL is attached to both: the primary is
    shown dead and the secondary is still watched and driven (`heartbeat secondary`,
    the failover the attach is for).  Before, the whole attach ended at the first QMP
    poll of the dead primary ('live error: QmpClientError: primary: Broken pipe'),
    the secondary's COLO_EXIT was never shown and `heartbeat secondary` failed."""
    addr = f"127.0.0.1:{free_port()}"
    sec = NodeProc("secondary", tmp_path, addr, "--checkpoint-delay", "200")
    pri = repl = None
    try:
        sec.wait_ready()
        pri = NodeProc("primary", tmp_path, addr, "--checkpoint-delay", "200")
        pri.wait_ready()
        wait_for(lambda: pri.commits() >= 1, what="a first checkpoint")
        repl = subprocess.Popen([sys.executable, "-m", "colo_tui", "repl", "--attach",
                                 f"unix:{pri.qmp_path}", f"unix:{sec.qmp_path}"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
        repl.stdin.write("step 2\n")
        repl.stdin.flush()
        # the primary dies once the REPL is attached to it and has stepped (a fixed
        # 1 s wait let a loaded machine kill it before the REPL had connected)
        first = _read_until(repl.stdout, "step 2", timeout=60)
        pri.proc.send_signal(signal.SIGKILL)
        pri.proc.wait(5)
        wait_for(lambda: sec.colo_exits(), what="the secondary's COLO_EXIT")
        out, err = repl.communicate("run until colo-exit\nheartbeat secondary\nstep 3\n"
                                    "status\nheartbeat primary\n", timeout=60)
        out = first + out
        assert "Traceback" not in err and "live error" not in out, out + err
        # a command to the dead side is refused by name; the script stops there
        assert repl.returncode == 1, out + err
        assert "the primary's QMP connection is gone" in err, err
        assert "stopped at colo-exit" in out
        assert "x-colo-lost-heartbeat sent to the secondary" in out
        assert sec.kinds("failover"), sec.output()
        assert "primary    dead" in out, out
        assert "QMP connection is gone" in out and "the process: gone" in out
    finally:
        if repl is not None and repl.poll() is None:
            repl.kill()
            repl.wait(5)
        if pri is not None:
            pri.stop()
        sec.stop()
