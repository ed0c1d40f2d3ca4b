"""A `colo node secondary` whose incoming migration fails before COLO runs exits 1,
as QEMU does ("load of migration failed", exit(EXIT_FAILURE)): it used to stay in
ERROR, closing every later connection without a word, so the next primary hung.
An error once COLO runs still leaves it up, waiting for the operator (QEMU too)."""
import socket
import time

from tests.tcp._nodes import NodeProc, free_port, wait_for


def test_junk_instead_of_a_migration_ends_the_secondary_with_exit_1(tmp_path):
    port = free_port()
    node = NodeProc("secondary", tmp_path, f"127.0.0.1:{port}")
    try:
        node.wait_ready()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"junk" * 64)
            wait_for(lambda: node.proc.poll() is not None, 10, "the secondary to exit")
        assert node.proc.wait(5) == 1, node.output()
        (ex,) = [e["data"] for e in node.kinds("node") if e["data"].get("what") == "exit"]
        assert ex["code"] == 1 and ex["error"].startswith("load of migration failed: "), ex
        assert "Traceback" not in node.output()
        # and nothing listens any more: the next primary is refused, not left hanging
        t = time.monotonic()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert refused and time.monotonic() - t < 2
    finally:
        node.stop()
