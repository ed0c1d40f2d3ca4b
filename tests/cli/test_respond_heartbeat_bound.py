"""`colo respond --heartbeat-after 0`: there is no committed checkpoint 0, and the
endpoint read none of the input, answered nothing and exited 0; it is a usage error
that names the bound, and no output file is made."""
import subprocess
import sys


def test_heartbeat_after_zero_is_a_usage_error(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"QEVM")
    out = tmp_path / "out.bin"
    r = subprocess.run([sys.executable, "-m", "colo_tui", "respond", "--role", "secondary",
                        "--heartbeat-after", "0", "-o", str(out), str(src)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "--heartbeat-after: the value must be between 1 and" in r.stderr
    assert not out.exists()
