"""`colo repl --proxy|--peer` on a port in use: one clear error before the session."""
import socket
import subprocess
import sys

import pytest

from tests.tcp._nodes import ROOT, free_port


@pytest.mark.parametrize("how", ["proxy", "peer"])
def test_a_busy_listen_port_is_an_error_before_the_session(how):
    """--proxy LISTEN on a busy port opened the session anyway: 'live error: OSError:
    [Errno 98] error while attempting to bind on address (...)', the session 'ended:
    outcome failover', and a script exited 0.  --peer said 'Address already in use
    (while attempting to bind on address ('127.0.0.1', P))'.  Both now exit 1 with
    'cannot listen on 127.0.0.1:P: Address already in use'."""
    with socket.create_server(("127.0.0.1", free_port())) as busy:
        port = busy.getsockname()[1]
        args = (["--proxy", f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"] if how == "proxy"
                else ["--peer", f"127.0.0.1:{port}"])
        r = subprocess.run([sys.executable, "-m", "colo_tui", "repl", *args],
                           input="status\n", capture_output=True, text=True, timeout=60,
                           cwd=ROOT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip() == (f"colo repl: error: cannot listen on 127.0.0.1:{port}: "
                                "Address already in use"), r.stderr
    assert "colo>" not in r.stdout
