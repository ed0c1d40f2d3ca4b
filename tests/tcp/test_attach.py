"""`colo repl --attach` drives two live `colo node` processes through QMP."""
import subprocess
import sys

from tests.tcp._nodes import NodeProc, free_port, wait_for


def test_attach_status_checkpoint_and_failover(tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    sec = NodeProc("secondary", tmp_path, addr, "--checkpoint-delay", "200")
    pri = None
    try:
        sec.wait_ready()          # listening (it binds before it opens QMP)
        pri = NodeProc("primary", tmp_path, addr, "--checkpoint-delay", "200")
        pri.wait_ready()
        wait_for(lambda: pri.commits() >= 1, what="a first checkpoint")
        # the same command registry as every session: step/run bring the QMP events
        # and polled statuses into view; QEMU's refusal of a second failover ends it
        script = ("step 2\nstatus\ncheckpoint\nheartbeat secondary\nrun until colo-exit\n"
                  "step 2\nstatus\nheartbeat sec\n")
        r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", "--attach",
                            f"unix:{pri.qmp_path}", f"unix:{sec.qmp_path}"],
                           input=script, capture_output=True, text=True, timeout=60)
        out = r.stdout
        assert "live       attach: real peers" in out
        assert "query-colo-status (mode primary," in out
        assert "checkpoint requested" in out
        assert "x-colo-lost-heartbeat sent to the secondary" in out
        assert "stopped at colo-exit" in out
        assert "query-colo-status (mode none, last-mode secondary, reason request)" in out
        # the second heartbeat is refused as QEMU refuses it, and the script stops there
        assert r.returncode == 1 and ":8:" in r.stderr, r.stderr
        assert "heartbeat" in r.stderr and "Traceback" not in r.stderr
    finally:
        if pri is not None:
            pri.stop()
        sec.stop()
